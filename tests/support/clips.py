"""Short detection clips for tests: the demo scene, its people arriving when the test needs.

The detector only learns during its start-up and looks at those frames again afterwards, so a
test of what happens *after* the start-up (idle mode's rewind, the debug video's pictures of a
running event) needs its visitor to arrive later than the demo scene's first one does.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from privastead.camsim.render import Scene
from privastead.camsim.scene import make_scene
from privastead.camsim.suite import encode_scene

#: When the demo scene's first person appears (entering at the edge of the view).
DEMO_ENTERS = 4.5


def demo_clip(
    path: Path,
    *,
    width: int,
    height: int,
    seed: int = 0,
    duration: float,
    delay: float = 0.0,
    gop_seconds: float = 1.0,
) -> Path:
    """Encode the demo scene at 10 fps into ``path``, its people ``delay`` seconds later
    (they enter at about ``DEMO_ENTERS + delay``)."""
    base = make_scene("demo", width=width, height=height, fps=10, seed=seed, duration=duration)
    walkers = tuple(
        replace(w, path=tuple((t + delay, x, y) for t, x, y in w.path))
        for w in base.phenomena.walkers
    )
    scene = Scene(
        "demo",
        replace(base.phenomena, walkers=walkers),
        width=width,
        height=height,
        fps=10,
        seed=seed,
        duration=duration,
    )
    return encode_scene(scene, path, gop_seconds=gop_seconds)
