"""When an idle camera may decode keyframes only, and when it must decode every frame.

The hub decodes keyframes only while nothing happens (about one frame per GOP: a fraction of
the CPU) and switches to full rate as soon as the detector sees an object-sized change it has
not confirmed yet (``MotionResult.wake``), while motion lasts, while an event runs, and for
``quiet_seconds`` after, so that a person pausing does not drop the camera back to 1 fps.
``LumaDecoder`` makes the switch to full rate immediate (it replays the current GOP).
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
            self._busy_until = at + self.quiet_seconds
        return "full" if at < self._busy_until else "keyframes"


__all__ = ["IdlePolicy"]
