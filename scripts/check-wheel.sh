#!/usr/bin/env bash
# Install the wheel from dist/ into a brand-new venv and import it: proves the wheel stands alone.
set -euo pipefail
python=${1:-python3}
wheel=$(ls -t dist/privastead-*.whl | head -n 1)
tag=$(basename "$wheel")
case "$tag" in
    *abi3-manylinux_2_28*|*abi3-manylinux_2_17*|*abi3-manylinux2014*) ;;
    *) echo "check-wheel: $tag is not an abi3 manylinux wheel for glibc <= 2.35" >&2; exit 1 ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$python" -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet "$wheel"
cd "$tmp"   # make sure the import does not pick up the source tree
"$tmp/venv/bin/python" - <<'PY'
import privastead, privastead._native as native
print(f"check-wheel: privastead {privastead.__version__}, core {native.core_version()} imports from {native.__file__}")
import tempfile, pathlib
from privastead.crypto import Identity
with tempfile.TemporaryDirectory() as d:
    with Identity.create(pathlib.Path(d) / "h", b"hub") as hub, Identity.create(pathlib.Path(d) / "c", b"c") as c:
        gid = hub.create_group()
        c.join(hub.add_members(gid, [c.key_package()]).welcome, inviter_identity=b"hub")
        assert c.process(gid, hub.encrypt(gid, b"wheel ok")).data == b"wheel ok"
print("check-wheel: MLS round trip through the installed wheel works")
from privastead.crypto import ShortCodeExchange
from privastead.protocol.short_code import generate, parse
code = generate(7)  # reads the wordlist shipped as package data
assert parse(str(code)) == code
h, d = ShortCodeExchange("hub", code.secret, b"ctx"), ShortCodeExchange("device", code.secret, b"ctx")
dt, ht = d.receive_pake(h.pake_message()), h.receive_pake(d.pake_message())
d.receive_confirmation(ht); h.receive_confirmation(dt)
assert d.open(h.seal(b"wheel ok")) == b"wheel ok"
print("check-wheel: short-code pairing (wordlist, SPAKE2) through the installed wheel works")
PY
