"""Percentiles and the latency table the end-to-end benchmarks print (seconds in, ms out)."""

from __future__ import annotations

import statistics


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile by nearest rank (NaN for no values): no interpolation between two
    measurements, so a reported p95 is a latency that really happened."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def print_latency(rows: dict[str, list[float]], width: int = 34) -> None:
    """One line per metric: count, p50, p95 and mean in milliseconds."""
    print(f"{'metric':<{width}} {'n':>3} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    for name, values in rows.items():
        mean = statistics.fmean(values) if values else float("nan")
        print(
            f"{name:<{width}} {len(values):>3} {pct(values, 0.5) * 1e3:>8.1f} "
            f"{pct(values, 0.95) * 1e3:>8.1f} {mean * 1e3:>8.1f}"
        )
