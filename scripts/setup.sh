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
# Zero-code-change start-up (TERRA_DYN=1 python script.py): editable installs do not ship
# top-level files, so put the one-line .pth into site-packages here (pip install . ships it).
.venv/bin/python -c 'import shutil, sysconfig; shutil.copy("scripts/terra_dyn_auto.pth", sysconfig.get_paths()["purelib"])'
