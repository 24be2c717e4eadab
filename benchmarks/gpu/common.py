"""What every part of the GPU benchmark shares: the backend import, timers, result files.

    backend = import_backend()                    # terra_dyn.backends.triton, C extension or not
    gpu_us = device_us(fn, args)                  # GPU time of one call (CUDA graph replay)
    wall_us = call_us(fn, args)                   # one synchronous call as a user meets it
    save(out_dir, "kernels", {...})               # <out>/kernels.json

Two clocks, because they answer two questions:
  device_us  the GPU's own time for one call: the call is captured once into a CUDA graph
             and replayed between CUDA events, so the CPU's launch cost is not in it (for
             bandwidth). Where a call cannot be captured, events around a burst of calls
             queued without synchronizing (the CPU's cost shows when it is the larger).
  call_us    wall time of `fn(*args); synchronize()`, median: what a small graph costs a
             caller (launch overhead included).
On CPU (smoke mode) both are perf_counter medians and say nothing about GPUs.
"""
import json
import os
import statistics
import sys
import time
import types

import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def import_backend():
    """terra_dyn.backends.triton, even where terra_dyn's C extension is not built or the
    frontend does not support this Python (the backend never needs either): then a bare
    package object stands in for `terra_dyn`."""
    try:
        import terra_dyn.backends.triton as backend
        return backend
    except ImportError:
        for name in [m for m in sys.modules if m == "terra_dyn" or m.startswith("terra_dyn.")]:
            del sys.modules[name]
        package = types.ModuleType("terra_dyn")
        package.__path__ = [os.path.join(REPO, "terra_dyn")]
        sys.modules["terra_dyn"] = package
        import terra_dyn.backends.triton as backend
        return backend


def on_gpu(args) -> bool:
    return any(isinstance(a, torch.Tensor) and a.is_cuda for a in args)


def _cpu_median_us(fn, args, reps):
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn(*args)
        times.append((time.perf_counter() - t) * 1e6)
    return statistics.median(times)


def call_us(fn, args, reps=50, warmup=3):
    """Median wall time of one synchronous call, in µs."""
    for _ in range(warmup):
        fn(*args)
    if not on_gpu(args):
        return _cpu_median_us(fn, args, reps)
    times = []
    torch.cuda.synchronize()
    for _ in range(reps):
        t = time.perf_counter()
        fn(*args)
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1e6)
    return statistics.median(times)


def burst_us(fn, args, reps):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(reps):
        fn(*args)
    end.record()
    end.synchronize()
    return start.elapsed_time(end) * 1e3 / reps


def device_us(fn, args, reps=20, warmup=2):
    """(GPU time of one call in µs, how it was measured): median of 5 rounds of `reps` replays."""
    for _ in range(warmup):
        fn(*args)
    if not on_gpu(args):
        return _cpu_median_us(fn, args, max(3, reps // 4)), "cpu wall"
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn(*args)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn(*args)
        replay = graph.replay
        rounds = [burst_us(lambda: replay(), (), reps) for _ in range(5)]
        del graph
        return statistics.median(rounds), "cuda graph replay"
    except Exception as exc:  # not capturable (a sync inside, a CPU tensor): time bursts instead
        torch.cuda.synchronize()
        rounds = [burst_us(fn, args, reps) for _ in range(5)]
        return statistics.median(rounds), f"event burst ({type(exc).__name__})"


def tensor_bytes(values) -> int:
    total = 0
    for v in values if isinstance(values, (list, tuple)) else [values]:
        if isinstance(v, torch.Tensor):
            total += v.numel() * v.element_size()
        elif isinstance(v, (list, tuple)):
            total += tensor_bytes(v)
    return total


def close(a, b, dtype) -> bool:
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(close(x, y, dtype) for x, y in zip(a, b))
    tol = 3e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-4
    return a.shape == b.shape and a.dtype == b.dtype and torch.allclose(a.float(), b.float(), atol=tol, rtol=tol)


def save(out_dir, name, data):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(data, f, indent=1, default=str)


def load(out_dir, name):
    try:
        with open(os.path.join(out_dir, f"{name}.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class Budget:
    """Seconds left for one part, so that a slow case skips the rest instead of the whole run."""

    def __init__(self, seconds):
        self.deadline = time.monotonic() + seconds

    def left(self):
        return self.deadline - time.monotonic()

    def spent(self):
        return self.left() <= 0
