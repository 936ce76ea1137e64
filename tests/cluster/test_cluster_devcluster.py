"""`make cluster` as a user runs it (`python -m privastead.devcluster`), and the errors a user
sees when a server binary is missing."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from privastead.devcluster import programs
from privastead.relay.backends import migrations
from privastead.relay.client import RelayClient
from support.garage import garage_binary

SRC = Path(__file__).resolve().parents[2] / "src"


def test_missing_garage_names_the_binary_and_the_build_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PRIVASTEAD_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(programs.GARAGE_ENV, raising=False)
    with pytest.raises(programs.MissingProgramError) as caught:
        programs.garage(wait=0)
    message = str(caught.value)
    assert str(tmp_path / "garage-2.5.0" / "bin" / "garage") in message
    assert "scripts/garage.sh build" in message


def test_failed_garage_build_is_reported_with_its_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PRIVASTEAD_CACHE_DIR", str(tmp_path))
    (tmp_path / "garage-2.5.0.log").write_text("Compiling...\nerror: linker `cc` not found\n")
    with pytest.raises(programs.MissingProgramError, match="linker `cc` not found"):
        programs.garage(wait=0)


def test_missing_postgresql_and_haproxy_say_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv(programs.PG_BINDIR_ENV, str(tmp_path))
    monkeypatch.setattr(programs, "PG_SEARCH", (tmp_path / "none",))
    monkeypatch.setattr(programs, "HAPROXY_SEARCH", ())
    with pytest.raises(programs.MissingProgramError, match=r"initdb, postgres.*system-deps\.sh"):
        programs.postgres_bindir()
    with pytest.raises(programs.MissingProgramError, match=r"haproxy.*system-deps\.sh"):
        programs.haproxy()


def test_postgresql_binaries_are_found_where_debian_puts_them() -> None:
    bindir = programs.postgres_bindir()
    assert (bindir / "initdb").is_file() and (bindir / "postgres").is_file()


def _closed(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.garage
async def _clip_round_trip(url: str, token: str) -> None:
    box, clip = os.urandom(16).hex(), os.urandom(300_000)
    async with RelayClient(url, token) as relay:
        await relay.create_mailbox(box)
        seq = (await relay.upload(box, clip, "clip-1")).seq
        assert await relay.fetch(box, seq) == clip


def test_make_cluster_starts_serves_and_stops_on_ctrl_c() -> None:
    garage_binary()  # waits for the build like the other Garage tests
    env = dict(os.environ, PYTHONPATH=str(SRC))
    proc = subprocess.Popen(  # as `make cluster` does: everything in a temporary directory
        [sys.executable, "-m", "privastead.devcluster"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        while not any(line.startswith("  logs:") for line in lines):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        text = "".join(lines)
        url = re.search(r"relay URL:\s+(\S+)", text)
        s3 = re.search(r"S3 \(Garage\):\s+(\S+)", text)
        pg = re.search(r"PostgreSQL:\s+postgresql://\S+@127\.0\.0\.1:(\d+)/", text)
        token_path = re.search(r"owner token:\s+(\S+)", text)
        assert url and s3 and pg and token_path, text
        assert f"at version {migrations.LATEST}, up to date" in text
        token_file = Path(token_path.group(1))
        assert token_file.stat().st_mode & 0o777 == 0o600
        token = token_file.read_text().strip()
        request = urllib.request.Request(
            url.group(1) + "/v1/me", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            assert json.loads(r.read())["account"] == "home"
        # A clip goes in and comes back through HAProxy: PostgreSQL indexes it, Garage keeps it.
        asyncio.run(_clip_round_trip(url.group(1), token))
        # The S3 frontend answers (an anonymous request is refused by Garage itself).
        try:
            urllib.request.urlopen(s3.group(1) + "/privastead-blobs", timeout=10)
        except urllib.error.HTTPError as exc:
            assert exc.code == 403
        ports = [int(pg.group(1)), int(url.group(1).rsplit(":", 1)[1])]
        ports.append(int(s3.group(1).rsplit(":", 1)[1]))
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        rest, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, text + rest
        assert "cluster: stopped" in rest
        deadline = time.monotonic() + 10
        while not all(_closed(p) for p in ports):
            assert time.monotonic() < deadline, f"still listening: {ports}"
            time.sleep(0.1)
        assert not token_file.parent.exists()  # the temporary directory is gone
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        proc.stdout.close()
