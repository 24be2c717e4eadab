"""terra_dyn's own Python cost per call of the Triton backend, measurable without a GPU.

    python benchmarks/gpu/python_overhead.py

The overhead part's small graphs are compiled on CPU tensors (Triton's interpreter), then
every kernel launch is replaced by a no-op: what is left per call is the step runner, the
layout keys, output allocation and the ATen calls between kernels. Eager's time for the same
graph (its ATen ops only) is printed beside it. Medians of 2000 calls, one thread.
"""
import os
import statistics
import sys
import time

os.environ.setdefault("TRITON_INTERPRET", "1")

import torch  # noqa: E402

from common import import_backend  # noqa: E402
from overhead import graphs, inputs  # noqa: E402


class _NoKernel:
    def __getitem__(self, grid):
        return lambda *args, **kwargs: None


def median_us(fn, args, reps=2000):
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main():
    torch.set_num_threads(1)
    backend = import_backend()
    from terra_dyn.backends.triton.launch import Launcher
    print(f"{'graph':<26} {'kernels':>7} {'eager us':>9} {'terra_dyn us (no kernels)':>26}")
    for name, (fn, shapes) in graphs(smoke=True).items():
        args = inputs(shapes, "cpu", torch.float32)
        with torch.no_grad():
            compiled = backend.compile_graph(torch.fx.symbolic_trace(fn), args)
            compiled(*args)
            launchers = [v for p in compiled.programs.values() for s in getattr(p, "steps", [])
                         for v in getattr(s, "variants", {}).values() if isinstance(v, Launcher)]
            for launcher in launchers:
                launcher.kernel = _NoKernel()
            print(f"{name:<26} {len(launchers):>7} {median_us(fn, args):9.1f} {median_us(compiled, args):26.1f}")


if __name__ == "__main__":
    sys.exit(main())
