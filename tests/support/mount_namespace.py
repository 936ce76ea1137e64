"""A private mount namespace for tests that need a small file system (a size-limited tmpfs).

``unshare --mount`` as root, ``unshare --user --map-root-user --mount`` otherwise (unprivileged
user namespaces): the tmpfs is mounted only in the child's namespace and vanishes with it;
nothing is mounted on the machine itself. The network namespace is shared, so a process in it
reaches loopback servers (relay, camsim) as usual.
"""

from __future__ import annotations

import os
import shutil
import subprocess


def private_mount_namespace() -> list[str] | None:
    """The command prefix that runs a command in a private mount namespace (None: not
    possible here)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    options = [["--mount", "--propagation", "private"]] if os.geteuid() == 0 else []
    options.append(["--user", "--map-root-user", "--mount", "--propagation", "private"])
    for option in options:
        probe = subprocess.run(
            [
                unshare,
                *option,
                "sh",
                "-c",
                "mount -t tmpfs -o size=1m none /mnt 2>/dev/null || "
                "mount -t tmpfs -o size=1m none /tmp",
            ],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return [unshare, *option]
    return None


__all__ = ["private_mount_namespace"]
