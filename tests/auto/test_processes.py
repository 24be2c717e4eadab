"""Zero-change mode across processes and at exit: one report per process, none
overwritten, the script's exit status kept, and nothing printed by terra_dyn at shutdown."""
import json
import os
import subprocess
import sys
import textwrap

from terra_dyn import auto

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SPAWNING = textwrap.dedent("""
    import multiprocessing as mp
    import sys
    import torch

    def work(n):
        return float((torch.ones(n) * 2).sum())

    def main():
        ctx = mp.get_context("spawn")
        pool = ctx.Pool(2)
        print(sorted(pool.map(work, [1, 2, 3])))
        pool.close()
        pool.join()  # the workers exit normally, so their reports are written
        print(work(4))

    if __name__ == "__main__":
        main()
        sys.exit(3)
""")


def python(*args, env):
    full = {k: v for k, v in os.environ.items() if not k.startswith("TERRA_DYN")}
    full.update(env)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=full, capture_output=True, text=True,
                          timeout=300)


def test_spawned_workers_write_their_own_reports_and_the_parents_is_kept(tmp_path):
    script = tmp_path / "spawning.py"
    script.write_text(SPAWNING)
    path = tmp_path / "r.json"
    result = python(str(script), env={"TERRA_DYN": "1", "TERRA_DYN_REPORT": str(path),
                                      "TERRA_DYN_BACKEND": "interpreter"})
    assert result.returncode == 3, result.stderr  # the script's own status
    assert result.stdout.split() == ["[2.0,", "4.0,", "6.0]", "8.0"]
    parent = json.loads(path.read_text())
    assert parent["title"].endswith("spawning.py") and parent["pid"] != 0
    assert parent["summary"]["graphs"] >= 1, parent["summary"]  # not overwritten by a child
    children = [json.loads(c.read_text()) for c in sorted(tmp_path.glob("r.*.json"))]
    assert len(children) >= 2, "each worker process writes r.<pid>.json"
    assert len({c["pid"] for c in children} | {parent["pid"]}) == len(children) + 1
    assert any(c["summary"]["graphs"] for c in children)  # a worker's own work(n) was captured
    assert "Warning" not in result.stderr, result.stderr


def test_nothing_is_printed_at_exit_by_terra_dyn():
    result = python(os.path.join("examples", "demo.py"), env={"TERRA_DYN": "1", "TERRA_DYN_BACKEND": "interpreter"})
    assert result.returncode == 0, result.stderr
    assert "RuntimeWarning" not in result.stderr and "terra_dyn" not in result.stderr, result.stderr


def test_report_path_is_per_process_after_the_first():
    env = {}
    assert auto.report_path_for_this_process("/r/x.json", env, pid=10) == "/r/x.json"
    assert env["TERRA_DYN_REPORT_OWNER"] == "10"
    assert auto.report_path_for_this_process("/r/x.json", env, pid=10) == "/r/x.json"
    assert auto.report_path_for_this_process("/r/x.json", env, pid=11) == "/r/x.11.json"
    assert auto.report_path_for_this_process("/r/report", env, pid=12) == "/r/report.12.json"
