"""Per-call cost of a cpu-backend graph on tiny tensors, and where it goes.

    python benchmarks/cpu_call_overhead.py            # median us per call, 1 torch thread

A 16-element graph of three pointwise ops (one fused kernel): its run time is all overhead.
Rows, each a median of interleaved repetitions (modes taking turns, so that load from
other processes hits every row alike):

    eager                 the three ATen ops
    terra_dyn optimize    the whole path: frontend guards, compiled graph, kernel call
    compiled graph        CpuCompiledGraph.__call__ (signature lookup, dispatch, kernel)
    program forward       the generated forward of the lowered graph (kernel call only)
    kernel call           the kernel's calling function: output allocation, pointers, the C call
    empty_strided         allocating the output alone
"""
import os
import statistics
import sys
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import terra_dyn  # noqa: E402
import terra_dyn.config as config  # noqa: E402


def graph(x, y):
    return torch.tanh(x * y + 1.0)


def medians_us(fns: dict, reps=20000, rounds=7) -> dict:
    """Median over `rounds` of the mean us per call of `reps` calls, the rows taking turns."""
    times = {name: [] for name in fns}
    for fn in fns.values():
        for _ in range(100):
            fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            t = time.perf_counter()
            for _ in range(reps):
                fn()
            times[name].append((time.perf_counter() - t) / reps * 1e6)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main():
    torch.set_num_threads(1)
    config.cpu_min_elements = 0  # a kernel at any size: this measures the calling cost
    from terra_dyn.backends.cpu.compiled_graph import CpuCompiledGraph
    CpuCompiledGraph.PAYBACK = 0.0  # lowered at the first call, however cheap the graph
    x, y = torch.randn(16), torch.randn(16)
    optimized = terra_dyn.optimize(graph, backend="cpu")
    expected = graph(x, y)
    assert torch.allclose(optimized(x, y), expected)
    from terra_dyn.backends.cpu import compile_graph
    compiled = compile_graph(torch.fx.symbolic_trace(graph), [x, y])
    (program,) = compiled.programs.values()
    (kernel,) = [n.target for n in program.gm.graph.nodes if n.op == "call_function"
                 and n.target.__module__ == "terra_dyn.backends.cpu.kernel"]
    assert torch.allclose(compiled(x, y), expected) and torch.allclose(kernel(x, y), expected)
    rows = medians_us({
        "eager": lambda: graph(x, y),
        "terra_dyn optimize": lambda: optimized(x, y),
        "compiled graph": lambda: compiled(x, y),
        "program forward": lambda: program(x, y),
        "kernel call": lambda: kernel(x, y),
        "empty_strided": lambda: torch.empty_strided((16,), (1,), dtype=torch.float32, device="cpu"),
    })
    print(f"torch={torch.__version__} threads=1  (us per call, median of 7 rounds)")
    for name, us in rows.items():
        print(f"{name:<22}{us:8.2f}")


if __name__ == "__main__":
    main()
