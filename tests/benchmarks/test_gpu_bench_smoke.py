"""benchmarks/gpu/run_all.sh --smoke: the GPU benchmark's one command, run on CPU (Triton's
interpreter, tiny sizes) so that it cannot rot between the rare runs on a GPU machine.
Checks that every part ran, that every terra_dyn result agreed with eager, and that the
table names each part."""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_gpu_benchmark_smoke_run_writes_every_part(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, PYTHON=sys.executable, TERRA_DYN_CACHE_DIR=str(tmp_path / "cache"),
               TERRA_GPU_BUDGET_PROGRAMS="120")
    proc = subprocess.run(["bash", os.path.join(REPO, "benchmarks", "gpu", "run_all.sh"), str(out), "--smoke"],
                          env=env, capture_output=True, text=True, timeout=900)
    log = proc.stdout[-4000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, log
    parts = (out / "parts.txt").read_text().split("\n")
    assert [p for p in parts if p] == [f"{n} exit 0" for n in ("env", "kernels", "overhead", "programs")], log

    env_json = json.loads((out / "env.json").read_text())
    assert env_json["smoke"] is True and env_json["copy"]["gbps"] > 0

    kernels = json.loads((out / "kernels.json").read_text())["rows"]
    assert len(kernels) == 10 and all(r["systems"]["terra"]["ok"] for r in kernels), kernels
    assert all(r["systems"]["terra"]["kernels"] for r in kernels)  # each graph became a kernel

    overhead = json.loads((out / "overhead.json").read_text())["rows"]
    assert len(overhead) == 3
    for row in overhead:
        assert row["terra_ok"] and row["terra_cudagraphs_ok"], row
        # no GPU here: the CUDA-graph runner says why it ran the graph as is
        assert row["terra_cudagraphs_notes"] == ["runs without CUDA graphs: inputs not all on a CUDA device"]

    programs = json.loads((out / "programs.json").read_text())["results"]
    assert [p["program"] for p in programs] == ["gpt2", "dcgan", "resnet50"]
    for result in programs:
        assert result["modes"]["fx:interpreter"]["loss_match"] is True, result

    table = (out / "table.txt").read_text()
    for heading in ("copy ceiling", "case ", "graph ", "programs ("):
        assert heading in table
