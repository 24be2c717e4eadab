"""torch.compile's habits work with terra_dyn.optimize / explain (torch_compat.py)."""
import io
import os
import pickle
import subprocess
import sys

import pytest
import torch

import terra_dyn
from terra_dyn import report
from terra_dyn.torch_compat import UnsupportedOption, compile_arguments

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def double(x):
    return x * 2 + 1


@pytest.mark.parametrize("mode", ["default", "max-autotune", "max-autotune-no-cudagraphs"])
def test_modes_are_accepted(fresh_terra_dyn, mode):
    fast = terra_dyn.optimize(double, mode=mode, backend="interpreter")
    assert torch.equal(fast(torch.ones(3)), double(torch.ones(3)))


def test_reduce_overhead_selects_the_cuda_graph_backend():
    assert compile_arguments("auto", False, False, mode="reduce-overhead")[0] == "cudagraphs"
    assert compile_arguments("inductor", False, False, mode="reduce-overhead")[0] == "cudagraphs"
    with pytest.warns(UserWarning, match="not 'interpreter''s; runs as mode='default'"):
        assert compile_arguments("interpreter", False, False, mode="reduce-overhead")[0] == "interpreter"


def test_reduce_overhead_runs_on_cpu_as_auto(fresh_terra_dyn):
    fast = terra_dyn.optimize(double, mode="reduce-overhead")
    assert torch.equal(fast(torch.ones(3)), double(torch.ones(3)))


def test_unknown_mode_dynamic_and_options_are_one_clear_error():
    with pytest.raises(UnsupportedOption, match="unknown mode 'fast'; use one of default"):
        terra_dyn.optimize(double, mode="fast")
    with pytest.raises(UnsupportedOption, match=r"dynamic='yes'\): use None, True or False"):
        terra_dyn.optimize(double, dynamic="yes")
    with pytest.raises(UnsupportedOption, match="unsupported option 'triton.cudagraphs'"):
        terra_dyn.optimize(double, options={"triton.cudagraphs": True})


def test_options_and_backend_names_map_to_ours(fresh_terra_dyn):
    def brk(x):
        print(x.sum().item())
        return x

    with pytest.raises(Exception, match="item"):
        terra_dyn.optimize(brk, options={"fullgraph": True}, backend="eager")(torch.ones(2))
    with report.recording() as rec:
        terra_dyn.optimize(double, backend="inductor")(torch.ones(2))  # inductor -> auto
    assert rec.report().graphs[0].backend == "auto"


def test_disable_true_returns_the_function_itself():
    assert terra_dyn.optimize(double, disable=True) is double


@torch.compiler.disable
def eager_only(x):
    return x.sin() + torch.compiler.is_compiling()


def caller(x):
    y = x + 1
    return eager_only(y) * 2


def test_torch_compiler_disable_runs_the_function_as_python(fresh_terra_dyn):
    with report.recording() as rec:
        got = terra_dyn.optimize(caller, backend="interpreter")(torch.zeros(2))
    assert torch.equal(got, caller(torch.zeros(2)))  # is_compiling() was False inside it
    rep = rec.report()
    assert rep.graphs and all(g.code_name != "eager_only" for g in rep.graphs)  # never translated
    assert any("marked torch.compiler.disable" in b.reason for b in rep.breaks)


def helper_sin(x):
    return x.sin() * torch.compiler.is_compiling()


@torch.compiler.disable  # recursive=True: nothing it calls is optimized either
def eager_tree(x):
    return helper_sin(x) + 1


@torch.compiler.disable(recursive=False)  # its own frame only: what it calls is optimized
def eager_frame(x):
    return helper_sin(x) + 1


def test_torch_compiler_disable_recursive_covers_callees_and_nonrecursive_only_the_frame(fresh_terra_dyn):
    def outer(x):
        return (eager_tree(x + 1) + eager_frame(x + 2)).cos()

    x = torch.randn(4)
    with report.recording() as rec:
        got = terra_dyn.optimize(outer, backend="interpreter")(x)
    # eager_tree's helper_sin ran as Python (is_compiling() False: zeros), eager_frame's was
    # translated (True), as torch.compile runs them
    expected = ((x + 1).sin() * 0 + 1 + (x + 2).sin() * 1 + 1).cos()
    assert torch.allclose(got, expected)
    names = [g.code_name for g in rec.report().graphs]
    assert "eager_tree" not in names and "eager_frame" not in names, names
    assert names.count("helper_sin") == 1, names  # the one called by eager_frame


def test_is_compiling_is_true_in_translated_code(fresh_terra_dyn):
    def f(x):
        return x + 100 if torch.compiler.is_compiling() else x - 100

    assert terra_dyn.optimize(f, backend="interpreter")(torch.zeros(1)).item() == 100
    assert f(torch.zeros(1)).item() == -100


def test_explain_takes_both_spellings(fresh_terra_dyn):
    direct = terra_dyn.explain(double, torch.ones(2))
    curried = terra_dyn.explain(double)(torch.ones(2))
    assert direct.graph_count == curried.graph_count == 1
    assert curried.title == "explain(double)"
    assert "call it with the arguments" in repr(terra_dyn.explain(double))


def _module():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU())


def test_optimized_module_pickles_and_loads_optimized(fresh_terra_dyn):
    model = _module()
    fast = terra_dyn.optimize(model, backend="interpreter")
    x = torch.randn(2, 3)
    fast(x)
    again = pickle.loads(pickle.dumps(fast))
    assert type(again).__name__ == "Sequential" and hasattr(type(again), "_terra_dyn_original")
    assert list(again.state_dict()) == list(model.state_dict())
    with report.recording() as rec:
        assert torch.equal(again(x), model(x))
    assert rec.report().graph_count == 1  # still optimized after loading


def test_optimized_module_torch_saves_like_the_original(fresh_terra_dyn, tmp_path):
    model = _module()
    fast = terra_dyn.optimize(model, backend="interpreter")
    path = tmp_path / "m.pt"
    torch.save(fast, path)
    loaded = torch.load(path, weights_only=False)
    x = torch.randn(2, 3)
    assert torch.equal(loaded(x), model(x))
    buf = io.BytesIO()
    torch.save(fast.state_dict(), buf)
    buf.seek(0)
    assert list(torch.load(buf)) == list(model.state_dict())  # state_dict keys unchanged


def test_cli_usage_errors_are_one_line():
    for args, words in ((["report", "--backend", "trition", "examples/demo.py"], "did you mean 'triton'"),
                        (["report", "--nope", "examples/demo.py"], "unrecognized arguments: --nope"),
                        (["frobnicate"], "invalid choice: 'frobnicate'")):
        result = subprocess.run([sys.executable, "-m", "terra_dyn", *args], cwd=ROOT, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("terra-dyn: error: ") and words in lines[0], lines
