"""Child for test_clipstore_crash: stores the fragments named on the command line, slowly
enough to be killed in the middle, printing each index once ``add`` returned (= acknowledged)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from privastead.client.clipstore import ClipStore
from privastead.protocol.messages import ClipFragment

CLIP = "c" * 32
EVENT = "e" * 32
LAST = 39


def fragment(index: int) -> ClipFragment:
    size = 20_000 + (index * 7919) % 60_000
    block = hashlib.sha256(b"%d" % index).digest()
    data = (block * (size // 32 + 1))[:size]
    return ClipFragment(CLIP, EVENT, index, index == LAST, index == 0, index, data)


def main() -> None:
    store = ClipStore(Path(sys.argv[1]))
    for index in (int(x) for x in sys.argv[2].split(",") if x):  # may be empty: all acked
        store.add(fragment(index))
        sys.stdout.write(f"{index}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
