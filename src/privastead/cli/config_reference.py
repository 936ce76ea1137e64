"""``docs/config.md``: the reference of ``hub.toml`` and ``relay.toml``, made from the models.

Regenerate after changing a config model::

    python -m privastead.cli.config_reference docs/config.md

``tests/unit/test_config_reference.py`` fails while the page and the models disagree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from privastead.configdoc import KeyDoc, describe, markdown
from privastead.hub.config import HubConfig, default_data_dir
from privastead.relay.config import RelayConfig

HEADER = """# Configuration reference

Generated from the config models (`python -m privastead.cli.config_reference docs/config.md`);
a test keeps it current. Both files are strict TOML: an unknown key or a wrong type is an
error that names the file, the line and the key. Secrets (passwords, tokens, keys) never live
in a config file: a key names the file or the environment variable that holds them.
"""

HUB_INTRO = """The hub's file (`privastead-hub run --config hub.toml`). `privastead-hub init`
writes a commented one; `privastead-hub check-config hub.toml --secrets` checks it, including that
every password and the relay token can be read."""

RELAY_INTRO = """The relay's file (`privastead-server serve --config relay.toml`); every key is
optional. `PRIVASTEAD_RELAY_DATA_DIR`, `_HOST`, `_PORT`, `_TLS_CERT`, `_TLS_KEY` and
`_METRICS_TOKEN_FILE` override the file; `PRIVASTEAD_RELAY_METRICS_TOKEN` supplies the
operator token itself."""


def hub_keys() -> list[KeyDoc]:
    return describe(HubConfig)


def relay_keys() -> list[KeyDoc]:
    return describe(RelayConfig)


def render() -> str:
    text = "\n".join(
        [
            HEADER,
            markdown("hub.toml", HUB_INTRO, hub_keys()),
            markdown("relay.toml", RELAY_INTRO, relay_keys()),
        ]
    )
    # The data dir's default depends on this machine's $HOME and $XDG_DATA_HOME.
    here = json.dumps(str(default_data_dir()))
    return text.replace(here, '"~/.local/share/privastead/hub"').rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m privastead.cli.config_reference docs/config.md", file=sys.stderr)
        return 2
    Path(args[0]).write_text(render(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
