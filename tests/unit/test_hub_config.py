"""hub.toml: strict parsing, credentials from files or environment only."""

from __future__ import annotations

from pathlib import Path

import pytest

from privastead.errors import ConfigError
from privastead.hub import config as hubconfig

GOOD = """
[hub]
data_dir = "/var/lib/privastead"

[[cameras]]
name = "garden"
url = "rtsp://10.0.0.5:554/main"
substream_url = "rtsp://10.0.0.5:554/sub"
username = "admin"
password_file = "{secret}"
decode = "full"

[cameras.events]
pre_roll = 4.0
"""


def test_full_config_and_credentials_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "garden.pass"
    secret.write_text("p@ss word\n")
    config = hubconfig.parse(GOOD.format(secret=secret))
    camera = config.cameras[0]
    assert config.hub.clips == Path("/var/lib/privastead/clips")
    assert camera.decode == "full" and camera.events.pre_roll == 4.0
    assert camera.with_credentials(camera.url) == "rtsp://admin:p%40ss%20word@10.0.0.5:554/main"


def test_password_in_url_is_refused_with_its_line() -> None:
    text = '[[cameras]]\nname = "a"\nurl = "rtsp://admin:hunter2@cam/x"\n'
    with pytest.raises(ConfigError, match=r"<hub.toml>:1: .*password_file"):
        hubconfig.parse(text)


def test_missing_secret_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (
        '[[cameras]]\nname = "a"\nurl = "rtsp://cam/x"\nusername = "u"\npassword_env = "CAM_PW"\n'
    )
    camera = hubconfig.parse(text).cameras[0]
    monkeypatch.delenv("CAM_PW", raising=False)
    with pytest.raises(ConfigError, match="CAM_PW"):
        camera.password()
    monkeypatch.setenv("CAM_PW", "x")
    assert camera.password() == "x"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[cameras]]\nname = "a"\nurl = "http://cam/x"\n', "rtsp://"),
        ('[[cameras]]\nname = "a b"\nurl = "rtsp://cam/x"\n', "letters"),
        ('[[cameras]]\nname = "a"\nurl = "rtsp://cam/x"\ndecode = "some"\n', "must be one of"),
        (
            '[[cameras]]\nname = "a"\nurl = "rtsp://c/x"\n[[cameras]]\nname = "a"\nurl = "rtsp://d/"\n',
            "unique",
        ),
        ('[[cameras]]\nname = "a"\nurl = "rtsp://cam/x"\npasword_file = "x"\n', "unknown key"),
    ],
)
def test_bad_configs_are_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        hubconfig.parse(text)


def test_no_cameras_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text("[hub]\n")
    with pytest.raises(ConfigError, match="no \\[\\[cameras\\]\\]"):
        hubconfig.load(path)


def test_continuous_recording_and_storage_keys_are_typed_and_checked() -> None:
    text = (
        "[storage]\nrecording_days = 3\nclip_gb = 50\nmin_free_gb = 5\n\n"
        '[[cameras]]\nname = "door"\nurl = "rtsp://10.0.0.2/main"\ncontinuous = true\n'
        "segment_seconds = 30\nrecording_gb = 100\n"
    )
    config = hubconfig.parse(text)
    camera = config.cameras[0]
    assert camera.continuous and camera.segment_seconds == 30 and camera.recording_gb == 100
    rules = config.storage.rules()
    assert rules.segment_days == 3 and rules.clip_gb == 50 and rules.min_free_gb == 5
    assert config.storage.camera_rules(None, None) is None
    own = config.storage.camera_rules(0, 100)  # 0 days: no age limit
    assert own is not None and own.segment_days is None and own.segment_gb == 100
    assert (
        not hubconfig.parse('[[cameras]]\nname = "door"\nurl = "rtsp://10.0.0.2/main"\n')
        .cameras[0]
        .continuous
    )  # off by default
    with pytest.raises(ConfigError, match=r":6: cameras\[0\]: segment_seconds must be positive"):
        hubconfig.parse(text.replace("segment_seconds = 30", "segment_seconds = 0"))
    with pytest.raises(ConfigError, match=r"storage.*retention days must be >= 0"):
        hubconfig.parse(text.replace("recording_days = 3", "recording_days = -1"))
    with pytest.raises(ConfigError, match=r":3: storage.clip_gbs"):
        hubconfig.parse(text.replace("clip_gb", "clip_gbs"))
