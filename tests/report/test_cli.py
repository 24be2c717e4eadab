"""`terra-dyn report` / `python -m terra_dyn report` on example scripts, in subprocesses.

The script's own output under the CLI must equal a plain `python script.py` run; the
report follows it (text), or is the whole of stdout (--json). Errors keep the script's
exit status and name the script's own file and line.
"""
import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN = os.path.join("examples", "train_loop.py")
RULE = "=" * 80


def run(*args, env=None, timeout=240):
    full_env = dict(os.environ, **(env or {}))
    full_env.pop("TERRA_DYN", None)
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          env=full_env, timeout=timeout)


@pytest.fixture(scope="module")
def plain_train():
    result = run(TRAIN, "--steps", "6")
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def text_report():
    return run("-m", "terra_dyn", "report", "--backend", "interpreter", TRAIN, "--steps", "6")


def test_report_runs_the_script_unchanged_then_prints_the_report(plain_train, text_report):
    assert text_report.returncode == 0, text_report.stderr
    script_out, _, report = text_report.stdout.partition(RULE + "\n")
    assert script_out.rstrip("\n") == plain_train.rstrip("\n")
    assert report.startswith("terra_dyn report: examples/train_loop.py --steps 6")
    assert "time: whole run" in report and "translating" in report
    assert "in graphs" in report and "Python outside graphs" in report  # the run was sampled
    assert all(len(line) <= 80 for line in report.splitlines())


def test_report_text_lists_the_training_steps_graphs_and_breaks(text_report):
    report = text_report.stdout.partition(RULE + "\n")[2]
    assert "train_step  (examples/train_loop.py:" in report, report
    frame = report.split("train_step  (examples/train_loop.py:")[1]
    assert "graphs: none" not in frame.split("\n\n")[0], report
    assert "break x" in report and "loss.item()" in report, report
    assert "What to fix first (time measured by sampling the run):" in report


def test_report_json_is_the_whole_stdout_and_script_output_goes_to_stderr(plain_train):
    result = run("-m", "terra_dyn", "report", "--json", "--backend", "interpreter", TRAIN, "--steps", "6")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["title"] == "examples/train_loop.py --steps 6"
    assert plain_train.strip() in result.stderr
    assert {"summary", "graphs", "breaks", "recompiles", "fallbacks", "frames"} <= set(data)
    assert data["summary"]["graphs"] >= 1, f"nothing captured: {data['summary']}"
    assert any("item()" in b["source_line"] for b in data["breaks"]), data["breaks"]
    # every break leads from one of the script's frames (library code is never an entry point)
    assert all(b["user_stack"][0].startswith(os.path.join(ROOT, TRAIN) + ":") for b in data["breaks"])


def test_missing_script_is_a_clear_error_with_status_2():
    result = run("-m", "terra_dyn", "report", "no_such_script.py")
    assert result.returncode == 2
    assert "can't open file 'no_such_script.py'" in result.stderr


def test_script_raising_keeps_its_status_and_shows_its_own_traceback(tmp_path):
    script = tmp_path / "boom.py"
    script.write_text("import torch\n\ndef f(x):\n    raise ValueError('bad value %d' % x.numel())\n\n"
                      "print('before')\nf(torch.ones(3))\n")
    result = run("-m", "terra_dyn", "report", str(script))
    assert result.returncode == 1
    assert result.stdout.startswith("before\n")
    assert "ValueError: bad value 3" in result.stderr
    assert f'File "{script}", line 4, in f' in result.stderr
    assert "runpy" not in result.stderr and "terra_dyn/cli.py" not in result.stderr
    assert "the script exited with status 1" in result.stdout


def test_script_exit_status_and_arguments_pass_through(tmp_path):
    script = tmp_path / "status.py"
    script.write_text("import sys\nprint(sys.argv[1:], __name__)\nsys.exit(int(sys.argv[1]))\n")
    result = run("-m", "terra_dyn", "report", "--json", str(script), "3", "--flag")
    assert result.returncode == 3
    assert "['3', '--flag'] __main__" in result.stderr
    assert json.loads(result.stdout)["summary"]["graphs"] == 0


def test_console_script_config_prints_every_knob():
    exe = os.path.join(os.path.dirname(sys.executable), "terra-dyn")
    if not os.path.exists(exe):
        pytest.fail(f"{exe} missing: install terra_dyn (bash scripts/setup.sh) for the console script")
    result = subprocess.run([exe, "config"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for env in ("TERRA_DYN", "TERRA_DYN_BACKEND", "TERRA_DYN_STRICT", "TERRA_DYN_REPORT"):
        assert env in result.stdout


def test_demo_shows_a_captured_model_a_break_and_the_report():
    demo = os.path.join("examples", "demo.py")
    with open(os.path.join(ROOT, demo)) as f:
        item_line = 1 + next(i for i, text in enumerate(f) if "round(loss.item()" in text)
    result = run(demo)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "1. optimized model: 1 graph of" in out and "same result: True" in out, out
    assert "terra_dyn report: explain(step)" in out
    assert "2 graphs" in out and "break x1:" in out and f"line {item_line}: print(" in out, out
    fused = next(line for line in out.splitlines() if line.startswith("2. gelu-like chain"))
    assert re.search(r"eager \d+\.\d\d ms, terra_dyn \d+\.\d\d ms, speedup \d+\.\d\dx, same result: True$", fused), fused
    speed = next(line for line in out.splitlines() if line.startswith("   training step"))
    assert re.search(r"eager \d+\.\d\d ms, terra_dyn \d+\.\d\d ms, speedup \d+\.\d\dx$", speed), speed
    assert "fix: .item()/float() in the loop" in out


def test_report_help_and_config_name_every_backend():
    from terra_dyn.backends import _BY_NAME
    from terra_dyn.config import KNOBS
    result = subprocess.run([sys.executable, "-m", "terra_dyn", "report", "--help"], capture_output=True,
                            text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    help_text = " ".join(result.stdout.split())
    backend_knob = next(k for k in KNOBS if k.name == "backend")
    for name in _BY_NAME:
        assert name in help_text, (name, help_text)
        assert name in backend_knob.meaning, (name, backend_knob.meaning)
