"""Per-call overhead of the frame hook, in ns per call of a tiny function (medians).

    .venv/bin/python benchmarks/hook_overhead.py [--calls 200000] [--repeat 7]

Rows: no hook; hook installed, code skipped; a cached rewritten (identity) code object
with an empty guard; the same with a guard of two tensor checks (vs the same function with
no hook); a call through OptimizedCallable; and the cost of one C tensor check.
Targets (docs): skipped within 100 ns of no hook; cached rewritten within 400 ns.
"""
import argparse
import statistics
import timeit

import torch

from terra_dyn import _C
from terra_dyn.codegen import flatten_signature
from terra_dyn.eval_frame import frame_hook, optimized_callable


def tiny(x):
    return x


def tiny2(x, y):
    return x


def tensor_check(t, i):
    return ("tensor", i, type(t), t.dtype, t.device, tuple(t.shape), t.stride(), t.requires_grad)


def entry_callback(guard):
    """Identity translation of tiny/tiny2 with `guard`; everything else skipped."""
    def callback(frame):
        if frame.f_code in (tiny.__code__, tiny2.__code__):
            return _C.CacheEntry(guard, flatten_signature(frame.f_code))
        return _C.SKIP
    return callback


def ns_per_call(stmt, namespace, calls, repeat, callback=None):
    timer = timeit.Timer(stmt, globals=namespace)
    times = []
    for _ in range(repeat):
        _C.reset()
        with frame_hook(callback):
            timer.timeit(10)  # fill the cache / skip marks
            times.append(timer.timeit(calls))
    return statistics.median(times) / calls * 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    n, r = args.calls, args.repeat
    x, y = torch.randn(4, 4), torch.randn(4)
    ns = {"tiny": tiny, "tiny2": tiny2, "x": x, "y": y}
    skip_all = lambda frame: _C.SKIP  # noqa: E731
    two_tensors = _C.Guard([tensor_check(x, 0), tensor_check(y, 1)])
    ns["fast"] = optimized_callable(tiny, entry_callback(_C.Guard([])))

    rows = [
        ("no hook", ns_per_call("tiny(x)", ns, n, r)),
        ("hook on, code skipped", ns_per_call("tiny(x)", ns, n, r, skip_all)),
        ("cached rewritten code, empty guard", ns_per_call("tiny(x)", ns, n, r, entry_callback(_C.Guard([])))),
        ("no hook, two tensor args", ns_per_call("tiny2(x, y)", ns, n, r)),
        ("cached rewritten code, 2 tensor checks", ns_per_call("tiny2(x, y)", ns, n, r, entry_callback(two_tensors))),
        ("OptimizedCallable(tiny) from no-hook code", ns_per_call("fast(x)", ns, n, r)),
    ]
    base, base2 = rows[0][1], rows[3][1]
    print(f"{'path':<44} {'ns/call':>8} {'vs no hook':>11}")
    for i, (name, t) in enumerate(rows):
        ref = base2 if "tensor" in name else base
        print(f"{name:<44} {t:8.0f} {t - ref:+10.0f}")

    one = _C.Guard([tensor_check(x, 0)])
    empty = _C.Guard([])
    check_ns = ns_per_call("one.check(x)", {"one": one, "x": x}, n, r) - ns_per_call(
        "empty.check(x)", {"empty": empty, "x": x}, n, r)
    print(f"\none C tensor check (dtype, sizes, requires_grad, strides, device): {check_ns:.0f} ns")
    print("Python-level cost of each metadata getter the check uses (ns):")
    for stmt in ("x.dtype", "x.shape", "x.size()", "x.requires_grad", "x.stride()", "x.device", "x.is_contiguous()"):
        print(f"  {stmt:<18} {ns_per_call(stmt, {'x': x}, n, r):6.0f}")


if __name__ == "__main__":
    main()
