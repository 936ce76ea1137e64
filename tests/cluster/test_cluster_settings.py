"""The ``[storage]`` settings: strict, typed, secrets never in the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from privastead import configfile
from privastead.errors import ConfigError
from privastead.relay.backends.settings import S3Settings, StorageSettings

GOOD = """
backend = "postgresql"

[postgresql]
dsn = "postgresql://privastead@db1:5432/privastead?sslmode=verify-full"
password_file = "{pw}"

[s3]
endpoint = "http://127.0.0.1:3900"
bucket = "privastead-blobs"
access_key_id = "GK0123"
secret_key_file = "{secret}"
"""


def parse(text: str) -> StorageSettings:
    return configfile.parse(text, StorageSettings, source="relay.toml")


def test_full_settings_and_secrets_from_files_or_environment(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("pg-secret\n")
    (tmp_path / "s3").write_text("s3-secret\n")
    settings = parse(GOOD.format(pw=tmp_path / "pw", secret=tmp_path / "s3"))
    assert settings.postgresql is not None and settings.s3 is not None
    assert settings.postgresql.password(env={}) == "pg-secret"
    assert settings.s3.secret_key(env={}) == "s3-secret"
    env = {"PRIVASTEAD_RELAY_PG_PASSWORD": "from-env", "PRIVASTEAD_RELAY_S3_SECRET_KEY": "e"}
    assert settings.postgresql.password(env=env) == "from-env"
    assert settings.s3.secret_key(env=env) == "e"
    assert parse("").backend == "sqlite"  # the default needs nothing else


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('backend = "postgresql"', "needs [storage.postgresql] and [storage.s3]"),
        ('backend = "mysql"', "must be one of 'sqlite', 'postgresql'"),
        ('[postgresql]\ndsn = "postgresql://u:hunter2@db/x"', "must not contain a password"),
        ('[postgresql]\ndsn = "mysql://db/x"', "must start with postgresql://"),
        ('[postgresql]\ndsn = "postgresql://u@db/x"\npassword = "x"', "unknown key"),
        (
            '[s3]\nendpoint = "ftp://x"\nbucket = "b"\naccess_key_id = "k"',
            "http:// or https://",
        ),
        (
            '[s3]\nendpoint = "http://x"\nbucket = "b"\naccess_key_id = "k"\npart_size = 1024',
            "at least 5 MiB",
        ),
    ],
)
def test_bad_settings_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"relay\.toml:") as caught:
        parse(text)
    assert message in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_missing_secrets_say_where_to_put_them(tmp_path: Path) -> None:
    settings = parse(GOOD.format(pw=tmp_path / "absent", secret=tmp_path / "absent"))
    assert settings.postgresql is not None and settings.s3 is not None
    with pytest.raises(ConfigError, match=r"postgresql.password_file: cannot read .*absent"):
        settings.postgresql.password(env={})
    with pytest.raises(ConfigError, match=r"s3.secret_key_file: cannot read"):
        settings.s3.secret_key(env={})
    bare = configfile.parse(
        'endpoint = "http://x"\nbucket = "b"\naccess_key_id = "k"', S3Settings, source="t"
    )
    with pytest.raises(ConfigError, match="PRIVASTEAD_RELAY_S3_SECRET_KEY"):
        bare.secret_key(env={})
