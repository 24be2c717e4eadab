"""The CPU twin of tests/backends/support.check: run a graph eagerly and through the cpu
backend on 1 and on 2 threads, compare values, dtypes and shapes.

    compiled = check(lambda x: torch.softmax(x, -1), torch.randn(4, 7))
"""
import torch

from terra_dyn.backends.cpu import compile_graph

from ..support import assert_same, trace


def compiled_graph(backend_result):
    """The CpuCompiledGraph behind what lookup("cpu") / lookup("auto") returned: the hook-off
    wrapper's fn, then the GraphEntry's graph (fusion/compiled.py FusedGraph.entry)."""
    inner = getattr(backend_result, "fn", backend_result)
    return getattr(inner, "graph", inner)


def run_on_threads(compiled, args, expected, atol=None, rtol=None, what=""):
    old = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            assert_same(compiled(*args), expected, atol, rtol, f"{what} on {threads} thread(s)")
    finally:
        torch.set_num_threads(old)


def check(fn, *args, atol=None, rtol=None, expect_kernels=None, what=""):
    gm = trace(fn, len(args))
    expected = gm(*args)
    compiled = compile_graph(gm, list(args))
    run_on_threads(compiled, args, expected, atol, rtol, what or getattr(fn, "__name__", "graph"))
    unexpected = [n for n in compiled.notes if "zero-size" not in n]
    assert not unexpected, unexpected
    if expect_kernels is not None:
        assert len(compiled.kernels) == expect_kernels, compiled.describe()
    return compiled
