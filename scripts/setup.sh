#!/usr/bin/env bash
# Creates a virtual environment (if missing), installs the pinned dependencies and builds
# terra_dyn (with its C extension) into it in editable mode. Idempotent.
#
#   bash scripts/setup.sh                          # python3 (3.11) -> .venv
#   PYTHON=python3.12 bash scripts/setup.sh        # -> .venv312 (requirements-py312.txt)
#   PYTHON=python3.13 VENV=/tmp/v bash scripts/setup.sh
#
# One venv per Python minor version: the C extension is built in place with the version's
# suffix (_C.cpython-312-...so), so the venvs share the checkout. Pins per version:
# requirements.txt (3.11: local CPU torch, triton 3.9.0), requirements-py312.txt and
# requirements-py313.txt (torch 2.13.0 CUDA build from the index, triton 3.7.1).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
MINOR=$("$PY" -c 'import sys; print("%d%d" % sys.version_info[:2])')
"$PY" -c 'import sys; sys.path.insert(0, "terra_dyn"); import pyversion; r = pyversion.unsupported_reason(); sys.exit(r and r + " Set PYTHON to python3.11, python3.12 or python3.13.")'
case "$MINOR" in
  311) VENV=${VENV:-.venv}; REQS=(-r requirements-test.txt) ;;
  *)   VENV=${VENV:-.venv$MINOR}; REQS=(-r "requirements-py$MINOR.txt" -r requirements-test-tools.txt) ;;
esac
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "${REQS[@]}" setuptools wheel
# --no-build-isolation: the build must see the pinned torch already installed, never
# fetch another one into an isolated build environment.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps -e .
# Zero-code-change start-up (TERRA_DYN=1 python script.py): editable installs do not ship
# top-level files, so put the one-line .pth into site-packages here (pip install . ships it).
"$VENV/bin/python" -c 'import shutil, sysconfig; shutil.copy("scripts/terra_dyn_auto.pth", sysconfig.get_paths()["purelib"])'
