"""A complete `hub.toml` for one camera on loopback, used by `make demo` and the e2e tests.

Both start a real hub against a real relay and camsim; generating the file in one place keeps
them exercising the same configuration.
"""

from __future__ import annotations

from pathlib import Path


def loopback_config(
    *,
    data_dir: Path,
    relay_url: str,
    token_file: Path,
    camera_url: str,
    camera_name: str = "door",
    keep_plaintext_clips: bool = True,
) -> str:
    """TOML text for a hub with one camera, short pre/post-roll and quick heartbeats."""
    keep = "true" if keep_plaintext_clips else "false"
    return f"""[hub]
data_dir = "{data_dir}"
status_interval = 0

[relay]
url = "{relay_url}"
token_file = "{token_file}"
heartbeat_interval = 2.0
keep_plaintext_clips = {keep}

[[cameras]]
name = "{camera_name}"
url = "{camera_url}"
decode = "keyframes"

[cameras.events]
pre_roll = 1.0
post_roll = 1.0
"""
