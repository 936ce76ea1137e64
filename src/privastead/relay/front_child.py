"""The native front's process: ``python -m privastead.relay.front_child SETTINGS_JSON``.

Started by ``privastead-server serve`` (``relay/front.py``), never by hand. The process only
enters the Rust front and stays there; the relay stops it over the control socket, and it
dies with the relay (the kernel's parent-death signal), so terminal and service-manager
signals are left to the relay.
"""

from __future__ import annotations

import signal
import sys

from privastead import _native


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(
            "privastead.relay.front_child is started by `privastead-server serve`",
            file=sys.stderr,
        )
        return 2
    # Ctrl-C and systemd's SIGTERM reach the whole process group; the relay then stops this
    # front gracefully itself (in-flight uploads are answered first).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        _native.relay_front(args[0])
    except ValueError as exc:
        print(f"privastead relay front: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"privastead relay front: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
