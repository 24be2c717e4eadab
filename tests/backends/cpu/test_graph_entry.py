"""What backend="cpu" hands the frontend: a C GraphEntry (csrc/graph_entry.cpp) that runs the
last Program behind its exact guard without CpuCompiledGraph's Python __call__, and takes
that __call__ for everything else (another signature, grad mode with inputs requiring grad,
a failure of the fast path). Results equal eager's on every call."""
import gc
import weakref

import pytest
import torch

import terra_dyn.config as config
from terra_dyn.backends import lookup
from terra_dyn.backends.cpu import wait_for_kernels
from terra_dyn.backends.cpu.compiled_graph import CpuCompiledGraph

from ..support import assert_same, trace
from .support import compiled_graph

tensor_check = pytest.importorskip("terra_dyn._tensor_check")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def chain(x, w):
    return torch.tanh(x * w + 1) * x


def _counting(monkeypatch):
    """The CpuCompiledGraphs whose __call__ ran, one entry a call (a training call's halves
    are CpuCompiledGraphs too: count a graph's own calls with calls.count(graph))."""
    calls = []
    original = CpuCompiledGraph.__call__

    def counted(self, *args):
        calls.append(self)
        return original(self, *args)
    monkeypatch.setattr(CpuCompiledGraph, "__call__", counted)
    return calls


def _settled(monkeypatch, x, w, calls=30):
    """lookup("cpu")'s callable for chain, called until its trial is over."""
    monkeypatch.setattr(CpuCompiledGraph, "PAYBACK", 0.0)
    monkeypatch.setattr(config, "cpu_async_compile", False)
    compiled = lookup("cpu")(trace(chain), [x, w])
    for _ in range(calls):
        assert_same(compiled(x, w), chain(x, w))
    wait_for_kernels()
    graph = compiled_graph(compiled)
    assert isinstance(graph, CpuCompiledGraph) and graph.last is not None, graph.describe()
    return compiled, graph


def test_repeated_calls_skip_the_compiled_graphs_python_call(monkeypatch):
    calls = _counting(monkeypatch)
    x, w = torch.randn(16, 32), torch.randn(32)
    compiled, graph = _settled(monkeypatch, x, w)
    assert isinstance(getattr(compiled, "fn", compiled), tensor_check.GraphEntry)
    before = calls.count(graph)
    for _ in range(20):
        x = torch.randn(16, 32)
        assert_same(compiled(x, w), chain(x, w))
    assert calls.count(graph) == before, f"{calls.count(graph) - before} of 20 calls took the Python __call__"


def test_another_signature_and_grad_mode_take_the_python_call(monkeypatch):
    calls = _counting(monkeypatch)
    x, w = torch.randn(16, 32), torch.randn(32, requires_grad=True)
    with torch.no_grad():  # the Program is remembered with "grad mode must be off"
        compiled, graph = _settled(monkeypatch, x, w)
        assert graph.last[2], "inputs requiring grad: the fast path needs grad mode off"
        before = calls.count(graph)
        assert_same(compiled(x, w), chain(x, w))
        assert calls.count(graph) == before
    out = compiled(x, w)  # grad mode on: the training path, not the inference Program
    assert calls.count(graph) == before + 1 and out.requires_grad
    out.sum().backward()
    ref = w.detach().clone().requires_grad_(True)
    chain(x, ref).sum().backward()
    assert_same(w.grad, ref.grad, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        y = torch.randn(4, 32)  # another shape
        assert_same(compiled(y, w), chain(y, w))
        assert_same(compiled(x.double(), w.double()), chain(x.double(), w.double()))
    assert calls.count(graph) == before + 3


def test_a_failing_fast_path_reruns_through_the_python_call(monkeypatch):
    x, w = torch.randn(16, 32), torch.randn(32)
    compiled, graph = _settled(monkeypatch, x, w)

    def broken(*args):
        raise RuntimeError("a broken run function")
    graph.last = (graph.last[0], broken, graph.last[2])
    assert_same(compiled(x, w), chain(x, w))
    assert graph.last is None or graph.last[1] is not broken
    assert_same(compiled(x, w), chain(x, w))
    assert graph.last is not None and graph.last[1] is not broken


def test_a_keyboard_interrupt_in_the_fast_path_propagates(monkeypatch):
    x, w = torch.randn(16, 32), torch.randn(32)
    compiled, graph = _settled(monkeypatch, x, w)

    def interrupted(*args):
        raise KeyboardInterrupt
    graph.last = (graph.last[0], interrupted, graph.last[2])
    with pytest.raises(KeyboardInterrupt):
        compiled(x, w)


def test_a_graph_past_its_payback_stays_lowered_when_lowerings_measure_slower(monkeypatch):
    # another graph's slow lowering raises seconds_per_node: a graph already past its
    # payback used to run its next signatures eagerly again, until its eager time caught up
    monkeypatch.setattr(config, "cpu_async_compile", False)
    monkeypatch.setattr(CpuCompiledGraph, "seconds_per_node", {"lower": 1e-4, "joint": 1e-4})
    x, w = torch.randn(16, 32), torch.randn(32)
    compiled = lookup("cpu")(trace(chain), [x, w])
    graph = compiled_graph(compiled)
    graph.eager_seconds = 1.0  # paid
    for _ in range(3):
        assert_same(compiled(x, w), chain(x, w))
    assert graph.credited
    CpuCompiledGraph.seconds_per_node["lower"] = 10.0
    y = torch.randn(8, 32)
    for _ in range(3):
        assert_same(compiled(y, w), chain(y, w))
    assert graph.eager_seconds == 1.0, "the graph ran its graph module as in its eager phase again"


def _forward_of(compiled):
    (program,) = compiled.programs.values()
    return program.forward


@pytest.mark.parametrize("returns", ["tensor", "tuple", "twice", "two_outputs"])
def test_a_one_kernel_graph_runs_as_its_kernel_call(returns):
    # no generated forward between the Program and the kernel (one Python frame a call);
    # the graph's own output structure, the same tensor twice where the graph returns it twice
    from terra_dyn.backends.cpu import compile_graph

    def fn(x):
        y = torch.softmax(x * 2, -1)
        return {"tensor": y, "tuple": (y,), "twice": (y, y), "two_outputs": (x.sum(-1), y)}[returns]
    x = torch.randn(3, 50)
    compiled = compile_graph(trace(fn), [x])
    assert isinstance(_forward_of(compiled), tensor_check.KernelCall), compiled.describe()
    got, want = compiled(x), fn(x)
    assert type(got) is type(want)
    assert_same(got, want, atol=1e-6, rtol=1e-5)
    if returns == "twice":
        assert got[0] is got[1]


def test_a_one_kernel_graph_hands_calls_it_cannot_make_to_the_graph():
    from terra_dyn.backends.cpu import compile_graph

    class Sub(torch.Tensor):
        pass
    fn = lambda x: (torch.softmax(x * 2, -1),)  # noqa: E731
    x = torch.randn(3, 50)
    compiled = compile_graph(trace(fn), [x])
    forward = _forward_of(compiled)
    assert isinstance(forward, tensor_check.KernelCall)
    sub = x.as_subclass(Sub)
    (program,) = compiled.programs.values()
    (name,) = [n.name for n in program.gm.graph.nodes if n.op == "placeholder"]
    for got in (forward(sub), forward(**{name: x})):  # the graph's forward (its kernel's Python path)
        assert type(got) is tuple
        assert_same(got[0].as_subclass(torch.Tensor), fn(x)[0], atol=1e-6, rtol=1e-5)


def test_reference_cycles_through_the_c_types_are_collected():
    # GraphEntry and KernelCall report what they own to the GC (cxx_types.h OwnedRefs):
    # a cycle through either is freed by gc.collect(), and get_referents sees its members
    class Graph:
        def __call__(self, *args):
            return args

    graph = Graph()
    entry = tensor_check.GraphEntry(graph, graph)
    graph.entry = entry  # graph -> entry -> graph
    entry.set(graph, graph, False)
    assert sum(r is graph for r in gc.get_referents(entry)) == 4
    call = tensor_check.KernelCall(1, 1, [((2,), (1,), torch.float32)], [(0, (1,), graph)], None, graph, graph)
    graph.call = call
    assert sum(r is graph for r in gc.get_referents(call)) == 3  # slow, fallback, a check's on_mismatch
    alive = weakref.ref(graph)
    del graph, entry, call
    gc.collect()
    assert alive() is None
