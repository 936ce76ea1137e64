#!/usr/bin/env bash
# Install every wheel given (default: dist/*.whl) into a fresh virtualenv of every CPython >= 3.10 found on this
# machine (scripts/find-python.sh --all: Debian's /usr/bin/python3.*, pyenv's versions), and
# from outside the source tree import it, run the three console scripts' --help and the MLS
# walk-through. Proves each wheel stands alone on each Python, the stock 3.10 of Ubuntu 22.04
# included. Virtualenvs are made with uv (fast, cached; no ensurepip needed); a Python that
# cannot make one is reported and skipped, as is one whose packages cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/.."
uv=${UV:-.venv/bin/uv}
shopt -s nullglob
wheels=("$@")
[ ${#wheels[@]} -gt 0 ] || wheels=(dist/privastead-*.whl)
if [ ${#wheels[@]} -eq 0 ]; then
    echo "check-wheel: no wheel in dist/ (run make wheel first)" >&2
    exit 1
fi
for wheel in "${wheels[@]}"; do
    case "$(basename "$wheel")" in
    *-cp310-abi3-manylinux_*.whl | *-cp310-abi3-linux_*.whl) ;;
    *)
        echo "check-wheel: $wheel is not an abi3 wheel for CPython >= 3.10" >&2
        exit 1
        ;;
    esac
done
mapfile -t pythons < <(scripts/find-python.sh --all)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
checked=0
skipped=()
for python in "${pythons[@]}"; do
    version=$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
    for wheel in "${wheels[@]}"; do
        venv="$tmp/venv"
        rm -rf "$venv"
        if ! "$uv" venv --quiet --python "$python" "$venv" 2>"$tmp/err"; then
            skipped+=("$python ($version): no virtualenv: $(tail -n 1 "$tmp/err")")
            continue
        fi
        if ! "$uv" pip install --quiet --python "$venv/bin/python" "$wheel" 2>"$tmp/err"; then
            cat "$tmp/err" >&2
            echo "check-wheel: FAILED to install $(basename "$wheel") on $python ($version)" >&2
            exit 1
        fi
        (
            cd "$tmp" # the import must not find the source tree
            "$venv/bin/python" - <<'PY'
import privastead, privastead._native as native, sys
assert "site-packages" in native.__file__, native.__file__
print(f"  privastead {privastead.__version__}, core {native.core_version()}, "
      f"OpenMLS {native.openmls_version()} on Python {sys.version.split()[0]}")
from privastead.crypto import signature_hash_backend
print(f"  Ed25519's SHA-512: {signature_hash_backend()}")
from privastead.crypto import ShortCodeExchange
from privastead.protocol.short_code import generate, parse
code = generate(7)  # reads the wordlist shipped as package data
assert parse(str(code)) == code
h, d = ShortCodeExchange("hub", code.secret, b"ctx"), ShortCodeExchange("device", code.secret, b"ctx")
dt, ht = d.receive_pake(h.pake_message()), h.receive_pake(d.pake_message())
d.receive_confirmation(ht); h.receive_confirmation(dt)
assert d.open(h.seal(b"wheel ok")) == b"wheel ok"
print("  short-code pairing (wordlist, SPAKE2) through the installed wheel works")
PY
            for cmd in privastead-hub privastead-app privastead-server; do
                "$venv/bin/$cmd" --help >"$tmp/out" || {
                    echo "check-wheel: $cmd --help failed" >&2
                    exit 1
                }
                grep -q "usage:" "$tmp/out"
            done
            "$venv/bin/python" -m privastead.demo --crypto >"$tmp/demo" || {
                cat "$tmp/demo" >&2
                echo "check-wheel: the MLS walk-through failed" >&2
                exit 1
            }
        )
        echo "check-wheel: ok  $(basename "$wheel")  on  $python ($version)"
        checked=$((checked + 1))
    done
done
for s in "${skipped[@]}"; do echo "check-wheel: skipped $s"; done
if [ "$checked" -eq 0 ]; then
    echo "check-wheel: no Python could install the wheel" >&2
    exit 1
fi
echo "check-wheel: $checked wheel/Python pairs passed"
