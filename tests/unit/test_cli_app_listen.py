"""`privastead-app listen --help` lists every environment variable `--exec` commands get."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from privastead.cli.app.listen import EPILOG, CommandRunner
from privastead.protocol.messages import Notification


def test_help_lists_every_exec_variable(monkeypatch: Any) -> None:
    for name in [k for k in os.environ if k.startswith("PRIVASTEAD_")]:
        monkeypatch.delenv(name)  # only what the runner adds counts
    seen: list[dict[str, str]] = []
    runner = CommandRunner("true", hub="home")
    monkeypatch.setattr(runner, "_start", lambda env, what: seen.append(env))
    runner.notify("door", Notification("door", "e" * 32, 1.0, 0.5, (), 0), Path("t.jpg"))
    runner.health("ok", "last heartbeat 3 s ago")
    runner.camera("door", "offline", 1.0, "camera door offline since ...")
    names = {k for env in seen for k in env if k.startswith("PRIVASTEAD_")}
    assert len(seen) == 3 and "PRIVASTEAD_SINCE" in names
    listed = set(re.findall(r"^\s+(PRIVASTEAD_[A-Z_]+)\s", EPILOG, flags=re.MULTILINE))
    assert names - listed == set(), f"not in --help: {sorted(names - listed)}"
    assert seen[0]["PRIVASTEAD_EVENT_ID"] == "e" * 32  # the full id, as everywhere
