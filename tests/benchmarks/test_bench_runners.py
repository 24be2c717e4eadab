"""The benchmark runners run end to end with tiny settings and write what they promise.

run.py, micro.py and breaks.py each run as a user runs them (a subprocess, flags only),
without torch.compile modes (Inductor compiles take tens of seconds here). Also checked:
a mode that kills its process (debug:segfault) is reported as crashed while the run goes on.

Runtime: about 30 s on two cores.
"""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_script(script, *flags, timeout=300):
    proc = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", script), *flags], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return proc.stdout


def test_run_py_compares_terra_dyn_with_eager(tmp_path):
    out_json = tmp_path / "run.json"
    out = run_script("run.py", "--programs", "dcgan,sdpoint", "--iters", "2", "--in-process",
                     "--modes", "eager,terra:interpreter", "--json", str(out_json))
    data = json.loads(out_json.read_text())
    assert [r["program"] for r in data["results"]] == ["dcgan", "sdpoint"]
    for result in data["results"]:
        eager, terra = result["modes"]["eager"], result["modes"]["terra:interpreter"]
        assert eager["status"] == "ok" and len(eager["times"]) == 2
        assert terra["status"] == "ok", terra.get("error")
        # whether they match is test_programs.py's business; here: the runner compared them
        assert isinstance(terra["loss_match"], bool) and terra["max_rel_diff"] is not None
        assert len(terra["losses"]) == 2
        assert set(terra["counts"]) >= {"graphs", "breaks", "recompiles", "fallbacks", "late_translations"}
    assert max(len(line) for line in out.splitlines() if line.startswith(("dcgan", "sdpoint"))) <= 100
    assert "translations after step 2" in out
    assert str(out_json) in out


def test_run_py_reports_a_crashing_mode_and_keeps_going(tmp_path):
    out_json = tmp_path / "crash.json"
    out = run_script("run.py", "--programs", "gpt2", "--iters", "1", "--modes", "eager,debug:segfault",
                     "--json", str(out_json))
    modes = json.loads(out_json.read_text())["results"][0]["modes"]
    assert modes["debug:segfault"]["status"] == "crashed"
    assert "signal 11" in modes["debug:segfault"]["error"]
    assert modes["eager"]["status"] == "ok"
    assert "CRASHED" in out


def test_micro_py_prints_every_section(tmp_path):
    out_json = tmp_path / "micro.json"
    out = run_script("micro.py", "--quick", "--no-compile", "--json", str(out_json))
    results = json.loads(out_json.read_text())["results"]
    assert set(results) == {"overhead", "guards", "translation", "first_call"}
    assert results["first_call"]["mlp12"]["terra_dyn"]["matches_eager"]
    assert results["first_call"]["transformer_block"]["terra_dyn"]["matches_eager"]
    for section in ("1. per-call overhead", "2. guard check", "3. translation", "4. first call"):
        assert section in out


def test_breaks_py_runs_every_break_program(tmp_path):
    out_json = tmp_path / "breaks.json"
    run_script("breaks.py", "--quick", "--modes", "eager,terra", "--json", str(out_json))
    results = json.loads(out_json.read_text())["results"]
    assert set(results) == {"print", "numpy", "branch", "item_loop"}
    for name, row in results.items():
        assert "error" not in row["terra"], (name, row["terra"])
        assert row["terra"]["matches_eager"], name
        assert row["terra"]["median_us"] > 0
        assert isinstance(row["terra"]["graphs_per_call"], int), name  # counted through a backend wrapper
