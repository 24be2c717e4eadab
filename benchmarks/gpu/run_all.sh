#!/usr/bin/env bash
# The whole GPU benchmark in one call, for the GPU machine (one H200, ~15 minutes of device
# time per task, at most 10 a command): every figure as JSON plus table.txt in OUT_DIR.
#
#   bash benchmarks/gpu/run_all.sh OUT_DIR            # on the GPU machine: about 7 minutes
#   bash benchmarks/gpu/run_all.sh OUT_DIR --smoke    # here, on CPU: TRITON_INTERPRET=1, tiny sizes
#
# Parts, each in its own process under its own time limit, so that one that fails or hangs
# records why and the rest still run: env.py (versions, clocks, copy ceiling), kernels.py
# (fused kernels vs eager and Inductor, GB/s), overhead.py (small graphs, CUDA graphs),
# programs.py (the ten programs end to end); table.py writes table.txt from their JSON.
# Budgets (seconds) can be set with TERRA_GPU_BUDGET_{KERNELS,OVERHEAD,PROGRAMS}.
set -uo pipefail
OUT=${1:?usage: run_all.sh OUT_DIR [--smoke]}
MODE=${2:-}
HERE="$(cd "$(dirname "$0")" && pwd)"
PY=${PYTHON:-python3}
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
export PYTHONUNBUFFERED=1
export TERRA_DYN_CACHE_DIR=${TERRA_DYN_CACHE_DIR:-$(mktemp -d)}   # cold kernel cache: first calls compile
if [ "$MODE" = "--smoke" ]; then
  export TRITON_INTERPRET=1 CUDA_VISIBLE_DEVICES=""
fi
K=${TERRA_GPU_BUDGET_KERNELS:-170}; O=${TERRA_GPU_BUDGET_OVERHEAD:-50}; P=${TERRA_GPU_BUDGET_PROGRAMS:-150}

part() {  # part NAME LIMIT ARGS...: run one part, record its exit status, never stop the run
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit} s) =="
  (cd "$HERE" && timeout -k 10 "$limit" "$PY" "$name.py" "$OUT" $MODE "$@")
  local rc=$?
  echo "$name exit $rc" >> "$OUT/parts.txt"
  [ $rc -eq 0 ] || echo "!! part $name ended with status $rc (124: time limit); the other parts still run"
}

: > "$OUT/parts.txt"
{
  part env 60
  part kernels $((K + 60)) --budget "$K"
  part overhead $((O + 60)) --budget "$O"
  part programs $((P + 30)) --budget "$P"
  (cd "$HERE" && "$PY" table.py "$OUT")
} 2>&1 | tee "$OUT/run.log"
