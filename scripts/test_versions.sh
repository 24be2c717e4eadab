#!/usr/bin/env bash
# Sets up a venv for each extra Python version and runs the version subset there.
#
#   bash scripts/test_versions.sh                  # 3.12 and 3.13, subset from versions_subset.txt
#   VERSIONS="3.13" bash scripts/test_versions.sh
#   SUBSET_FILE=my_list.txt bash scripts/test_versions.sh
#
# Each version also runs the paths in scripts/versions_subset_3XX.txt when that file exists
# (the folders that pass whole there since the translator's port, docs/VERSIONS.md).
#
# Each version's interpreter: PYTHON312 / PYTHON313 when set, else python3.X on PATH when it
# runs, else the newest pyenv build of it (~/.pyenv/versions/3.X.*).
# Its venv is .venv3XX (scripts/setup.sh; a fresh one downloads the torch 2.13.0 CUDA
# build, about 2.5 min per version measured here, docs/VERSIONS.md). 3.11 is not run here:
# .ci/run runs the full suite on it first.
#
# Disk: a CUDA torch venv is about 6 GB and pip's cache of its wheels about 3 GB more. Under
# CI=true (or TERRA_DYN_DROP_VENVS=1) pip keeps no cache and each version's venv is removed
# after its tests, so one CUDA venv is on disk at a time (the CI machine ran out of space
# building the second one with both kept).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSIONS=${VERSIONS:-"3.12 3.13"}
SUBSET_FILE=${SUBSET_FILE:-scripts/versions_subset.txt}
mapfile -t SUBSET < <(grep -v '^\s*#' "$SUBSET_FILE" | grep -v '^\s*$')
find_python() {  # $1 = 3.12
  local var="PYTHON${1/./}" found
  if [ -n "${!var:-}" ]; then echo "${!var}"; return; fi
  if "python$1" -c pass 2>/dev/null; then echo "python$1"; return; fi
  found=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1".*/bin/"python$1" 2>/dev/null | sort -V | tail -1)
  if [ -n "$found" ]; then echo "$found"; return; fi
  echo "scripts/test_versions.sh: no Python $1 found (set PYTHON${1/./})" >&2
  return 1
}
DROP=${TERRA_DYN_DROP_VENVS:-$([ "${CI:-}" = true ] && echo 1 || echo 0)}
if [ "$DROP" = 1 ]; then
  export PIP_NO_CACHE_DIR=1
fi
status=0
for v in $VERSIONS; do
  minor=${v/./}
  py=$(find_python "$v")
  EXTRA=()
  if [ -f "scripts/versions_subset_$minor.txt" ]; then
    mapfile -t EXTRA < <(grep -v '^\s*#' "scripts/versions_subset_$minor.txt" | grep -v '^\s*$')
  fi
  echo "=== Python $v ($py): ${SUBSET[*]} ${EXTRA[*]}"
  df -h . | tail -1 | awk '{print "disk free before setup: " $4}'
  PYTHON="$py" VENV=".venv$minor" bash scripts/setup.sh
  ".venv$minor/bin/python" -m pytest -q "${SUBSET[@]}" "${EXTRA[@]}" || status=1
  if [ "$DROP" = 1 ]; then
    rm -rf ".venv$minor"
  fi
done
exit $status
