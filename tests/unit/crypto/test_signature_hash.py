"""Ed25519's SHA-512 runs on the system's OpenSSL 3 where there is one, AWS-LC otherwise: the
choice changes speed only. A device hashing with one talks to a device hashing with the other."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from crypto_helpers import Group

from privastead.crypto import signature_hash_backend

LIBCRYPTO = ("/usr/lib/x86_64-linux-gnu/libcrypto.so.3", "/lib/x86_64-linux-gnu/libcrypto.so.3")
DISABLE = "PRIVASTEAD_SYSTEM_LIBCRYPTO"


def test_the_system_openssl_hashes_where_it_is_installed() -> None:
    if os.environ.get(DISABLE) == "0" or not any(Path(p).exists() for p in LIBCRYPTO):
        assert signature_hash_backend().startswith("AWS-LC (")
    else:
        assert signature_hash_backend().startswith("OpenSSL 3"), signature_hash_backend()
        assert signature_hash_backend().endswith("(system libcrypto)")


def test_a_device_on_aws_lc_reads_and_answers_a_hub_on_openssl(
    make_group: Callable[[int], Group], tmp_path: Path
) -> None:
    g = make_group(1)
    (phone,) = g.clients
    path = g.paths[phone.name]
    phone.close()  # the other process takes the state file's lock
    fragment = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4: every hash path, one block short
    (tmp_path / "in").write_bytes(g.hub.encrypt(g.gid, fragment))
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from privastead.crypto import signature_hash_backend
        from privastead.crypto import Identity
        assert signature_hash_backend() == "AWS-LC ({DISABLE}=0)", signature_hash_backend()
        phone = Identity.open({str(path)!r})
        got = phone.process({g.gid!r}, Path({str(tmp_path / "in")!r}).read_bytes())
        Path({str(tmp_path / "echo")!r}).write_bytes(got.data)
        Path({str(tmp_path / "out")!r}).write_bytes(phone.encrypt({g.gid!r}, got.data[::-1]))
        phone.close()
        """
    )
    env = {**os.environ, DISABLE: "0"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "echo").read_bytes() == fragment
    reply = g.hub.process(g.gid, (tmp_path / "out").read_bytes())
    assert reply.data == fragment[::-1]
