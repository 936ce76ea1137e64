"""RTP transport choice: loss from timeline gaps, auto's fallback to TCP and back, redaction."""

from __future__ import annotations

import random

import av
import pytest

from privastead.clock import FakeClock
from privastead.media.redact import describe_error, redact
from privastead.media.transport import LossMeter, LossSettings, TransportChooser


def _feed(meter: LossMeter, stream: int, step: float, count: int, lost: set[int]) -> None:
    for i in range(count):
        if i not in lost:
            meter.add(stream, i * step)


def test_no_gap_means_no_loss_even_with_jittery_steps() -> None:
    meter = LossMeter(window=60.0)
    rng = random.Random(3)
    t = 0.0
    for _ in range(300):
        t += (1 / 15) * (1 + rng.uniform(-0.3, 0.3))  # arrival jitter well under a frame
        meter.add(0, t)
    assert meter.missing == 0 and meter.expected == 300


def test_gaps_count_the_missing_packets_of_each_stream() -> None:
    meter = LossMeter(window=100.0)
    # video at 15 fps, frames 20, 40 and 41 lost; AAC at 16 kHz (64 ms), 5 packets lost
    _feed(meter, 0, 1 / 15, 150, {20, 40, 41})
    _feed(meter, 1, 1024 / 16000, 150, {30, 60, 61, 62, 100})
    assert meter.missing == 8
    assert meter.expected == 300
    assert meter.loss == pytest.approx(8 / 300)


def test_loss_is_measured_over_a_sliding_window_of_stream_time() -> None:
    meter = LossMeter(window=5.0)
    _feed(meter, 0, 0.1, 100, {10, 20})  # both losses in the first 2.1 s of 10 s
    assert meter.missing == 0  # they slid out of the last 5 s
    assert meter.total_missing == 2
    assert 45 <= meter.expected <= 52


def test_the_first_steps_teach_the_step_before_gaps_count() -> None:
    meter = LossMeter(window=100.0)
    for t in (0.0, 0.5, 0.6, 0.7):  # too few steps to know the stream's rhythm yet
        meter.add(0, t)
    assert meter.missing == 0


def test_auto_leaves_udp_on_loss_and_returns_after_an_hour(clock: FakeClock) -> None:
    settings = LossSettings(window=10.0, threshold=0.01, min_expected=100, udp_retry_after=3600)
    chooser = TransportChooser("auto", settings, clock)
    assert chooser.next() == "udp"
    meter = LossMeter(settings.window)
    _feed(meter, 0, 1 / 15, 60, {10})  # 1 of 60: under the minimum sample, no verdict
    assert not chooser.too_lossy(meter)
    _feed(meter, 1, 0.064, 100, {50, 51})  # 3 of 160 expected: 1.9 % >= 1 %
    assert chooser.too_lossy(meter)
    chooser.udp_failed("UDP lost 3 of 160")
    assert chooser.next() == "tcp" and chooser.fallback_reason == "UDP lost 3 of 160"
    clock.advance(3599)
    assert chooser.next() == "tcp"
    clock.advance(2)
    assert chooser.next() == "udp" and chooser.fallback_reason == ""


def test_a_little_loss_below_the_threshold_keeps_udp(clock: FakeClock) -> None:
    chooser = TransportChooser("auto", LossSettings(threshold=0.05, min_expected=50), clock)
    meter = LossMeter(20.0)
    _feed(meter, 0, 0.1, 200, {50, 120})  # 1 %
    assert not chooser.too_lossy(meter)


def test_silent_udp_is_blamed_only_when_tcp_then_delivers(clock: FakeClock) -> None:
    chooser = TransportChooser("auto", clock=clock)
    assert chooser.next() == "udp"
    chooser.udp_silent()  # a camera that died, or a firewall eating UDP?
    assert chooser.next() == "tcp"  # try TCP at once
    chooser.connected("tcp")  # TCP works: UDP was the problem
    assert chooser.next() == "tcp" and "firewall" in chooser.fallback_reason

    dead = TransportChooser("auto", clock=clock)
    assert dead.next() == "udp"
    dead.udp_silent()
    assert dead.next() == "tcp"  # TCP fails too (nothing connected): the camera is down
    assert dead.next() == "udp" and dead.fallbacks == 0


@pytest.mark.parametrize("mode", ["tcp", "udp"])
def test_fixed_transports_never_change(mode: str, clock: FakeClock) -> None:
    chooser = TransportChooser(mode, clock=clock)  # type: ignore[arg-type]
    meter = LossMeter()
    _feed(meter, 0, 0.1, 300, set(range(0, 300, 5)))
    assert not chooser.too_lossy(meter)
    chooser.udp_failed("x")
    chooser.udp_silent()
    assert chooser.next() == mode


def test_unknown_transport_is_refused() -> None:
    with pytest.raises(ValueError, match="tcp, udp, auto"):
        TransportChooser("quic")  # type: ignore[arg-type]


def test_credentials_never_survive_into_error_texts() -> None:
    url = "rtsp://admin:s3cr3t-P4ss@10.0.0.5:554/stream1"
    assert redact(f"cannot open {url} now") == "cannot open rtsp://10.0.0.5:554/stream1 now"
    error = av.error.HTTPUnauthorizedError(-825242872, "Server returned 401 Unauthorized", url)
    assert "s3cr3t" in str(error)  # PyAV repeats the URL it was given ...
    text = describe_error(error)
    assert "s3cr3t" not in text and "admin" not in text  # ... the hub never does
    assert "401" in text
    assert "s3cr3t" not in describe_error(OSError(5, "I/O error", url))
    assert "s3cr3t" not in describe_error(RuntimeError(f"odd failure at {url}"))
