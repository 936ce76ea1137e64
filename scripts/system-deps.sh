#!/usr/bin/env bash
# Install what Privastead needs from the system: Debian/Ubuntu packages and a Rust toolchain.
# Idempotent and quiet when everything is present, so `make test` can call it every time.
set -euo pipefail

# Packages by purpose. Tests use Debian's GStreamer RTSP server as a third-party camera.
BUILD_PKGS=(build-essential pkg-config ca-certificates curl git)
PYTHON_PKGS=(python3-venv python3-dev)
GSTREAMER_PKGS=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
                gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)
# bench/bench_relay.py measures nginx serving the same blob files, as the ceiling for blob GET.
BENCH_PKGS=(nginx)
# Browser tests (live fragments through Media Source Extensions) drive Debian's chromium.
BROWSER_PKGS=(chromium)
# The relay as a cluster (tests/cluster, `make cluster`): PostgreSQL's server binaries (tests run
# their own throwaway instance, never the distribution's service) and HAProxy in front of
# several relay processes. Garage, the object store, is not packaged: scripts/garage.sh builds it.
CLUSTER_PKGS=(postgresql haproxy)
EXTRA_PKGS=(${PRIVASTEAD_EXTRA_PKGS:-})

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else echo "system-deps: need root (or sudo) to run: $*" >&2; return 1
    fi
}

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    wanted=("${BUILD_PKGS[@]}" "${PYTHON_PKGS[@]}" "${GSTREAMER_PKGS[@]}" "${BENCH_PKGS[@]}"
            "${BROWSER_PKGS[@]}" "${CLUSTER_PKGS[@]}" "${EXTRA_PKGS[@]}")
    # No Python >= 3.10 (a release older than Ubuntu 22.04 or Debian 12): try the archive's 3.11.
    if ! "$(dirname "$0")/find-python.sh" | grep -q '^/'; then
        wanted+=(python3.11 python3.11-venv python3.11-dev)
    fi
    for pkg in "${wanted[@]}"; do
        [ -n "$pkg" ] || continue
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$pkg")
        fi
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "system-deps: installing ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
else
    echo "system-deps: not a Debian/Ubuntu system; install the equivalents of:" \
         "${BUILD_PKGS[*]} ${GSTREAMER_PKGS[*]} yourself" >&2
fi

# Rust: openmls 0.9 needs rustc >= 1.91. Debian's and Ubuntu's cargo are older, so use rustup.
export PATH="$HOME/.cargo/bin:$PATH"
need_rust=1
if command -v rustc >/dev/null 2>&1; then
    minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
    [ "$minor" -ge 91 ] && need_rust=0
fi
if [ $need_rust -eq 1 ]; then
    echo "system-deps: installing a Rust toolchain with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal \
        --component rustfmt,clippy
fi
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1 && command -v rustup >/dev/null; then
        rustup component add "$component"
    fi
done
