#!/usr/bin/env bash
# Build the sdist and the wheel, check them, and smoke-test the WHEEL installed into a clean venv.
#
#     bash .ci/package.sh      # what `make dist` runs; leaves dist/flask_havn-*.tar.gz and *.whl
#
# build and twine go into a throw-away venv (never into the project's dependencies). The wheel
# is built from the sdist, so a file missing from the sdist breaks the build here, and the
# smoke test (.ci/wheel_smoke.py) runs from a temp dir with `python -I`, so nothing can be
# imported from this checkout: a module or data file the wheel forgot fails it.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
PYTHON="${PYTHON:-python3}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "package.sh: build and twine in a throw-away venv" >&2
"$PYTHON" -m venv "$work/tools"
"$work/tools/bin/python" -m pip install -q --upgrade pip
"$work/tools/bin/python" -m pip install -q build twine

# A stale *.egg-info/SOURCES.txt (left by an editable install) would add files the manifest forgot.
rm -rf dist build ./*.egg-info
"$work/tools/bin/python" -m build --outdir dist . >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
ls dist/flask_havn-*.tar.gz dist/flask_havn-*-py3-none-any.whl >&2
"$work/tools/bin/python" -m twine check --strict dist/*

echo "package.sh: the wheel into a clean venv, smoke-tested from $work" >&2
"$PYTHON" -m venv "$work/smoke"
"$work/smoke/bin/python" -m pip install -q --upgrade pip
"$work/smoke/bin/python" -m pip install -q "$root"/dist/flask_havn-*-py3-none-any.whl
cd "$work"
env -u PYTHONPATH "$work/smoke/bin/python" -I "$root/.ci/wheel_smoke.py"
