#!/usr/bin/env bash
# The pinned Garage (S3-compatible object store) that the relay-cluster tests and `make cluster`
# run. Garage is not packaged by Debian or Ubuntu, so it is built from crates.io once per
# machine and kept in a cache that later runs (and other checkouts) reuse:
#
#   ~/.cache/privastead/garage-<version>/bin/garage      (PRIVASTEAD_CACHE_DIR overrides ~/.cache/privastead)
#
#   scripts/garage.sh path        print the binary's path; exit 1 if it is not built
#   scripts/garage.sh build       build it now unless present (waits for a build in progress)
#   scripts/garage.sh background  start that build detached, at lowest CPU priority, and return
#   scripts/garage.sh status      say whether it is built, building, or missing
#
# The build takes tens of minutes on two cores (measured figures: docs/design/relay-cluster.md),
# so `make test` starts it in the background first and only the tests that need Garage wait.
# A file lock makes concurrent callers share one build; an interrupted build resumes from its
# target directory.
set -euo pipefail

GARAGE_VERSION=2.5.0
# Only what we use: the LMDB metadata engine and bundled C libraries (no system libsodium or
# zstd needed). Dropping the default metrics, sqlite and k2v features shortens the build.
GARAGE_FEATURES=bundled-libs,lmdb

CACHE=${PRIVASTEAD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/privastead}
DIR=$CACHE/garage-$GARAGE_VERSION
BIN=$DIR/bin/garage
LOCK=$CACHE/garage-$GARAGE_VERSION.lock
LOG=$CACHE/garage-$GARAGE_VERSION.log
TARGET=$CACHE/garage-$GARAGE_VERSION-target
export PATH="$HOME/.cargo/bin:$PATH"

built() { [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; }

build_locked() {
    # Runs with $LOCK held (fd 9).
    if built; then return 0; fi
    command -v cargo >/dev/null || { echo "garage: cargo not found (run scripts/system-deps.sh)" >&2; return 1; }
    local start
    start=$(date +%s)
    echo "garage: building Garage $GARAGE_VERSION from crates.io into $DIR (once per machine)" >&2
    rm -rf "$DIR.tmp"
    cargo install garage --version "$GARAGE_VERSION" --locked --no-default-features \
        --features "$GARAGE_FEATURES" --root "$DIR.tmp" --target-dir "$TARGET" --quiet
    rm -rf "$DIR"
    mv "$DIR.tmp" "$DIR"
    rm -rf "$TARGET"  # several GiB of intermediate objects; the binary is all we keep
    echo "garage: built $BIN in $(( $(date +%s) - start )) s" >&2
}

cmd=${1:-status}
mkdir -p "$CACHE"
case "$cmd" in
    path)
        built || { echo "garage: $BIN is not built (scripts/garage.sh build)" >&2; exit 1; }
        echo "$BIN"
        ;;
    build)
        built && { echo "$BIN"; exit 0; }
        exec 9>"$LOCK"
        if ! flock -n 9; then
            echo "garage: another build is running (log: $LOG); waiting for it" >&2
            flock 9
        fi
        build_locked 2>&1 | tee -a "$LOG" >&2
        built && echo "$BIN"
        ;;
    detached-build)  # what `background` runs: its output already goes to $LOG
        exec 9>"$LOCK"
        flock 9
        build_locked
        ;;
    background)
        built && exit 0
        # A build already holding the lock is the one we would start.
        if ! flock -n "$LOCK" true; then
            echo "garage: build already running (log: $LOG)"
            exit 0
        fi
        # setsid: not in make's process group, so it outlives an interrupted make (and resumes).
        setsid nice -n 19 "$0" detached-build >>"$LOG" 2>&1 </dev/null &
        echo "garage: building Garage $GARAGE_VERSION in the background (process group $!, log: $LOG)"
        ;;
    status)
        if built; then echo "garage: built: $BIN"
        elif ! flock -n "$LOCK" true; then echo "garage: building (log: $LOG)"
        else echo "garage: not built (scripts/garage.sh build)"; exit 1
        fi
        ;;
    *)
        echo "usage: scripts/garage.sh path|build|background|status" >&2
        exit 2
        ;;
esac
