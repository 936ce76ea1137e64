"""MLS core benchmark: encrypt/decrypt throughput and handshake latency, against a baseline.

Baseline (same run, same bytes): AES-128-GCM encryption plus an Ed25519 signature by the
sender, and Ed25519 verification plus AES-128-GCM decryption by the receiver, with the
``cryptography`` package (OpenSSL). That is the cryptographic work an MLS PrivateMessage does
(RFC 9420 signs the full content, then AEAD-encrypts it). MLS additionally persists its state
durably (snapshot + fsync + rename + fsync dir) before returning; that cost is measured apart.

Prints a table and one JSON line. ``python bench/bench_mls.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from privastead.crypto import Identity

KIB = 1024
MIB = 1024 * KIB


def baseline(size: int, count: int) -> tuple[float, float]:
    """Seconds per message for (sender, receiver) with AES-128-GCM + Ed25519 in OpenSSL."""
    key = AESGCM(AESGCM.generate_key(bit_length=128))
    signer = Ed25519PrivateKey.generate()
    verifier = signer.public_key()
    payloads = [os.urandom(size) for _ in range(4)]
    sealed: list[tuple[bytes, bytes, bytes]] = []

    def send() -> float:
        sealed.clear()
        t = time.perf_counter()
        for i in range(count):
            pt = payloads[i % 4]
            sig = signer.sign(pt)
            nonce = i.to_bytes(12, "big")
            sealed.append((nonce, key.encrypt(nonce, pt + sig, None), sig))
        return (time.perf_counter() - t) / count

    def receive() -> float:
        t = time.perf_counter()
        for nonce, ct, _ in sealed:
            opened = key.decrypt(nonce, ct, None)
            verifier.verify(opened[-64:], opened[:-64])
        return (time.perf_counter() - t) / count

    return send(), receive()


class Pair:
    """A hub and a client in one group, in a scratch directory on the real disk."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True)
        self.hub = Identity.create(root / "hub", b"hub")
        self.client = Identity.create(root / "client", b"client")
        self.gid = self.hub.create_group()
        added = self.hub.add_members(self.gid, [self.client.key_package()])
        self.client.join(added.welcome, inviter_identity=b"hub")

    def close(self) -> None:
        self.hub.close()
        self.client.close()


def mls_throughput(pair: Pair, size: int, count: int, batch: bool) -> tuple[float, float]:
    payloads = [os.urandom(size) for _ in range(4)]
    cts: list[bytes] = []

    def send() -> float:
        cts.clear()
        t = time.perf_counter()
        if batch:
            cts.extend(pair.hub.encrypt_batch(pair.gid, [payloads[i % 4] for i in range(count)]))
        else:
            for i in range(count):
                cts.append(pair.hub.encrypt(pair.gid, payloads[i % 4]))
        return (time.perf_counter() - t) / count

    def receive() -> float:
        t = time.perf_counter()
        for ct in cts:
            pair.client.process(pair.gid, ct)
        return (time.perf_counter() - t) / count

    return send(), receive()


def latency(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def handshake_latencies(root: Path, runs: int) -> dict[str, float]:
    pair = Pair(root / "hs")
    try:

        def update() -> None:
            pair.client.process(pair.gid, pair.hub.self_update(pair.gid))

        self_update_processed = latency(update, runs)
        self_update = latency(lambda: pair.hub.self_update(pair.gid), runs)  # client left behind
        persist = latency(lambda: pair.hub.set_app_data(b""), runs)
        state_bytes = (root / "hs" / "hub").stat().st_size
    finally:
        pair.close()
    adds, joins = [], []
    for i in range(runs):
        d = root / f"join{i}"
        d.mkdir()
        with Identity.create(d / "hub", b"hub") as hub, Identity.create(d / "c", b"c") as c:
            gid = hub.create_group()
            kp = c.key_package()
            t = time.perf_counter()
            added = hub.add_members(gid, [kp])
            adds.append(time.perf_counter() - t)
            t = time.perf_counter()
            c.join(added.welcome, inviter_identity=b"hub")
            joins.append(time.perf_counter() - t)
    return {
        "self_update_ms": self_update * 1e3,
        "self_update_and_process_ms": self_update_processed * 1e3,
        "add_ms": statistics.median(adds) * 1e3,
        "join_ms": statistics.median(joins) * 1e3,
        "persist_ms": persist * 1e3,
        "state_file_bytes": float(state_bytes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(".cache/bench-mls"),
        help="scratch directory; keep it on the disk the state will live on (fsync cost)",
    )
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(dir=args.dir))
    counts = {64 * KIB: 20 if args.quick else 100, MIB: 4 if args.quick else 16}
    reps = 2 if args.quick else 5
    rows = []
    result: dict[str, object] = {"bench": "mls"}
    try:
        for size, count in counts.items():
            pairs = {batch: Pair(root / f"{size}-{batch}") for batch in (False, True)}
            best: dict[str, float] = {}
            try:
                # Interleave baseline and MLS repetitions so both see the same machine load
                # (the CI machine is shared); keep the best of each.
                for _ in range(reps):
                    s_r = {"base": baseline(size, count)}
                    for batch, pair in pairs.items():
                        s_r[f"mls{batch}"] = mls_throughput(pair, size, count, batch)
                    for k, (snd, rcv) in s_r.items():
                        best[k + "s"] = min(best.get(k + "s", 1e9), snd)
                        best[k + "r"] = min(best.get(k + "r", 1e9), rcv)
            finally:
                for pair in pairs.values():
                    pair.close()
            base_s, base_r = best["bases"], best["baser"]
            for batch in (False, True):
                mls_s, mls_r = best[f"mls{batch}s"], best[f"mls{batch}r"]
                label = f"{size // KIB} KiB" + (" batch" if batch else "")
                ratio = (mls_s + mls_r) / (base_s + base_r)
                rows.append(
                    (
                        label,
                        size / mls_s / MIB,
                        size / mls_r / MIB,
                        size / base_s / MIB,
                        size / base_r / MIB,
                        ratio,
                    )
                )
                key = f"{size // KIB}k{'_batch' if batch else ''}"
                result[f"ratio_{key}"] = round(ratio, 3)
                result[f"mls_encrypt_mib_s_{key}"] = round(size / mls_s / MIB, 1)
                result[f"mls_decrypt_mib_s_{key}"] = round(size / mls_r / MIB, 1)
                result[f"base_encrypt_mib_s_{key}"] = round(size / base_s / MIB, 1)
                result[f"base_decrypt_mib_s_{key}"] = round(size / base_r / MIB, 1)
        hs = handshake_latencies(root, 5 if args.quick else 15)
        result.update({k: round(v, 3) for k, v in hs.items()})
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(
        f"{'message':<14}{'MLS enc MiB/s':>15}{'MLS dec MiB/s':>15}"
        f"{'base enc MiB/s':>16}{'base dec MiB/s':>16}{'ratio':>8}"
    )
    for label, me, md, be, bd, ratio in rows:
        print(f"{label:<14}{me:>15.1f}{md:>15.1f}{be:>16.1f}{bd:>16.1f}{ratio:>7.2f}x")
    print(
        f"self_update {hs['self_update_ms']:.2f} ms (with the client processing it "
        f"{hs['self_update_and_process_ms']:.2f} ms), add {hs['add_ms']:.2f} ms, "
        f"join {hs['join_ms']:.2f} ms; one persist (snapshot+fsync) {hs['persist_ms']:.2f} ms; "
        f"state file {hs['state_file_bytes'] / 1024:.1f} KiB"
    )
    print("ratio = (MLS encrypt + decrypt time) / (OpenSSL AES-128-GCM + Ed25519 sign/verify)")
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
