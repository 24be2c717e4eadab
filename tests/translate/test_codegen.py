"""The rewritten code: graph inputs, outputs, rebuilt values, in-place effects, closures.

Every test compares with eager on the same inputs (fresh clones for mutation tests).
"""
import collections
import dis
import os
import sys

import torch

import terra_dyn
from terra_dyn import _C, report
from terra_dyn.translate import TranslateOptions, translate_code
from terra_dyn.backends import lookup

Pair = collections.namedtuple("Pair", "left right")


def _code_of(fn):
    return _C.cache_entries(fn.__code__)[0].code


def test_rewritten_code_is_straight_line(fresh_terra_dyn):
    def f(x, y):
        return torch.relu(x) + y

    fast = terra_dyn.optimize(f, backend="interpreter")
    x, y = torch.randn(4), torch.randn(4)
    torch.testing.assert_close(fast(x, y), f(x, y))
    code = _code_of(f)
    # the path a call takes: everything before the graph-error handler (run only on a raise)
    handler = min((e.target for e in dis.Bytecode(code).exception_entries), default=len(code.co_code))
    ops = [i.opname for i in dis.get_instructions(code) if i.offset < handler]
    assert not any("JUMP" in op for op in ops)
    assert ops.count("CALL") == 1  # one call: the compiled graph


def test_containers_constants_and_namedtuples_returned(fresh_terra_dyn):
    def f(x):
        y = x.sum(0)
        return {"y": y, "n": x.shape[0], "pair": Pair(y, [x, None, "s"])}, (1, 2.5)

    fast = terra_dyn.optimize(f, backend="interpreter")
    x = torch.randn(3, 2)
    got, want = fast(x), f(x)
    assert type(got[0]["pair"]) is Pair and got[1] == want[1] and got[0]["n"] == 3
    torch.testing.assert_close(got[0]["y"], want[0]["y"])
    assert got[0]["pair"].right[0] is x  # an input comes back as the same object


def test_input_mutation_and_aliasing_match_eager(fresh_terra_dyn):
    def f(x, y):
        v = x[0]
        v.add_(1)  # writes through a view into x
        y.mul_(2)
        z = x + y
        return z, v

    fast = terra_dyn.optimize(f, backend="interpreter")
    x, y = torch.randn(3, 2), torch.randn(3, 2)
    x1, y1, x2, y2 = x.clone(), y.clone(), x.clone(), y.clone()
    got, want = fast(x1, y1), f(x2, y2)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close((x1, y1), (x2, y2))
    got[1].fill_(7)  # the returned view still aliases the input
    assert (x1[0] == 7).all()


def test_closure_values_are_checked(fresh_terra_dyn):
    def make(k):
        def f(x):
            return x * k
        return f

    f2, f3 = make(2), make(3)
    fast2 = terra_dyn.optimize(f2, backend="interpreter")
    fast3 = terra_dyn.optimize(f3, backend="interpreter")
    x = torch.randn(3)
    torch.testing.assert_close(fast2(x), x * 2)
    torch.testing.assert_close(fast3(x), x * 3)  # same code object, other closure
    torch.testing.assert_close(fast2(x), x * 2)


def test_varargs_kwargs_defaults(fresh_terra_dyn):
    def f(x, *rest, scale=2, **extra):
        out = x * scale
        for r in rest:
            out = out + r
        return out + extra.get("bias", 0)

    fast = terra_dyn.optimize(f, backend="interpreter")
    x, a, b = torch.randn(3), torch.randn(3), torch.randn(3)
    torch.testing.assert_close(fast(x, a, b, scale=3, bias=1.5), f(x, a, b, scale=3, bias=1.5))
    torch.testing.assert_close(fast(x), f(x))


def test_module_parameters_are_graph_inputs(fresh_terra_dyn):
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.Linear(8, 2))
    fast = terra_dyn.optimize(m, backend="interpreter")
    x = torch.randn(5, 4, requires_grad=True)
    with report.recording() as rec:
        got = fast(x)
    want = m(x)
    torch.testing.assert_close(got, want)
    got.sum().backward()
    g_ours = x.grad.clone()
    x.grad = None
    want.sum().backward()
    torch.testing.assert_close(g_ours, x.grad)
    gm = rec.report().graphs[0].graph
    assert sum(n.op == "placeholder" for n in gm.graph.nodes) == 5  # x + 4 parameters


class _Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(3))

    def forward(self, x, scale):
        for layer in self.layers:
            x = torch.relu(layer(x)) * scale
        return x


def test_parameters_reach_the_graph_as_one_tuple(fresh_terra_dyn):
    """The parameters, graph inputs after the arguments, are passed as the tuple that
    referents() returned (one CALL_FUNCTION_EX), not loaded item by item; a parameter
    replaced or changed in place after cached calls still reaches the result."""
    model = _Mlp()
    fast = terra_dyn.optimize(model, backend="interpreter")
    x = torch.randn(2, 4)
    with torch.no_grad():
        for _ in range(3):
            torch.testing.assert_close(fast(x, 2.0), model(x, 2.0))
        names = [i.opname for i in dis.get_instructions(_code_of(_Mlp.forward))]
        assert "CALL_FUNCTION_EX" in names and names.count("BINARY_SUBSCR") < 6, names
        model.layers[1].weight = torch.nn.Parameter(torch.randn(4, 4))
        torch.testing.assert_close(fast(x, 2.0), model(x, 2.0))
        model.layers[2].bias.add_(1.0)
        torch.testing.assert_close(fast(x, 3.0), model(x, 3.0))


def test_translate_code_directly_without_the_hook():
    def f(x, n):
        return (x + n).cos()

    x = torch.randn(3)
    t = translate_code(f.__code__, {"x": x, "n": 2}, f.__globals__,
                       TranslateOptions(backend=lookup("interpreter")))
    assert len(t.graphs) == 1 and t.guard.check(x, 2) and not t.guard.check(x, 3)
    import types

    rewritten = types.FunctionType(t.code, f.__globals__)
    torch.testing.assert_close(rewritten(x, 2), f(x, 2))


def test_a_cached_call_runs_no_python_of_terra_dyn(fresh_terra_dyn):
    # The cost of a cached call is measured in benchmarks/cached_calls.py; here its shape:
    # the guard check and the cache lookup happen in C, so the only Python frames are the
    # translated function and its graph.
    def f(x, y):
        return x + y

    fast = terra_dyn.optimize(f, backend="interpreter")
    x, y = torch.randn(2), torch.randn(2)
    fast(x, y)
    entered = []

    def profile(frame, event, arg):
        if event == "call":
            entered.append(frame.f_code)

    sys.setprofile(profile)
    try:
        out = fast(x, y)
    finally:
        sys.setprofile(None)
    torch.testing.assert_close(out, f(x, y))
    names = [code.co_name for code in entered]
    assert names[0] == "f" and "forward" in names, names
    package = os.path.dirname(terra_dyn.__file__)
    assert not [c for c in entered if c.co_filename.startswith(package)], names
