"""The CPU backend: an FX graph in, a callable running generated, vectorized, multi-threaded
C++ kernels for its fusion groups out (the same groups the Triton backend fuses).

    gm --fusion.lowering--> ATen graph --fusion.partition--> [FusionGroup | ATen node, ...]
       --codegen (+ cpp_ops)--> C++ per group --compiler (one .so per graph, cached)-->
       --kernel (ctypes)--> a rewritten FX graph whose forward calls kernels and ATen ops

    compiled = compile_graph(torch.fx.symbolic_trace(f), [x])
    compiled(x)                           # == f(x)
    compiled.kernel_sources, compiled.notes, print(compiled.describe())

Modules, in the order data flows: composite_steps (decomposed linear / matmul steps as one
call, input-free steps computed once), cpp_ops (the C++ op table), codegen (read_through:
views read through their bases), compiler (g++ and the library cache), kernel (one call),
fast_calls (ATen steps through torch's bindings), compiled_graph (the program per signature).
Nothing here imports triton, torch._dynamo, torch._inductor or terra_dyn._C.
"""
from .compiler import why_unavailable


def compile_graph(gm, example_inputs: list, eager_calls: int = 0, payback: bool = False,
                  asynchronous: bool = False):
    """Backend entry point (torch.compile's backend signature): returns a CpuCompiledGraph.
    Its first `eager_calls` calls run `gm` itself; the lowering happens on the next one
    (with `payback`, not before gm's eager time pays for it: CpuCompiledGraph.PAYBACK).
    With `asynchronous`, g++ builds the kernels in the background while calls run eagerly
    (`wait_for_kernels()` waits for every such build)."""
    from .compiled_graph import CpuCompiledGraph
    return CpuCompiledGraph(gm, example_inputs, eager_calls=eager_calls, payback=payback,
                            asynchronous=asynchronous)


def wait_for_kernels():
    """Wait until every kernel build running in the background is done (benchmarks, tests)."""
    from .compiler import wait_for_pending
    wait_for_pending()


def is_available() -> bool:
    """True when a C++ compiler runs here (without one, every group runs as ATen ops)."""
    return why_unavailable() == ""


__all__ = ["compile_graph", "is_available", "wait_for_kernels", "why_unavailable"]
