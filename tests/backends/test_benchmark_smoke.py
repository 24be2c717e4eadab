"""benchmarks/triton_kernels.py --smoke runs every workload through the backend on CPU
(interpreter) and checks results against eager; keeps the GPU benchmark from rotting."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_triton_benchmark_smoke_mode_runs_and_matches_eager(tmp_path):
    env = dict(os.environ, TRITON_INTERPRET="1", TERRA_DYN_CACHE_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "triton_kernels.py"), "--smoke"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "GPU figures need a GPU" in proc.stdout
    rows = [line for line in proc.stdout.splitlines() if line.endswith("yes")]
    assert len(rows) == 6, proc.stdout
