#!/usr/bin/env bash
# The unit tests against the lowest versions of the runtime dependencies that pyproject.toml
# allows, on the oldest Python >= 3.10 found here: keeps the declared lower bounds true. The
# relay's push tests run too: no unit test imports firebase-admin.
# Direct dependencies are pinned to their lower bounds (uv --resolution lowest-direct over a
# requirements list made from [project] dependencies); their own dependencies resolve as usual;
# the package itself comes from the wheel in dist/ (make wheel). Test tools are not runtime
# dependencies: they get the newest versions the dev extra allows that leave every installed
# package where it is.
set -euo pipefail
cd "$(dirname "$0")/.."
uv=${UV:-.venv/bin/uv}
venv=.venv-lowest
python=$(scripts/find-python.sh --oldest)
wheel=$(ls -t dist/privastead-*-manylinux_*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$wheel" ]; then
    echo "test-lowest: no manylinux wheel in dist/ (run make wheel first)" >&2
    exit 1
fi
requirements() { # the [project] dependencies, or the named dev tools
    .venv/bin/python - "$@" <<'PY'
import re, sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
wanted = sys.argv[1:]
if not wanted:
    print("\n".join(project["dependencies"]))
else:
    for req in project["optional-dependencies"]["dev"]:
        if re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0] in wanted:
            print(req)
PY
}
lists=$(mktemp -d)
trap 'rm -rf "$lists"' EXIT
requirements >"$lists/runtime.txt"
requirements pytest pytest-asyncio pytest-timeout hypothesis cryptography >"$lists/tools.txt"
rm -rf "$venv"
"$uv" venv --quiet --python "$python" "$venv"
"$uv" pip install --quiet --python "$venv/bin/python" --resolution lowest-direct \
    -r "$lists/runtime.txt"
"$uv" pip install --quiet --python "$venv/bin/python" --no-deps "$wheel"
# The tools must not move a runtime dependency off its lower bound.
"$uv" pip freeze --python "$venv/bin/python" >"$lists/pinned.txt"
"$uv" pip install --quiet --python "$venv/bin/python" -r "$lists/tools.txt" -c "$lists/pinned.txt"
echo "test-lowest: $("$venv/bin/python" --version) with:"
"$venv/bin/python" - <<'PY'
import re
from importlib.metadata import PackageNotFoundError, requires, version

found = []
for req in requires("privastead") or []:
    if "extra ==" in req:
        continue
    name = re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0]
    try:
        found.append(f"{name} {version(name)}")
    except PackageNotFoundError:
        pass  # a marker excluded it (a backport on a newer Python)
print("  " + ", ".join(found))
PY
"$venv/bin/python" -m pytest tests/unit tests/relay/test_relay_push.py -q -p no:cacheprovider "$@"
