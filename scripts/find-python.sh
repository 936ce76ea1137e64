#!/usr/bin/env bash
# Print the first Python >= 3.10 on PATH (python3.13 ... python3.10, then python3).
# 3.10 is the stock Python of Ubuntu 22.04, the oldest release Privastead supports.
for candidate in python3.14 python3.13 python3.12 python3.11 python3.10 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
        command -v "$candidate"
        exit 0
    fi
done
echo "python3.10-or-newer-not-found" # make fails with this name; scripts/system-deps.sh installs one
exit 0
