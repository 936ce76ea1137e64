"""MLS core benchmark: encrypt/decrypt cost against OpenSSL measured in the same run, the fixed
cost per durable write, handshake latency, and what a 4K30 camera's stream costs in MLS CPU.

Baseline (same run, same bytes): AES-128-GCM encryption plus an Ed25519 signature by the
sender, and Ed25519 verification plus AES-128-GCM decryption by the receiver, with the
``cryptography`` package (OpenSSL). That is the cryptographic work an MLS PrivateMessage does
(RFC 9420 signs the full content, then AEAD-encrypts it). MLS also writes its state durably
(snapshot + fdatasync) before it returns anything; that cost is inside its figures.

Two ways to call MLS, each measured on both sides (hub encrypts, client decrypts):

- each call durable: ``encrypt`` then ``process``, one durable write per message and side
  (``ratio_64k``, ``ratio_1024k``);
- batches of ``BATCH`` messages: ``encrypt_batch`` then ``process_batch``, one durable write
  per batch and side (``ratio_64k_batch``, ``ratio_1024k_batch``).

Times are wall-clock (fdatasync waits count), interleaved with the baseline and the best of
several repetitions kept, so both see the same machine load. CPU figures (process CPU time,
``cpu_ratio_*``) leave out the wait for the disk, and give the per-message and per-byte cost
that the 4K30 estimate uses.

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

from privastead.crypto import Identity, signature_hash_backend

KIB = 1024
MIB = 1024 * KIB
BATCH = 8  # messages per durable write in the batch mode (e.g. live fragments queued together)
# A 4K30 H.264 camera's main stream (camera-like encoder settings) and how the hub sends it.
CAMERA_BITS_PER_S = 16e6
CLIP_FRAGMENTS_PER_S = 1.0  # event clips: ~1 s fMP4 fragments
LIVE_FRAGMENTS_PER_S = 10.0  # livestream: 3 frames per fragment at 30 fps
# The project's targets, against the OpenSSL baseline of the same run (wall clock, durable).
TARGETS = {"ratio_1024k": 1.5, "ratio_64k": 2.0, "ratio_1024k_batch": 1.5, "ratio_64k_batch": 2.0}


def baseline(
    size: int, count: int, clock: Callable[[], float] = time.perf_counter
) -> tuple[float, float]:
    """Seconds per message for (sender, receiver) with AES-128-GCM + Ed25519 in OpenSSL."""
    key = AESGCM(AESGCM.generate_key(bit_length=128))
    signer = Ed25519PrivateKey.generate()
    verifier = signer.public_key()
    payloads = [os.urandom(size) for _ in range(4)]
    sealed: list[tuple[bytes, bytes, bytes]] = []

    def send() -> float:
        sealed.clear()
        t = clock()
        for i in range(count):
            pt = payloads[i % 4]
            sig = signer.sign(pt)
            nonce = i.to_bytes(12, "big")
            sealed.append((nonce, key.encrypt(nonce, pt + sig, None), sig))
        return (clock() - t) / count

    def receive() -> float:
        t = clock()
        for nonce, ct, _ in sealed:
            opened = key.decrypt(nonce, ct, None)
            verifier.verify(opened[-64:], opened[:-64])
        return (clock() - t) / count

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
    """Seconds per message for (hub encrypt, client process), wall clock."""
    payloads = [os.urandom(size) for _ in range(4)]
    cts: list[bytes] = []

    def send() -> float:
        cts.clear()
        t = time.perf_counter()
        if batch:
            for first in range(0, count, BATCH):
                chunk = [payloads[i % 4] for i in range(first, min(first + BATCH, count))]
                cts.extend(pair.hub.encrypt_batch(pair.gid, chunk))
        else:
            for i in range(count):
                cts.append(pair.hub.encrypt(pair.gid, payloads[i % 4]))
        return (time.perf_counter() - t) / count

    def receive() -> float:
        t = time.perf_counter()
        if batch:
            for first in range(0, len(cts), BATCH):
                for r in pair.client.process_batch(pair.gid, cts[first : first + BATCH]):
                    if isinstance(r, Exception):
                        raise r
        else:
            for ct in cts:
                pair.client.process(pair.gid, ct)
        return (time.perf_counter() - t) / count

    return send(), receive()


def mls_cpu(pair: Pair, size: int, count: int) -> tuple[float, float]:
    """Process CPU seconds per message for (hub encrypt, client process), each call durable."""
    payload = os.urandom(size)
    t = time.process_time()
    cts = [pair.hub.encrypt(pair.gid, payload) for _ in range(count)]
    enc = (time.process_time() - t) / count
    t = time.process_time()
    for ct in cts:
        pair.client.process(pair.gid, ct)
    return enc, (time.process_time() - t) / count


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


def camera_cost(cpu: dict[int, tuple[float, float]]) -> dict[str, float]:
    """MLS CPU seconds per second of a 4K30 stream, from a fixed + per-byte fit of the CPU
    cost measured at 64 KiB and 1 MiB."""
    small, large = 64 * KIB, MIB
    out: dict[str, float] = {}
    for side, k in (("hub", 0), ("client", 1)):
        per_byte = (cpu[large][k] - cpu[small][k]) / (large - small)
        fixed = max(cpu[small][k] - per_byte * small, 0.0)
        out[f"fixed_us_{side}"] = fixed * 1e6
        out[f"per_mib_ms_{side}"] = per_byte * MIB * 1e3
        for mode, rate in (("clip", CLIP_FRAGMENTS_PER_S), ("live", LIVE_FRAGMENTS_PER_S)):
            bytes_per_s = CAMERA_BITS_PER_S / 8
            out[f"camera_4k30_{mode}_{side}_cpu"] = per_byte * bytes_per_s + fixed * rate
    return out


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
    counts = {64 * KIB: 32 if args.quick else 96, MIB: 8 if args.quick else 16}
    reps = 2 if args.quick else 7
    rows = []
    cpu: dict[int, tuple[float, float]] = {}
    result: dict[str, object] = {
        "bench": "mls",
        "batch_size": BATCH,
        "sha512_backend": signature_hash_backend(),
    }
    ratios: dict[str, float] = {}
    try:
        for size, count in counts.items():
            pairs = {batch: Pair(root / f"{size}-{batch}") for batch in (False, True)}
            best: dict[str, float] = {}
            cpu_runs: list[tuple[float, float]] = []
            base_cpu_runs: list[tuple[float, float]] = []
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
                    cpu_runs.append(mls_cpu(pairs[False], size, max(count // 4, 4)))
                    base_cpu_runs.append(baseline(size, max(count // 4, 4), time.process_time))
            finally:
                for pair in pairs.values():
                    pair.close()
            cpu[size] = (min(c[0] for c in cpu_runs), min(c[1] for c in cpu_runs))
            base_s, base_r = best["bases"], best["baser"]
            for batch in (False, True):
                mls_s, mls_r = best[f"mls{batch}s"], best[f"mls{batch}r"]
                label = f"{size // KIB} KiB" + (f" batch {BATCH}" if batch else "")
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
                ratios[f"ratio_{key}"] = round(ratio, 3)
                result[f"mls_encrypt_mib_s_{key}"] = round(size / mls_s / MIB, 1)
                result[f"mls_decrypt_mib_s_{key}"] = round(size / mls_r / MIB, 1)
                result[f"base_encrypt_mib_s_{key}"] = round(size / base_s / MIB, 1)
                result[f"base_decrypt_mib_s_{key}"] = round(size / base_r / MIB, 1)
            base_cpu = (min(c[0] for c in base_cpu_runs), min(c[1] for c in base_cpu_runs))
            k = f"{size // KIB}k"
            result[f"mls_cpu_us_encrypt_{k}"] = round(cpu[size][0] * 1e6, 1)
            result[f"mls_cpu_us_process_{k}"] = round(cpu[size][1] * 1e6, 1)
            result[f"base_cpu_us_encrypt_{k}"] = round(base_cpu[0] * 1e6, 1)
            result[f"base_cpu_us_decrypt_{k}"] = round(base_cpu[1] * 1e6, 1)
            result[f"cpu_ratio_{k}"] = round(sum(cpu[size]) / sum(base_cpu), 3)
        camera = camera_cost(cpu)
        result.update({k: round(v, 4) for k, v in camera.items()})
        hs = handshake_latencies(root, 5 if args.quick else 15)
        result.update({k: round(v, 3) for k, v in hs.items()})
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(
        f"{'message':<17}{'MLS enc MiB/s':>15}{'MLS dec MiB/s':>15}"
        f"{'base enc MiB/s':>16}{'base dec MiB/s':>16}{'ratio':>8}"
    )
    for label, me, md, be, bd, ratio in rows:
        print(f"{label:<17}{me:>15.1f}{md:>15.1f}{be:>16.1f}{bd:>16.1f}{ratio:>7.2f}x")
    print("ratio = (MLS encrypt + process time) / (OpenSSL AES-128-GCM + Ed25519 sign/verify)")
    print(f"Ed25519's SHA-512 in MLS: {result['sha512_backend']}")
    missed = [k for k, limit in TARGETS.items() if ratios[k] > limit]
    result.update(ratios)
    result.update({f"target_{k}": v for k, v in TARGETS.items()})
    result["targets_met"] = not missed
    print(
        "targets: "
        + ", ".join(f"{k} {ratios[k]} <= {v}" for k, v in TARGETS.items())
        + (f"; MISSED: {', '.join(missed)}" if missed else "; all met")
    )
    print(
        f"CPU only (each call durable, process CPU time): 64 KiB {result['cpu_ratio_64k']:.2f}x, "
        f"1024 KiB {result['cpu_ratio_1024k']:.2f}x"
    )
    print(
        f"self_update {hs['self_update_ms']:.2f} ms (with the client processing it "
        f"{hs['self_update_and_process_ms']:.2f} ms), add {hs['add_ms']:.2f} ms, "
        f"join {hs['join_ms']:.2f} ms; one durable write (snapshot+fdatasync) "
        f"{hs['persist_ms']:.2f} ms; state file {hs['state_file_bytes'] / 1024:.1f} KiB"
    )
    print(
        f"MLS CPU per message: hub {camera['fixed_us_hub']:.0f} us + "
        f"{camera['per_mib_ms_hub']:.2f} ms/MiB, client {camera['fixed_us_client']:.0f} us + "
        f"{camera['per_mib_ms_client']:.2f} ms/MiB"
    )
    mbit = CAMERA_BITS_PER_S / 1e6
    for mode, rate in (("clip", CLIP_FRAGMENTS_PER_S), ("live", LIVE_FRAGMENTS_PER_S)):
        print(
            f"4K30 camera, {mbit:.0f} Mbit/s as {mode} ({rate:.0f} messages/s): "
            f"hub {camera[f'camera_4k30_{mode}_hub_cpu'] * 100:.1f} % of a core, "
            f"each client {camera[f'camera_4k30_{mode}_client_cpu'] * 100:.1f} %"
        )
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
