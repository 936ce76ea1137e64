"""`privastead-server accounts|tokens` against a data directory, and `serve` with TLS."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from relay_harness import _env, free_port, mailbox_id, make_process, run_cli


def test_accounts_and_tokens(tmp_path: Path) -> None:
    data = tmp_path / "data"
    out = run_cli("accounts", "add", "family", "--quota-bytes", "1000000", data_dir=data)
    owner = out.strip()
    assert out == owner + "\n" and owner.startswith("pst_")  # `> owner-token` gets the token alone
    rows = json.loads(run_cli("accounts", "list", "--json", data_dir=data))
    assert [(r["name"], r["quota_bytes"]) for r in rows] == [("family", 1000000)]
    issued = json.loads(
        run_cli(
            "tokens",
            "issue",
            "--account",
            "family",
            "--kind",
            "device",
            "--label",
            "phone",
            data_dir=data,
        )
    )
    tokens = [
        json.loads(line)
        for line in run_cli("tokens", "list", "--account", "family", data_dir=data).splitlines()
    ]
    assert {t["kind"] for t in tokens} == {"owner", "device"}
    assert all("token" not in t and "secret_hash" not in t for t in tokens)  # never secrets
    assert owner not in (data / "relay.sqlite3").read_bytes().decode("latin-1")  # hashed only
    run_cli("tokens", "revoke", issued["token_id"], data_dir=data)
    with pytest.raises(RuntimeError, match="no such token"):
        run_cli("tokens", "revoke", issued["token_id"], data_dir=data)
    with pytest.raises(RuntimeError, match="restricted token needs"):
        run_cli("tokens", "issue", "--account", "family", "--kind", "restricted", data_dir=data)
    with pytest.raises(RuntimeError, match="exists"):
        run_cli("accounts", "add", "family", data_dir=data)
    run_cli("accounts", "remove", "family", data_dir=data)
    assert json.loads(run_cli("accounts", "list", "--json", data_dir=data)) == []


def test_help_explains_and_bad_config_names_the_line(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "privastead.cli.server", "--help"],
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert "serve" in out.stdout and "accounts" in out.stdout and "tokens" in out.stdout
    cfg = tmp_path / "relay.toml"
    cfg.write_text("port = 8080\n[limits]\nmax_blob_sise = 5\n")
    bad = subprocess.run(
        [sys.executable, "-m", "privastead.cli.server", "serve", "--config", str(cfg)],
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "relay.toml:3: limits.max_blob_sise: unknown key" in bad.stderr


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_serve_with_tls(tmp_path: Path, loop: str) -> None:
    cert, key = _self_signed(tmp_path)
    data = tmp_path / "data"
    owner = run_cli("accounts", "add", "home", data_dir=data).strip().splitlines()[-1]
    port = free_port()
    cfg = tmp_path / "relay.toml"
    cfg.write_text(f'tls_cert = "{cert}"\ntls_key = "{key}"\nevent_loop = "{loop}"\n')
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "privastead.cli.server",
            "serve",
            "--config",
            str(cfg),
            "--data-dir",
            str(data),
            "--port",
            str(port),
        ],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert child.stdout is not None
        assert f"https://127.0.0.1:{port}".encode() in child.stdout.readline()
        r = requests.get(
            f"https://127.0.0.1:{port}/v1/me",
            verify=str(cert),
            timeout=10,
            headers={"Authorization": f"Bearer {owner}"},
        )
        assert r.status_code == 200 and r.json()["account"] == "home"
        # A blob large enough for the file path: over TLS it is encrypted like everything
        # else, never sent raw from the file to the socket.
        box, body = "ab" * 16, os.urandom(1536 * 1024 + 5)
        auth = {"Authorization": f"Bearer {owner}"}
        base = f"https://127.0.0.1:{port}/v1/mailboxes/{box}"
        requests.put(base, verify=str(cert), timeout=10, headers=auth).raise_for_status()
        up = requests.post(
            base + "/messages",
            data=body,
            verify=str(cert),
            timeout=30,
            headers={**auth, "Privastead-Message-Id": "big"},
        )
        up.raise_for_status()
        got = requests.get(
            f"{base}/messages/{up.json()['seq']}", verify=str(cert), timeout=30, headers=auth
        )
        assert got.status_code == 200 and got.content == body
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
    finally:
        child.terminate()
        assert child.wait(30) == 0  # SIGTERM is a clean stop
        child.stdout.close() if child.stdout else None


async def test_files_at_rest_are_owner_only(tmp_path: Path) -> None:
    """Whatever the caller's umask and whatever an older relay left: data dir and every
    directory below it 0700, database, WAL and blob files 0600."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    old = os.umask(0o022)
    try:
        relay = await asyncio.to_thread(make_process, tmp_path)
    finally:
        os.umask(old)
    try:
        box = mailbox_id()
        async with relay.client() as c:
            await c.create_mailbox(box)
            await c.upload(box, os.urandom(100_000), "blob")  # a blob file
            await c.upload(box, b"inline", "small")  # WAL contents
        names = {p.name for p in data.rglob("*")}
        assert {"relay.sqlite3", "relay.sqlite3-wal", "relay.sqlite3-shm"} <= names
        modes = {p: stat.S_IMODE(p.stat().st_mode) for p in [data, *data.rglob("*")]}
        wrong = {str(p): oct(m) for p, m in modes.items() if m != (0o700 if p.is_dir() else 0o600)}
        assert wrong == {}
    finally:
        relay.kill9()
