"""Shared helpers for the backend tests: build a graph, run it through the Triton backend,
compare with eager, and remember every kernel generated (test_zz_sm90 compiles them all).

    compiled = check(lambda x: torch.softmax(x, -1), torch.randn(4, 7))
    assert len(compiled.kernels) == 1
"""
import types

import torch
import torch.fx as fx

from terra_dyn.backends.triton import compile_graph

GENERATED = {}  # kernel text -> KernelSource, over the whole session

TOLERANCES = {torch.float16: (2e-3, 2e-3), torch.bfloat16: (1.6e-2, 1.6e-2), torch.float32: (1e-5, 1.3e-6),
              torch.float64: (1e-7, 1e-7)}


def trace(fn, nargs=1) -> fx.GraphModule:
    if isinstance(fn, fx.GraphModule):
        return fn
    if not isinstance(fn, types.FunctionType):  # torch.exp etc.: wrap so that fx can trace it
        builtin = fn
        fn = [lambda a: builtin(a), lambda a, b: builtin(a, b), lambda a, b, c: builtin(a, b, c)][nargs - 1]
    return fx.symbolic_trace(fn)


def assert_same(actual, expected, atol=None, rtol=None, what=""):
    if isinstance(expected, (tuple, list)):
        assert isinstance(actual, (tuple, list)) and len(actual) == len(expected), what
        for a, e in zip(actual, expected):
            assert_same(a, e, atol, rtol, what)
        return
    if not isinstance(expected, torch.Tensor):
        assert actual == expected, what
        return
    assert isinstance(actual, torch.Tensor), what
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != eager {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != eager {tuple(expected.shape)}"
    default = TOLERANCES.get(expected.dtype, (0, 0))
    torch.testing.assert_close(actual, expected, atol=default[0] if atol is None else atol,
                               rtol=default[1] if rtol is None else rtol, equal_nan=True, msg=lambda m: f"{what}: {m}")


def check(fn, *args, atol=None, rtol=None, expect_kernels=None, what=""):
    """Run fn eagerly and through the backend on the same inputs; compare; return the compiled graph."""
    gm = trace(fn, len(args))
    expected = gm(*args)
    compiled = compile_graph(gm, list(args))
    actual = compiled(*args)
    assert_same(actual, expected, atol, rtol, what or getattr(fn, "__name__", "graph"))
    GENERATED.update(compiled.sources)
    if expect_kernels is None:
        # every group must really have run as a kernel (zero-size groups run as ATen ops)
        unexpected = [n for n in compiled.notes if "zero-size" not in n]
        assert not unexpected, unexpected
    else:
        assert len(compiled.kernels) == expect_kernels, (compiled.notes, compiled.groups, compiled.kernel_sources)
    return compiled
