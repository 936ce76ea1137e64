#!/usr/bin/env bash
# The sdist, made from a fresh clone of HEAD (so it can only hold committed files), and a wheel
# built from that sdist the way pip builds one (maturin from PyPI in an isolated environment).
#   build-sdist.sh SDIST_DIR WHEEL_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
sdist_dir=$(realpath -m "${1:-dist}")
wheel_dir=$(realpath -m "${2:-target/wheel-from-sdist}")
uv=${UV:-$root/.venv/bin/uv}
maturin=${MATURIN:-$root/.venv/bin/maturin}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "build-sdist: uncommitted changes are not in the sdist (it is built from HEAD)" >&2
fi
git clone --quiet --no-local --depth 1 "file://$root" "$tmp/clone"
(cd "$tmp/clone" && "$maturin" sdist --out "$tmp/sdist")
mkdir -p "$sdist_dir" "$wheel_dir"
sdist=$(ls "$tmp"/sdist/privastead-*.tar.gz)
cp "$sdist" "$sdist_dir/"
echo "build-sdist: $(basename "$sdist") ($(du -k "$sdist" | cut -f1) KiB, $(tar tzf "$sdist" | wc -l) files)"
rm -f "$wheel_dir"/privastead-*.whl
# The workspace's target directory: compiled dependencies are reused.
CARGO_TARGET_DIR="$root/target" "$uv" build --quiet --wheel --out-dir "$wheel_dir" \
    "$sdist_dir/$(basename "$sdist")"
echo "build-sdist: built $(basename "$(ls "$wheel_dir"/privastead-*.whl)") from the sdist"
