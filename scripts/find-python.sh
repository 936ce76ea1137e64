#!/usr/bin/env bash
# Print the first Python >= 3.11 on PATH (python3.13, 3.12, 3.11, then python3).
for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        command -v "$candidate"
        exit 0
    fi
done
echo "python3.11-or-newer-not-found" # make fails with this name; scripts/system-deps.sh installs one
exit 0
