"""backend="cpu" by name keeps kernels only where they measured faster than eager: a training
graph's compiled forward + backward against eager autograd (joint.Trial), an inference
graph's kernels against its graph module, timed only once the background build is done.
A CPU spin in one side makes the verdict certain; results equal eager's on every call."""
import time

import pytest
import torch

from terra_dyn.backends import lookup
from terra_dyn.backends.cpu import wait_for_kernels
from terra_dyn.backends.cpu.compiled_graph import CpuCompiledGraph
from terra_dyn.backends.fusion.joint import JointProgram

from ..support import assert_same, trace
from .support import compiled_graph


# two torch threads on the loaded 2-core machine: noise above the spins (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _spin(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def f(x, w):
    return torch.nn.functional.layer_norm(torch.tanh(x @ w) * 2 + 1, (w.shape[1],)).sum(-1)


def _train(compiled, steps):
    """Training calls through `compiled` against eager autograd, compared at each step."""
    graph = compiled_graph(compiled)
    torch.manual_seed(0)
    w = torch.randn(16, 32, requires_grad=True)
    ref = w.detach().clone().requires_grad_(True)
    for step in range(steps):
        x = torch.randn(8, 16)
        out, expected = compiled(x, w), f(x, ref)
        out.square().sum().backward()
        expected.square().sum().backward()
        assert_same(out, expected, atol=1e-5, rtol=1e-5, what=f"step {step}")
        assert_same(w.grad, ref.grad, atol=1e-4, rtol=1e-4, what=f"grad at step {step}")
        w.grad = ref.grad = None
        if step == 1:
            wait_for_kernels()
    return graph


def _cpu_graph(monkeypatch, x, w):
    monkeypatch.setattr(CpuCompiledGraph, "PAYBACK", 0.0)  # lower at the first call
    return lookup("cpu")(trace(f), [x, w])


def chain(x):
    return torch.tanh(x * 2 + 1) * x


def _chain_graph(monkeypatch):
    """(x, the cpu backend's callable, its CpuCompiledGraph) for chain, lowered at once."""
    monkeypatch.setattr(CpuCompiledGraph, "PAYBACK", 0.0)
    x = torch.randn(8, 8)
    compiled = lookup("cpu")(trace(chain), [x])
    return x, compiled, compiled_graph(compiled)


def test_a_training_graph_whose_pair_measures_slower_runs_eager_autograd(monkeypatch):
    original = JointProgram._compiled_backward

    def slow(self, *args):
        _spin(0.02)
        return original(self, *args)
    monkeypatch.setattr(JointProgram, "_compiled_backward", slow)
    graph = _train(_cpu_graph(monkeypatch, torch.randn(8, 16), torch.randn(16, 32, requires_grad=True)), 16)
    assert any("eager autograd measured faster" in n for n in graph.notes), graph.describe()
    assert all(p is graph.gm for p in graph.autograd_programs.values()), graph.describe()
    assert graph.last_training is None or graph.last_training[1] is graph.gm


def test_a_training_graph_whose_pair_measures_faster_keeps_it(monkeypatch):
    original = JointProgram._eager_turn_backward  # eager autograd's side of the trial

    def slow(self, *args, **kwargs):
        _spin(0.02)
        return original(self, *args, **kwargs)
    monkeypatch.setattr(JointProgram, "_eager_backward", slow)
    graph = _train(_cpu_graph(monkeypatch, torch.randn(8, 16), torch.randn(16, 32, requires_grad=True)), 16)
    (program,) = graph.autograd_programs.values()
    assert isinstance(program, JointProgram) and program.trial.verdict == "compiled", graph.describe()
    assert min(map(len, program.trial.times.values())) == graph.TRIAL_CALLS
    assert not any("measured faster" in n for n in graph.notes)


def test_compile_graph_itself_keeps_the_pair_without_a_trial():
    from terra_dyn.backends.cpu import compile_graph
    graph = _train(compile_graph(trace(f), [torch.randn(8, 16), torch.randn(16, 32, requires_grad=True)]), 4)
    (program,) = graph.autograd_programs.values()
    assert isinstance(program, JointProgram) and program.trial is None


def test_inference_kernels_measured_slower_run_the_graph_module(monkeypatch):
    from terra_dyn.backends.cpu import kernel
    original = kernel.CpuKernel._generate

    def generate(self):
        call = original(self)

        def slow(*args):
            _spin(0.005)
            return call(*args)
        return slow
    monkeypatch.setattr(kernel.CpuKernel, "_generate", generate)
    monkeypatch.setattr(kernel, "C_CALL", False)  # the graph calls the (slowed) Python function
    x, compiled, graph = _chain_graph(monkeypatch)
    for call in range(3 + 2 * graph.TRIAL_CALLS):
        assert_same(compiled(x), chain(x))
        if call == 0:
            wait_for_kernels()
    assert _program(graph).verdict == "eager", graph.describe()
    assert any("kernels measured slower" in n for n in graph.notes), graph.describe()


def _program(graph):
    from terra_dyn.backends.cpu.compiled_graph import Program
    (program,) = [p for p in graph.programs.values() if isinstance(p, Program)]
    return program


def test_calls_before_the_kernels_are_built_are_not_timed_as_kernels(tmp_path, monkeypatch):
    import terra_dyn.config as config
    from terra_dyn.backends.cpu.compiler import PendingBuild
    monkeypatch.setattr(config, "cache_dir", str(tmp_path / "cache"))  # a build, not a cached library
    monkeypatch.setattr(PendingBuild, "done", lambda self: False)  # g++ still building
    x, compiled, graph = _chain_graph(monkeypatch)
    for _ in range(4):
        assert_same(compiled(x), chain(x))
    assert _program(graph).pending is not None and _program(graph).trial == ([], []), graph.describe()


def test_each_signature_has_its_own_trial(monkeypatch):
    # one graph, two sizes: kernels measured slower at one size still run at the other
    x, compiled, graph = _chain_graph(monkeypatch)
    big = torch.randn(64, 64)
    for call in range(2 + 2 * graph.TRIAL_CALLS):
        for arg in (x, big):
            assert_same(compiled(arg), chain(arg))
        if call == 0:
            wait_for_kernels()
    small_program, big_program = (p for p in graph.programs.values())
    assert small_program.verdict and big_program.verdict, graph.describe()
    big_run = big_program.run
    small_program._end_trial(eager=1e-6, lowered=1e-3)  # as if the small size measured slower
    for arg in (x, big, x):
        assert_same(compiled(arg), chain(arg))
    assert small_program.run == small_program.eager_run and big_program.run == big_run


def test_a_training_graph_runs_eager_autograd_while_its_kernels_build(tmp_path, monkeypatch):
    # the pair's halves without kernels are ATen steps called from Python plus the pair's
    # own overhead: until the build is done, eager autograd runs the graph module
    import terra_dyn.config as config
    from .test_async_build import _slow_compiler
    monkeypatch.setattr(config, "cache_dir", str(tmp_path / "cache"))
    monkeypatch.setattr(config, "cpu_cxx", _slow_compiler(tmp_path, 'exec g++ "$@"'))
    graph = _cpu_graph(monkeypatch, torch.randn(8, 16), torch.randn(16, 32, requires_grad=True))
    w = torch.randn(16, 32, requires_grad=True)
    kinds = []
    for step in range(4):
        x = torch.randn(8, 16)
        out = graph(x, w)
        kinds.append(type(out.grad_fn).__name__)
        assert_same(out, f(x, w), atol=1e-5, rtol=1e-5)
        out.sum().backward()
        if step == 2:
            wait_for_kernels()
    assert kinds[0] == "_JointFunctionBackward" and kinds[1] != "_JointFunctionBackward", kinds
    assert kinds[3] == "_JointFunctionBackward", kinds  # built: the trial's first turn is the pair's


def test_the_call_switching_to_built_kernels_is_not_timed(monkeypatch):
    # that call rewrites the graph (milliseconds): timed, it made a 1K chain's kernels, 4x
    # faster than eager, measure slower
    from terra_dyn.backends.cpu.compiled_graph import Program
    x, compiled, graph = _chain_graph(monkeypatch)
    assert_same(compiled(x), chain(x))  # lowers; g++ builds in the background
    wait_for_kernels()
    original = Program._finish

    def slow_switch(self, library):
        _spin(0.05)
        return original(self, library)
    monkeypatch.setattr(Program, "_finish", slow_switch)
    for _ in range(4):
        assert_same(compiled(x), chain(x))
    lowered = _program(graph).trial[1]
    assert lowered and max(lowered) < 0.05, _program(graph).trial


def test_an_eager_turn_runs_the_forward_once_and_a_retained_backward_twice(monkeypatch):
    # the trial's eager turn keeps eager autograd's history from its forward (it once ran
    # the forward again in the backward: the trial itself slowed the steps it measured)
    calls = []
    graph = _cpu_graph(monkeypatch, torch.randn(8, 16), torch.randn(16, 32, requires_grad=True))
    graph = compiled_graph(graph)
    original = graph.gm.forward
    monkeypatch.setattr(graph.gm, "forward", lambda *a: calls.append(1) or original(*a))
    w = torch.randn(16, 32, requires_grad=True)
    for step in range(12):
        x = torch.randn(8, 16)
        (program,) = graph.autograd_programs.values() or [None]
        turn = program.trial.turn(program) if program is not None and program.trial else None
        before = len(calls)
        out = graph(x, w)
        out.sum().backward(retain_graph=True)
        if turn is not None and turn[0] == "eager":
            assert len(calls) - before == 1, (step, len(calls) - before)
            first = w.grad.clone()
            out.sum().backward()  # the retained graph: eager's result again
            assert_same(w.grad, 2 * first, atol=1e-5, rtol=1e-5)
            break
        if step == 1:
            wait_for_kernels()
        w.grad = None
    else:
        raise AssertionError("no eager turn came")


def test_trials_run_on_one_torch_thread():
    # the shared one_torch_thread fixture (tests/conftest.py) applies to this module
    assert torch.get_num_threads() == 1
