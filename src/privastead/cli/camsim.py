"""`privastead-camsim`: an RTSP camera simulator serving generated scenes or a looped file."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    print("privastead-camsim: not built yet (see issue 4)", file=sys.stderr)
    return 1


__all__ = ["main"]
