"""What a translation costs, the symbolic retranslation most (issue 11: the generate loop's).

Each test compares with eager and checks one cost: a symbolic translation imports nothing
but the ShapeEnv's own modules, ops whose results have int sizes propagate on meta tensors
again, an attempt that pins a symbol stops at that op instead of translating to the end, and
guard descriptions never format tensor values.
"""
import operator
import os
import subprocess
import sys

import torch

import terra_dyn
from terra_dyn import report
from terra_dyn.translate import graph_state

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(fast, fn, calls):
    for args in calls:
        got, expected = fast(*args), fn(*args)
        if isinstance(expected, tuple):
            assert len(got) == len(expected)
            for g, e in zip(got, expected):
                if isinstance(e, torch.Tensor):
                    torch.testing.assert_close(g, e, rtol=0, atol=0)
                else:
                    assert g == e
        else:
            torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_a_symbolic_translation_imports_no_compiler_modules():
    # torch's ShapeEnv walks the stack for each symbol, and its first walk imported
    # torch.export, torch._inductor and aot_autograd to list "uninteresting" files
    script = (
        "import sys, torch, terra_dyn\n"
        "f = terra_dyn.optimize(lambda x: x.sum(0) * x.shape[0], backend='interpreter')\n"
        "for n in (3, 4, 5):\n"
        "    assert torch.equal(f(torch.ones(n, 2)), torch.ones(n, 2).sum(0) * n)\n"
        "print(sorted(m for m in ('torch._inductor.sizevars', 'torch.export._trace',\n"
        "                         'torch._functorch.aot_autograd') if m in sys.modules))\n")
    assert _in_a_fresh_process(script) == "[]"


def _in_a_fresh_process(script):
    """What `script` prints, run by this interpreter in a new process."""
    env = dict(os.environ, PYTHONPATH=_REPO)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_ops_after_a_result_with_int_sizes_propagate_on_meta_tensors(monkeypatch):
    def f(x, w):  # a decoder's attention: softmax over a symbolic length, then int sizes
        scores = (x @ w).softmax(0)            # (n, 8)
        h = scores.t() @ x                     # (8, 8): int sizes
        for _ in range(12):
            h = torch.tanh(h @ w) + h * 0.5
        return h, x.shape[0]

    fake_ops = []
    propagate = graph_state.GraphState._propagate_fake

    def counting(self, kind, target, args, kwargs):
        fake_ops.append(self._symbolic)
        return propagate(self, kind, target, args, kwargs)

    monkeypatch.setattr(graph_state.GraphState, "_propagate_fake", counting)
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(8, 8, generator=gen)
    calls = [(torch.randn(n, 8, generator=gen), w) for n in (4, 6, 9, 5)]
    terra_dyn.reset()
    fast = terra_dyn.optimize(f, backend="interpreter")
    with report.recording() as rec:
        _run(fast, f, calls)
    terra_dyn.reset()
    assert len(rec.report().translations) == 2 and not rec.report().fallbacks
    # matmul, softmax, t, matmul and the size read: the loop's 36 ops are on meta tensors
    assert sum(fake_ops) <= 8, sum(fake_ops)


def test_a_view_with_int_sizes_of_a_symbolic_base_keeps_the_base_facts():
    def f(x, w):  # an in-place write through a view makes its base require grad
        buf = torch.zeros(x.shape[0], 4)
        row = buf[:1]
        row.copy_(w)
        out = (buf * x).sum()
        return out, buf.requires_grad, row.requires_grad

    gen = torch.Generator().manual_seed(1)
    terra_dyn.reset()
    fast = terra_dyn.optimize(f, backend="interpreter")
    for n in (3, 5, 7):
        x = torch.randn(n, 4, generator=gen)
        w1 = torch.randn(1, 4, generator=gen, requires_grad=True)
        w2 = w1.detach().clone().requires_grad_(True)
        got, expected = fast(x, w1), f(x, w2)
        assert got[1:] == expected[1:]
        torch.testing.assert_close(got[0], expected[0], rtol=0, atol=0)
        got[0].backward()
        expected[0].backward()
        torch.testing.assert_close(w1.grad, w2.grad, rtol=0, atol=0)
    terra_dyn.reset()


def test_an_attempt_that_pins_a_size_stops_at_that_op(monkeypatch):
    def f(x, y):
        h = x.sum(1) * (0.5, 1.5, 2.5, 3.5, 4.5, 5.5)[y.shape[0]]  # needs y's length's value
        for _ in range(40):
            h = h * 1.01 + 0.1
        return h

    ops = []
    call = graph_state.GraphState.call

    def counting(self, *args, **kwargs):
        ops.append(self._symbolic)
        return call(self, *args, **kwargs)

    terra_dyn.reset()
    fast = terra_dyn.optimize(f, backend="interpreter")
    _run(fast, f, [(torch.randn(4, 3), torch.ones(2)), (torch.randn(6, 3), torch.ones(2))])  # x symbolic
    monkeypatch.setattr(graph_state.GraphState, "call", counting)
    with report.recording() as rec:  # y's length changes: an attempt with it symbolic is pinned
        _run(fast, f, [(torch.randn(5, 3), torch.ones(3))])
    terra_dyn.reset()
    assert len(rec.report().translations) == 1 and not rec.report().fallbacks
    # the attempt with y's length static makes 84 ops; the pinned one stopped at its third
    assert 84 <= len(ops) < 100, len(ops)


def test_sizes_pinned_one_per_attempt_settle_without_a_fallback():
    def f(a, b, full):
        if full:  # a flag, not a number: the retranslation keeps both lengths symbolic
            a = a * (0.5, 1.5, 2.5, 3.5, 4.5, 5.5)[a.shape[0]]  # the first attempt stops here
            b = b * (0.5, 1.5, 2.5, 3.5, 4.5, 5.5)[b.shape[0]]  # the second one here
        return a.sum() + b.sum()

    terra_dyn.reset()
    fast = terra_dyn.optimize(f, backend="interpreter")
    with report.recording() as rec:
        _run(fast, f, [(torch.ones(n), torch.ones(n + 1), full) for n, full in ((2, False), (3, False), (4, True))])
    terra_dyn.reset()
    assert not rec.report().fallbacks and len(rec.report().translations) == 3


def test_a_sliding_window_cache_matches_eager():
    class Window:  # gemma2's sliding cache: once full, its keys and values stop growing
        def __init__(self):
            self.keys = torch.zeros(1, 0, 2)
            self.values = torch.zeros(1, 0, 2)

    def step(cache, k, v, limit):
        keys = torch.cat([cache.keys, k], 1)
        values = torch.cat([cache.values, v], 1)
        if keys.shape[1] > limit:
            keys, values = keys[:, -limit:], values[:, -limit:]
        cache.keys, cache.values = keys, values
        mask = torch.ones(1, min(keys.shape[1], limit))
        return (keys * mask[..., None]).sum() + (values * mask[..., None]).sum()

    gen = torch.Generator().manual_seed(2)
    tokens = [(torch.randn(1, 1, 2, generator=gen), torch.randn(1, 1, 2, generator=gen)) for _ in range(9)]
    eager, ours = Window(), Window()
    terra_dyn.reset()
    fast = terra_dyn.optimize(step, backend="interpreter")
    with report.recording() as rec:
        for k, v in tokens:
            torch.testing.assert_close(fast(ours, k, v, 4), step(eager, k, v, 4), rtol=0, atol=0)
            torch.testing.assert_close(ours.keys, eager.keys, rtol=0, atol=0)
    terra_dyn.reset()
    assert not rec.report().fallbacks


def test_guard_descriptions_never_format_a_weights_values(monkeypatch):
    import torch._tensor_str as tensor_str

    made = []
    init = tensor_str._Formatter.__init__

    def counting(self, *args, **kwargs):
        made.append(1)
        return init(self, *args, **kwargs)

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(32, 32)
            self.register_buffer("table", torch.arange(40.0))

        def forward(self, x):
            return self.lin(x) + self.table[:32]

    m = M()
    x = torch.randn(2, 32)
    expected = m(x)
    monkeypatch.setattr(tensor_str._Formatter, "__init__", counting)
    terra_dyn.reset()
    fast = terra_dyn.optimize(m, backend="interpreter")
    torch.testing.assert_close(fast(x), expected, rtol=0, atol=0)
    terra_dyn.reset()
    # a repr of a weight formats its values (~7 ms each for mistral's on a first call) and was
    # cut to <Parameter> anyway: longer than a description shows
    assert not made


def _targets(t):
    rows = []
    for i, row in enumerate(t):  # unrolled: reads the row count as an int (pins t.size()[0])
        rows.append(row * i)
    s = torch.stack(rows).sum()
    return s + s.item()  # then a break, in the same callee


def _train_step(x, t):
    return torch.relu(x).sum() * 2 + _targets(t)


def test_a_pin_inside_a_callee_that_breaks_later_does_not_pin_the_caller():
    # yolov3's build_targets (`enumerate(ious.t())`, then `.item()`s): the attempt that stops
    # at the pin inside the callee made the caller's row count static, and every new count of
    # targets translated train_step again; the break at the call keeps it symbolic
    fast = terra_dyn.optimize(_train_step, backend="interpreter")
    x = torch.randn(4)
    caller_translations = []
    for n in (3, 4, 5, 6, 7, 8):
        t = torch.randn(n, 2)
        with report.recording() as rec:
            got = fast(x, t)
        torch.testing.assert_close(got, _train_step(x, t), rtol=0, atol=0)
        caller_translations.append(sum(tr.code_name == "_train_step" for tr in rec.report().translations))
    terra_dyn.reset()
    assert caller_translations[2:] == [0, 0, 0, 0], caller_translations


def _counting_recompiles(monkeypatch):
    calls = []
    original = torch.fx.GraphModule.recompile

    def recompile(self):
        calls.append(self)
        return original(self)

    monkeypatch.setattr(torch.fx.GraphModule, "recompile", recompile)
    return calls


def test_a_translation_generates_the_graph_code_once(monkeypatch):
    # the GraphModule's constructor generates its code; the interpreter backend generated it
    # again (30-60 ms of a small decoder's translation)
    calls = _counting_recompiles(monkeypatch)
    terra_dyn.reset()

    def fn(x, n):
        return (x.relu() + n) * x.shape[0]

    fast = terra_dyn.optimize(fn, backend="interpreter")
    _run(fast, fn, [(torch.randn(4), 1), (torch.randn(6), 2), (torch.randn(7), 3)])
    assert len(calls) == 2, calls  # a static and a symbolic translation, one generation each


def test_the_interpreter_backend_regenerates_an_edited_graph(monkeypatch):
    # a backend's pass that edits the translator's graph before handing it on: the code must
    # follow the graph (a stale forward would compute the unedited graph)
    from terra_dyn.backends import interpreter

    def negate_output(gm, example_inputs):
        out = next(n for n in gm.graph.nodes if n.op == "output")
        with gm.graph.inserting_before(out):
            neg = gm.graph.call_function(torch.neg, (out.args[0][0],))
        out.args = ((neg,),)
        return interpreter.compile_graph(gm, example_inputs)

    terra_dyn.reset()
    fast = terra_dyn.optimize(lambda x: x * 2, backend=negate_output)
    x = torch.randn(5)
    assert torch.equal(fast(x), -(x * 2))
    # a replaced target (same nodes, same args)
    terra_dyn.reset()

    def mul_to_add(gm, example_inputs):
        for n in gm.graph.nodes:
            if n.op == "call_function" and n.target is operator.mul:
                n.target = operator.add
        return interpreter.compile_graph(gm, example_inputs)

    fast = terra_dyn.optimize(lambda x: x * 2, backend=mul_to_add)
    assert torch.equal(fast(x), x + 2)


def test_the_first_shape_env_imports_what_sympy_imports_lazily():
    # sympy imports sympy.tensor.tensor at its first sum of symbols; made deep in the first
    # symbolic translation of a process it cost 250-450 ms of gemma2's (40-60 ms alone)
    script = (
        "import sys, torch, sympy, terra_dyn\n"
        "from terra_dyn.translate.size_exprs import shape_env\n"
        "shape_env()\n"
        "print('sympy.tensor.tensor' in sys.modules)\n")
    assert _in_a_fresh_process(script) == "True"
