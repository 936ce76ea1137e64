#!/usr/bin/env bash
# Find CPython interpreters >= 3.10 (3.10 is the stock Python of Ubuntu 22.04, the oldest
# release Privastead supports).
#   find-python.sh           the first one on PATH (python3.14 ... python3.10, then python3)
#   find-python.sh --all     every distinct one here: Debian's /usr/bin/python3.*,
#                            /usr/local/bin/python3.*, pyenv's versions; one path per line
#   find-python.sh --oldest  the oldest of --all (ties: the first found)
set -u
ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 10))' >/dev/null 2>&1; }

case "${1:-}" in
--all | --oldest)
    pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
    seen=" "
    found=()
    for candidate in /usr/bin/python3.* /usr/local/bin/python3.* \
        "$pyenv_root"/versions/*/bin/python3; do
        [ -x "$candidate" ] || continue
        case "$candidate" in *-config | *m) continue ;; esac
        real=$(readlink -f "$candidate")
        case "$seen" in *" $real "*) continue ;; esac
        seen="$seen$real "
        ok "$candidate" && found+=("$candidate")
    done
    [ ${#found[@]} -gt 0 ] || { echo "find-python: no Python >= 3.10 found" >&2; exit 1; }
    if [ "$1" = --all ]; then
        printf '%s\n' "${found[@]}"
    else
        for p in "${found[@]}"; do
            printf '%s %s\n' "$("$p" -c 'import sys; print("%03d%03d" % sys.version_info[:2])')" "$p"
        done | sort -s -n -k1,1 | head -n 1 | cut -d' ' -f2-
    fi
    ;;
*)
    for candidate in python3.14 python3.13 python3.12 python3.11 python3.10 python3; do
        if command -v "$candidate" >/dev/null 2>&1 && ok "$candidate"; then
            command -v "$candidate"
            exit 0
        fi
    done
    echo "python3.10-or-newer-not-found" # make fails with this name; scripts/system-deps.sh installs one
    ;;
esac
exit 0
