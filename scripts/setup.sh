#!/usr/bin/env bash
# Creates .venv in the repository (if missing), installs the pinned dependencies and
# builds terra_dyn (with its C extension) into it in editable mode. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "terra_dyn needs Python 3.11 (found %d.%d); set PYTHON=python3.11" % sys.version_info[:2])'
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-test.txt setuptools wheel
# --no-build-isolation: the build must see the pinned torch already installed, never
# fetch another one into an isolated build environment.
.venv/bin/python -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps -e .
