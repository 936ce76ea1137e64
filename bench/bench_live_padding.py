"""What padding live fragments to Padmé buckets costs, against unpadded fragments in the same
run: extra bytes on the wire, and MLS time per fragment (encrypt at the hub, which persists its
state each time as the live path does, plus decrypt at a viewer).

Fragments come from the real live fragmenter (``LiveFragmenter``, 3 frames per fragment) over
the walkers scene at 1080p and 4K, 30 fps H.264 (encoded once and cached, as in
``bench_live_media.py``). "Unpadded" is the same ``LivePayload`` without its padding (the
previous wire format); both are encrypted by one hub identity and decrypted by one viewer,
interleaved round by round (the order flips every round). The table also counts the distinct
ciphertext sizes the relay sees, which is what it could read the bitrate (motion, keyframes)
from.

    python bench/bench_live_padding.py [--seconds 4] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_live_media import clip, packets_of
from privastead.crypto import Identity
from privastead.media.live import LiveFragmenter, LiveSettings
from privastead.protocol.live import LivePayload

SIZES = {"1080p": (1920, 1080), "2160p": (3840, 2160)}


def fragments(width: int, height: int, seconds: float) -> list[LivePayload]:
    info, packets = packets_of(clip(width, height, "h264", seconds))
    fragmenter = LiveFragmenter(info, LiveSettings(frames_per_fragment=3))
    out = []
    for p in packets:
        out.extend(fragmenter.push(p))
    out.extend(fragmenter.close())
    return [LivePayload(n + 1, False, f.keyframe, f.media_time, f.data) for n, f in enumerate(out)]


def unpadded(p: LivePayload) -> bytes:
    """The payload without its padding: what the relay would see a fragment's size as."""
    raw = p.encode()
    return raw[: 30 + len(p.data)]


def mls_seconds(tmp: Path, plaintexts: list[bytes], tag: str) -> float:
    """Hub encrypt + viewer decrypt of every plaintext. The hub encrypts them as one batch (one
    state write): the live path writes its state per fragment, a fixed cost the same for both
    variants that would only add disk noise to the comparison."""
    hub = Identity.create(tmp / f"hub-{tag}.mls", b"hub")
    viewer = Identity.create(tmp / f"viewer-{tag}.mls", b"viewer")
    try:
        gid = hub.create_group()
        viewer.join(hub.add_members(gid, [viewer.key_package()]).welcome, inviter_identity=b"hub")
        t0 = time.perf_counter()
        for ciphertext in hub.encrypt_batch(gid, plaintexts):
            viewer.process(gid, ciphertext)
        return time.perf_counter() - t0
    finally:
        hub.close()
        viewer.close()
        for name in (f"hub-{tag}.mls", f"viewer-{tag}.mls"):
            (tmp / name).unlink(missing_ok=True)


def measure(name: str, seconds: float, repeat: int, tmp: Path) -> dict[str, float]:
    width, height = SIZES[name]
    payloads = fragments(width, height, seconds)
    padded = [p.encode() for p in payloads]
    plain = [unpadded(p) for p in payloads]
    times: dict[str, list[float]] = {"padded": [], "unpadded": []}
    for r in range(repeat):
        for kind, texts in (("unpadded", plain), ("padded", padded))[:: 1 if r % 2 else -1]:
            times[kind].append(mls_seconds(tmp, texts, kind))
    wire_plain, wire_padded = sum(map(len, plain)), sum(map(len, padded))
    per = len(payloads)
    return {
        "fragments": per,
        "fragment_kb": wire_plain / per / 1024,
        "bytes_overhead_pct": 100.0 * (wire_padded / wire_plain - 1),
        "max_overhead_pct": 100.0
        * max(len(a) / len(b) - 1 for a, b in zip(padded, plain, strict=True)),
        "ms_unpadded": 1000 * statistics.median(times["unpadded"]) / per,
        "ms_padded": 1000 * statistics.median(times["padded"]) / per,
        "time_ratio": statistics.median(times["padded"]) / statistics.median(times["unpadded"]),
        "distinct_sizes_unpadded": len(set(map(len, plain))),
        "distinct_sizes_padded": len(set(map(len, padded))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="scene length (4)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per variant (5)")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    args = parser.parse_args()
    result: dict[str, float | str] = {"bench": "live_padding"}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sizes:
            m = measure(name, args.seconds, args.repeat, Path(tmp))
            rows.append((name, m))
            for key, value in m.items():
                result[f"{name}_{key}"] = round(value, 4)
    print(
        f"{'stream':<8}{'frags':>7}{'KiB/frag':>10}{'bytes +%':>10}{'max +%':>8}"
        f"{'ms unpadded':>13}{'ms padded':>11}{'ratio':>7}{'sizes seen':>16}"
    )
    for name, m in rows:
        print(
            f"{name:<8}{m['fragments']:>7.0f}{m['fragment_kb']:>10.1f}"
            f"{m['bytes_overhead_pct']:>10.2f}{m['max_overhead_pct']:>8.2f}"
            f"{m['ms_unpadded']:>13.2f}{m['ms_padded']:>11.2f}{m['time_ratio']:>6.2f}x"
            f"{m['distinct_sizes_unpadded']:>8.0f} -> {m['distinct_sizes_padded']:<5.0f}"
        )
    print(
        "ms = hub encrypt + viewer decrypt per fragment, median of the rounds; sizes seen = "
        "distinct ciphertext sizes the relay observes"
    )
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
