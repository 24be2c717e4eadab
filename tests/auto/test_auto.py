"""Zero code change: `TERRA_DYN=1 python script.py`, through the .pth startup file.

Subprocess tests run an unmodified script with and without TERRA_DYN and compare; unit
tests check which frames are entry points; the cost of the .pth line with TERRA_DYN unset
is measured directly (and nothing is imported).
"""
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import textwrap
import time
import types

import pytest
import torch

from terra_dyn import auto

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN = os.path.join(ROOT, "examples", "train_loop.py")
PTH_SOURCE = os.path.join(ROOT, "scripts", "terra_dyn_auto.pth")
PTH_INSTALLED = os.path.join(sysconfig.get_paths()["purelib"], "terra_dyn_auto.pth")


def python(*args, env=None, cwd=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TERRA_DYN")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd or ROOT, timeout=240)


@pytest.fixture(scope="module", autouse=True)
def pth_installed():
    if not os.path.exists(PTH_INSTALLED):
        pytest.fail(f"{PTH_INSTALLED} is missing: run `bash scripts/setup.sh` (editable installs) "
                    "or `pip install .` to install the TERRA_DYN=1 startup file")


def test_installed_pth_is_the_repositorys():
    with open(PTH_SOURCE) as a, open(PTH_INSTALLED) as b:
        assert a.read() == b.read()


# --------------------------------------------------------------------------- unmodified script


def test_unmodified_script_prints_the_same_and_writes_the_report(tmp_path):
    plain = python(TRAIN, "--steps", "8")
    report_path = tmp_path / "report.json"
    env = {"TERRA_DYN": "1", "TERRA_DYN_REPORT": str(report_path), "TERRA_DYN_BACKEND": "interpreter"}
    optimized = python(TRAIN, "--steps", "8", env=env)
    assert plain.returncode == 0 and optimized.returncode == 0, optimized.stderr
    assert optimized.stdout == plain.stdout
    data = json.loads(report_path.read_text())
    assert data["title"].endswith("train_loop.py --steps 8")
    assert data["summary"]["graphs"] >= 1, f"TERRA_DYN=1 captured nothing: {data['summary']}"
    names = {g["code_name"] for g in data["graphs"]}
    assert any("train_step" in n or "forward" in n for n in names), names
    assert all(g["backend"] in ("interpreter", "") for g in data["graphs"])
    assert all(g["filename"] == TRAIN for g in data["graphs"]), "only the script's code is an entry point"


def test_script_functions_are_entry_points_and_library_code_is_skipped(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(textwrap.dedent("""
        import json, sys
        import torch

        def f(x):
            return x * 2 + 1

        y = f(torch.ones(3))
        json.dumps([1])  # a stdlib frame called from module level reaches the hook
        from terra_dyn import _C, auto
        print(auto._installed, bool(_C.cache_entries(f.__code__)), _C.is_skipped(json.dumps.__code__),
              bool(_C.cache_entries(sys._getframe().f_code)))
    """))
    result = python(str(script), env={"TERRA_DYN": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "True", "False"]
    off = python(str(script))
    assert off.stdout.split() == ["False", "False", "False", "False"], off.stderr


def test_python_dash_c_functions_are_entry_points():
    code = "import torch\ndef f(x):\n    return x + 1\nf(torch.ones(2))\n" \
           "from terra_dyn import _C\nprint(len(_C.cache_entries(f.__code__)) > 0)"
    result = python("-c", code, env={"TERRA_DYN": "1"})
    assert result.stdout.strip() == "True", result.stderr


def test_script_errors_keep_their_traceback_and_status(tmp_path):
    script = tmp_path / "boom.py"
    script.write_text("import torch\n\ndef f(x):\n    y = x + 1\n    raise KeyError(y.numel())\n\nf(torch.ones(4))\n")
    report_path = tmp_path / "report.json"
    plain = python(str(script))
    optimized = python(str(script), env={"TERRA_DYN": "1", "TERRA_DYN_REPORT": str(report_path)})
    assert optimized.returncode == plain.returncode == 1
    assert optimized.stderr.strip().splitlines()[-1] == "KeyError: 4"
    assert f'File "{script}", line 5, in f' in optimized.stderr
    assert "summary" in json.loads(report_path.read_text())  # written at exit after a failure too


# --------------------------------------------------------------------------- nothing when off


@pytest.mark.parametrize("value", [None, "0", "", "off"])
def test_unset_or_zero_imports_nothing(value):
    env = {} if value is None else {"TERRA_DYN": value}
    result = python("-c", "import sys; print(sorted(m for m in sys.modules if m.split('.')[0] in "
                          "('terra_dyn', 'torch', 'numpy')))", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_enabled_imports_terra_dyn_at_startup_with_the_env_knobs():  # so the test above is not vacuous
    code = "import sys, terra_dyn\nprint('terra_dyn.auto' in sys.modules, terra_dyn.config.backend, terra_dyn.config.strict)"
    result = python("-c", code, env={"TERRA_DYN": "1", "TERRA_DYN_BACKEND": "interpreter", "TERRA_DYN_STRICT": "1"})
    assert result.stdout.split() == ["True", "interpreter", "True"], result.stderr


def test_pth_line_costs_microseconds_when_off(monkeypatch):
    monkeypatch.delenv("TERRA_DYN", raising=False)
    with open(PTH_SOURCE) as f:
        (line,) = [text for text in f if text.strip()]
    assert line.startswith("import ") and len(line) < 200
    code = compile(line, PTH_SOURCE, "exec")
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(1000):
            exec(code, {})
        times.append((time.perf_counter() - start) / 1000)
    per_start = statistics.median(times)
    print(f"\n.pth line with TERRA_DYN unset: {per_start * 1e6:.2f} us per start-up")
    assert per_start < 50e-6


# --------------------------------------------------------------------------- entry points


def _frame_of(code, globals_=None):
    """A frame whose code is `code`: call a function made from it and grab its frame."""
    grabbed = []
    fn = types.FunctionType(code, dict(globals_ or {}, grab=lambda: grabbed.append(sys._getframe(1))))
    fn()
    return grabbed[0]


def _code(filename, name="user_function"):
    return compile(f"def {name}():\n    grab()\n", filename, "exec").co_consts[0]


def test_entry_points_are_the_users_own_function_frames(tmp_path):
    entry = auto.EntryPointFilter()
    assert entry.is_entry_point(_frame_of(_code(str(tmp_path / "script.py"))))
    assert entry.is_entry_point(_frame_of(_code(__file__)))
    stdlib = os.path.join(os.path.dirname(os.__file__), "json", "encoder.py")
    site = os.path.join(sysconfig.get_paths()["purelib"], "numpy", "core", "x.py")
    torch_file = os.path.join(os.path.dirname(torch.__file__), "nn", "modules", "linear.py")
    terra_file = os.path.join(os.path.dirname(auto.__file__), "api.py")
    for filename in (stdlib, site, torch_file, terra_file, "<frozen importlib._bootstrap>"):
        assert not entry.is_entry_point(_frame_of(_code(filename))), filename


def test_exec_code_is_an_entry_point_only_in_main():
    entry = auto.EntryPointFilter()
    assert entry.is_entry_point(_frame_of(_code("<string>"), {"__name__": "__main__"}))
    assert not entry.is_entry_point(_frame_of(_code("<string>"), {"__name__": "namedtuple_Point"}))


def test_module_bodies_are_not_entry_points(tmp_path):
    entry = auto.EntryPointFilter()
    grabbed = []
    module_code = compile("grab()\n", str(tmp_path / "script.py"), "exec")
    exec(module_code, {"grab": lambda: grabbed.append(sys._getframe(1))})
    assert grabbed[0].f_code is module_code and not entry.is_entry_point(grabbed[0])


def test_env_enabled_matches_config_parsing():
    for value, expected in [("1", True), ("yes", True), ("0", False), ("", False), (" OFF ", False), ("false", False)]:
        assert auto.env_enabled({"TERRA_DYN": value}) is expected
    assert auto.env_enabled({}) is False
