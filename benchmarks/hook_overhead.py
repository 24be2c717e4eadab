"""Per-call overhead of the frame hook, in ns per call of a tiny function (medians).

    .venv/bin/python benchmarks/hook_overhead.py [--calls 200000] [--repeat 7]

Rows: no hook; hook installed, code skipped; a cached rewritten (identity) code object
with an empty guard; the same with a guard of two tensor checks (vs the same function with
no hook); a call through OptimizedCallable; and the cost of one C tensor check.
Then the guard of `f(x, y): return x + y` (2 call_id + 2 tensor checks) on the fast
(terra_dyn._tensor_check) and Python-API paths side by side, and the whole cached call of
optimize(f, backend="interpreter") over eager f, interleaved (medians and minimums).
Targets (docs): skipped within 100 ns of no hook; cached rewritten within 400 ns; a cached
optimized call within 1 us of eager.
"""
import argparse
import statistics
import timeit

import torch

import terra_dyn
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


def add(x, y):
    return x + y


def guard_of_add(x, y, fast):
    """The guard translation gives add(x, y): grad mode, default dtype, two tensors."""
    previous = _C.set_fast_guards(fast)
    try:
        return _C.Guard([("call_id", torch.is_grad_enabled, torch.is_grad_enabled()),
                         ("call_id", torch.get_default_dtype, torch.get_default_dtype()),
                         tensor_check(x, 0), tensor_check(y, 1)])
    finally:
        _C.set_fast_guards(previous)


def interleaved(stmts, namespace, calls, repeat):
    """{stmt: (median, min) ns per call}, the statements timed in turn, `repeat` rounds."""
    timers = {s: timeit.Timer(s, globals=namespace) for s in stmts}
    times = {s: [] for s in stmts}
    for _ in range(repeat):
        for s, timer in timers.items():
            times[s].append(timer.timeit(calls) / calls * 1e9)
    return {s: (statistics.median(t), min(t)) for s, t in times.items()}


def guard_and_call_rows(calls, repeat):
    x, y = torch.randn(4, 4), torch.randn(4, 4)
    fast, slow = guard_of_add(x, y, True), guard_of_add(x, y, False)
    optimized = terra_dyn.optimize(add, backend="interpreter")
    optimized(x, y)
    ns = {"fast": fast, "slow": slow, "empty": _C.Guard([]), "x": x, "y": y, "add": add, "opt": optimized}
    print(f"\nfast path: {_C.fast_guards_status()} ({fast.fast_checks} of 4 checks on it)")
    g = interleaved(["empty.check(x, y)", "fast.check(x, y)", "slow.check(x, y)"], ns, calls, repeat)
    empty = g["empty.check(x, y)"][0]
    print(f"Guard.check of add(x, y): 2 call_id + 2 tensor checks (ns, median over {repeat}, less an empty guard)")
    print(f"  {'fast (C++ _tensor_check)':<28} {g['fast.check(x, y)'][0] - empty:7.0f}")
    print(f"  {'Python-API path':<28} {g['slow.check(x, y)'][0] - empty:7.0f}")
    c = interleaved(["add(x, y)", "opt(x, y)"], ns, max(calls // 4, 1), 3 * repeat)
    (e_med, e_min), (o_med, o_min) = c["add(x, y)"], c["opt(x, y)"]
    print("cached optimize(add, backend='interpreter') vs eager add (ns/call, median / min)")
    print(f"  eager {e_med:.0f} / {e_min:.0f}   optimized {o_med:.0f} / {o_min:.0f}   "
          f"overhead {o_med - e_med:+.0f} / {o_min - e_min:+.0f}")


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
    guard_and_call_rows(n, r)


if __name__ == "__main__":
    main()
