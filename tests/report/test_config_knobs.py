"""Every knob in terra_dyn/config.py does what its one-line meaning says: one test each,
named test_knob_<name> (a meta-test checks none is missing), plus one fresh process that
reads every env var."""
import json
import os
import subprocess
import sys
import warnings

import pytest
import torch

import terra_dyn
from terra_dyn import config, report

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def python(*args, env=None, timeout=120):
    full = {k: v for k, v in os.environ.items() if not k.startswith("TERRA_DYN")}
    full.update(env or {})
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=full, capture_output=True, text=True,
                          timeout=timeout)


def test_every_knob_has_its_own_test():
    missing = [k.name for k in config.KNOBS if f"test_knob_{k.name}" not in globals()]
    assert not missing, f"knobs without a test: {missing}"


def test_every_knob_reads_its_env_var():
    values = {"enabled": "1", "backend": "interpreter", "strict": "1", "report_path": "/tmp/x.json",
              "recompile_limit": "3", "rare_outcome_calls": "5", "verbose": "1", "logs": "guards", "print_kernels": "1",
              "slow_guards": "1", "guard_snapshots": "0", "guard_paths": "0", "cache_dir": "/tmp/td-cache", "cpu_cxx": "clang++", "cpu_min_elements": "7",
              "cpu_async_compile": "0", "direct_calls": "0", "nested_breaks": "0"}
    assert set(values) == {k.name for k in config.KNOBS}
    env = {k.env: values[k.name] for k in config.KNOBS}  # set after startup: the .pth stays off
    program = ("import json, os, terra_dyn.config as c\n"
               f"os.environ.update({env!r})\n"
               "print(json.dumps({k.name: k.read() for k in c.KNOBS}))")
    result = python("-c", program, env={"TERRA_DYN": "0"})
    got = json.loads(result.stdout)
    assert got["enabled"] is True and got["strict"] is True and got["verbose"] is True
    assert got["recompile_limit"] == 3 and got["rare_outcome_calls"] == 5 and got["backend"] == "interpreter"
    assert got["report_path"] == "/tmp/x.json" and got["cache_dir"] == "/tmp/td-cache" and got["logs"] == "guards"
    assert got["guard_snapshots"] is False and got["guard_paths"] is False
    assert got["cpu_async_compile"] is False and got["direct_calls"] is False


def test_config_table_fits_80_columns_and_names_every_env_var(monkeypatch):
    monkeypatch.setattr(config, "cache_dir", "/a/very/long/path" * 8)  # a long value wraps too
    text = config.describe()
    assert all(len(line) <= 80 for line in text.splitlines()), text
    for knob in config.KNOBS:
        assert f"{knob.env}   (terra_dyn.config.{knob.name})" in text
    assert "    = 8\n" in text  # recompile_limit's value


def test_knob_enabled():
    on = python("-c", "import sys; print('terra_dyn' in sys.modules)", env={"TERRA_DYN": "1"})
    off = python("-c", "import sys; print('terra_dyn' in sys.modules)", env={"TERRA_DYN": "0"})
    assert (on.stdout.strip(), off.stdout.strip()) == ("True", "False")


def test_knob_backend(monkeypatch, fresh_terra_dyn):
    monkeypatch.setattr(config, "backend", "interpreter")
    rep = terra_dyn.explain(lambda x: x * 2, torch.ones(2))
    assert [g.backend for g in rep.graphs] == ["interpreter"]


def test_knob_strict(monkeypatch, fresh_terra_dyn):
    from tests.translate.test_strict_and_fallback import guarded_division
    from terra_dyn.convert_frame import TranslationError

    fast = terra_dyn.optimize(guarded_division, backend="interpreter")
    torch.testing.assert_close(fast(torch.ones(3)), guarded_division(torch.ones(3)))  # falls back
    terra_dyn.reset()
    monkeypatch.setattr(config, "strict", True)
    with pytest.raises(TranslationError, match="with block"):
        fast(torch.ones(3))


def test_knob_report_path(tmp_path):
    path = tmp_path / "r.json"
    script = tmp_path / "s.py"
    script.write_text("import torch\ndef f(x):\n    return x + 1\nprint(f(torch.ones(2)).sum().item())\n")
    result = python(str(script), env={"TERRA_DYN": "1", "TERRA_DYN_REPORT": str(path)})
    assert result.returncode == 0 and result.stdout.strip() == "4.0", result.stderr
    data = json.loads(path.read_text())
    assert data["schema_version"] >= 2 and data["summary"]["graphs"] == 1


def test_knob_recompile_limit(monkeypatch, fresh_terra_dyn):
    monkeypatch.setattr(config, "recompile_limit", 2)

    def f(x):
        return x + 1

    fast = terra_dyn.optimize(f, backend="interpreter")
    with report.recording() as rec, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for rank in range(1, 6):
            fast(torch.ones(*[2] * rank))  # a new rank every time: a new translation each
    assert len(rec.report().translations) == 2
    assert any("recompile_limit" in str(w.message) for w in caught)


def test_knob_rare_outcome_calls(monkeypatch, fresh_terra_dyn):
    class Counter:
        iteration = 0

    def step(c, x):
        if c.iteration % 6 == 0:
            x = x * 3
        return x + 1

    def translations_after_two(every):
        monkeypatch.setattr(config, "rare_outcome_calls", every)
        fast, c = terra_dyn.optimize(step, backend="interpreter"), Counter()
        with report.recording() as rec:
            for i in range(14):
                c.iteration = i
                x = torch.full((2,), float(i))
                torch.testing.assert_close(fast(c, x), step(c, x), rtol=0, atol=0)
                if i == 1:
                    settled = len(rec.report().translations)
        terra_dyn.reset()
        return len(rec.report().translations) - settled

    assert translations_after_two(4) == 0  # calls 6 and 12 run as plain Python
    assert translations_after_two(8) == 1  # call 12 is within 8 of call 6: translated


def test_knob_verbose():
    program = ("import torch, terra_dyn\n"
               "def f(x):\n    y = x * 2\n    print(y.sum().item())\n    return y\n"
               "terra_dyn.optimize(f, backend='interpreter')(torch.ones(2))\n")
    result = python("-c", program, env={"TERRA_DYN_VERBOSE": "1"})
    assert "[terra_dyn.graphs] graph of f" in result.stderr and "[terra_dyn.breaks] break at" in result.stderr


def test_knob_logs():
    result = python("-c", "import torch, terra_dyn\nterra_dyn.optimize(lambda x: x + 1)(torch.ones(2))",
                    env={"TERRA_DYN_LOGS": "guards"})
    assert "[terra_dyn.guards] guards of a translation" in result.stderr
    assert "[terra_dyn.graphs]" not in result.stderr


def test_knob_print_kernels(kernel_run):
    result, _ = kernel_run  # TERRA_DYN_PRINT_KERNELS=1 prints, independently of the logs
    assert "# terra_dyn triton kernel for" in result.stderr and "@triton.jit" in result.stderr


def test_knob_slow_guards():
    status = "import terra_dyn._C as C; print(C.fast_guards_status())"
    assert python("-c", status, env={"TERRA_DYN_SLOW_GUARDS": "1"}).stdout.startswith("off")
    assert python("-c", status).stdout.strip() == "on"


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(x)


def _guard_kinds():
    """The guard of _Net.forward's translation: its C check kinds and its Python predicate."""
    from terra_dyn import _C

    terra_dyn.reset()
    net = _Net()
    terra_dyn.optimize(net, backend="interpreter")(torch.ones(1, 2))
    guard = _C.cache_entries(_Net.forward.__code__)[0].guard
    return [c[0] for c in guard.checks], guard.fallback


def test_knob_guard_snapshots(monkeypatch):
    checks, fallback = _guard_kinds()  # on: fc's identity, hooks and weight are checked on fc, in C
    assert checks.count("snapshot") == 2 and "paths" not in checks and fallback is None
    monkeypatch.setattr(config, "guard_snapshots", False)
    monkeypatch.setattr(config, "guard_paths", False)
    checks, fallback = _guard_kinds()  # off: Python expressions (only the class checks stay)
    assert checks.count("snapshot") == 2 and any("_parameters['weight']" in e for e in fallback.exprs)
    terra_dyn.reset()


def test_knob_guard_paths(monkeypatch):
    monkeypatch.setattr(config, "guard_snapshots", False)  # the facts about fc: along paths from a0
    checks, fallback = _guard_kinds()  # on: one tree of paths, checked in C
    assert checks.count("paths") == 1 and fallback is None
    monkeypatch.setattr(config, "guard_paths", False)
    checks, fallback = _guard_kinds()  # off: one Python expression per fact
    assert "paths" not in checks and any("_parameters['weight']" in e for e in fallback.exprs)
    terra_dyn.reset()


def _add(x, y):
    return x + y


def test_knob_direct_calls(monkeypatch):
    from terra_dyn import _C
    x = torch.randn(3)
    for on in (True, False):  # read when translating: on, the hook calls the graph itself
        terra_dyn.reset()
        monkeypatch.setattr(config, "direct_calls", on)
        assert torch.equal(terra_dyn.optimize(_add, backend="interpreter")(x, x), x + x)
        assert (_C.cache_entries(_add.__code__)[0].direct is not None) is on
    terra_dyn.reset()


def _reads_a_value(x):
    return x * float(x.sum().item())  # a break inside the callee


def _calls_it(x):
    return _reads_a_value(x + 1) - 1


def test_knob_nested_breaks(monkeypatch):
    x = torch.randn(3)
    graphs = {}
    for on in (True, False):  # on: the break stays in the callee, the caller is one chain
        terra_dyn.reset()
        monkeypatch.setattr(config, "nested_breaks", on)
        with report.recording() as rec:
            assert torch.equal(terra_dyn.optimize(_calls_it, backend="interpreter")(x), _calls_it(x))
        graphs[on] = len(rec.report().graphs)
    terra_dyn.reset()
    assert graphs[True] < graphs[False], graphs


def test_knob_cache_dir(kernel_run):
    _, cache_dir = kernel_run  # TERRA_DYN_CACHE_DIR: the generated kernel is stored there
    assert list((cache_dir / "triton_kernels").glob("*.py"))


def test_knob_cpu_cxx(monkeypatch):
    from terra_dyn.backends.cpu import compile_graph
    monkeypatch.setattr(config, "cpu_cxx", "/nonexistent/c++")
    x = torch.randn(64, 33)
    compiled = compile_graph(torch.fx.symbolic_trace(lambda x: torch.tanh(x * 2 + 1) * x), [x])
    assert torch.allclose(compiled(x), torch.tanh(x * 2 + 1) * x)
    assert any("'/nonexistent/c++' not found" in note for note in compiled.notes), compiled.notes


def test_knob_cpu_async_compile(monkeypatch):
    from terra_dyn.backends import lookup
    from terra_dyn.backends.cpu.compiled_graph import CpuCompiledGraph
    made, init = [], CpuCompiledGraph.__init__
    monkeypatch.setattr(CpuCompiledGraph, "__init__", lambda self, *a, **k: (init(self, *a, **k), made.append(self))[0])
    gm = torch.fx.symbolic_trace(lambda x: torch.tanh(x * 2 + 1) * x)
    for value in (False, True):  # TERRA_DYN_CPU_ASYNC: backend="cpu" builds kernels in the background
        monkeypatch.setattr(config, "cpu_async_compile", value)
        lookup("cpu")(gm, [torch.randn(64, 64)])
        assert made[-1].asynchronous is value


def test_knob_cpu_min_elements(monkeypatch):
    from terra_dyn.backends import lookup
    gm = torch.fx.symbolic_trace(lambda x: torch.tanh(x * 2 + 1) * x)
    x = torch.randn(16, 16)  # 256 elements
    monkeypatch.setattr(config, "cpu_min_elements", 1 << 20)
    assert lookup("auto")(gm, [x]) == gm.forward  # too small: the interpreter runs the graph
    monkeypatch.setattr(config, "cpu_min_elements", 0)
    compiled = lookup("auto")(gm, [x])
    assert compiled != gm.forward and torch.allclose(compiled(x), gm(x))


def test_user_guide_lists_every_env_var():
    guide = open(os.path.join(ROOT, "docs", "USER_GUIDE.md")).read()
    assert not [k.env for k in config.KNOBS if f"`{k.env}`" not in guide]
