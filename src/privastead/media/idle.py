"""When an idle camera may decode keyframes only, and when it must decode every frame.

The hub decodes keyframes only while nothing happens (about one frame per GOP: a fraction of
the CPU) and switches to full rate as soon as the detector sees an object-sized change it has
not confirmed yet (``MotionResult.wake``), while motion lasts, while an event runs, and for
``quiet_seconds`` after, so that a person pausing does not drop the camera back to 1 fps.
``media.analysis`` makes the switch to full rate immediate (it rewinds to the keyframe before
the one that showed the change and replays from there).
"""

from __future__ import annotations

from privastead.media.decode import DecodeMode
from privastead.media.detector import MotionResult


class IdlePolicy:
    """Chooses the decode mode of one camera from its detector results."""

    def __init__(self, quiet_seconds: float = 3.0, *, enabled: bool = True) -> None:
        self.quiet_seconds = quiet_seconds
        self.enabled = enabled
        self._busy_until = -float("inf")

    def update(self, result: MotionResult, at: float, event_active: bool) -> DecodeMode:
        """The mode to use from the next packet on (``at``: the frame's time in seconds)."""
        if not self.enabled:
            return "full"
        if result.wake or result.motion or event_active:
            self.hold(at)
        return self.mode(at)

    def hold(self, at: float) -> None:
        """Stay at full rate until ``quiet_seconds`` after ``at``."""
        self._busy_until = max(self._busy_until, at + self.quiet_seconds)

    def mode(self, at: float) -> DecodeMode:
        """The mode at time ``at`` without a new result."""
        if not self.enabled:
            return "full"
        return "full" if at < self._busy_until else "keyframes"


__all__ = ["IdlePolicy"]
