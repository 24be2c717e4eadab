"""What entering optimized code costs per call beyond the cached entry itself: the
OptimizedCallable's swap of the thread's frame callback (two thread-local writes, and the
hook installed and removed when no other callback is set), and the trampoline of a break.

    python benchmarks/callback_cost.py [--calls 20000] [--rounds 15]

ns per call, thread CPU time, rounds interleaved (min and median over rounds):
  hooked   tiny(x) under frame_hook(cb): the callback already set, the cached rewritten
           code (empty guard) entered by the hook
  wrapper  OptimizedCallable(tiny, cb)(x) from code with no callback: the same entry plus
           the swap in and out, the hook installed and removed
  nested   the same wrapper called while the same callback is already set (an optimized
           function calling another): the swap without the install
  wrapper - hooked and nested - hooked are the callback's cost. Then break_cost's loop (a
  break at `.item()` each iteration): per break, terra_dyn over plain, which holds the
  native call's result, the resume function's guard and entry and the trampoline step;
  and the trampoline's own step (codegen/resume.run_function over Continue objects) less a
  plain Python loop making the same calls.
"""
import argparse
import statistics
import time

import torch

from benchmarks.break_cost import loop_item
from benchmarks.hook_overhead import entry_callback, tiny
import terra_dyn
from terra_dyn import _C
from terra_dyn.codegen.resume import run_function
from terra_dyn.eval_frame import frame_hook, optimized_callable

STEPS = 1000


def _step(i):  # a resume function handing on to the next: Continue(fn, args)
    return _C.Continue(_step, (i - 1,)) if i else 0


def _plain_step(i):  # the same work called directly
    return (_plain_step, (i - 1,)) if i else 0


def _plain_steps(n):
    result = _plain_step(n)
    while type(result) is tuple:
        result = result[0](*result[1])
    return result


def _timed(fn, x, calls):
    t0 = time.thread_time_ns()
    for _ in range(calls):
        fn(x)
    return (time.thread_time_ns() - t0) / calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    x = torch.ones(2)
    cb = entry_callback(_C.Guard([]))
    wrapper = optimized_callable(tiny, cb)
    rows = {"plain": [], "hooked": [], "wrapper": [], "nested": []}
    for _ in range(args.rounds):
        rows["plain"].append(_timed(tiny, x, args.calls))
        with frame_hook(cb):
            _timed(tiny, x, 10)
            rows["hooked"].append(_timed(tiny, x, args.calls))
            rows["nested"].append(_timed(wrapper, x, args.calls))
        rows["wrapper"].append(_timed(wrapper, x, args.calls))
    print(f"{'path':<10} {'min ns':>8} {'median ns':>10}")
    for name, ts in rows.items():
        print(f"{name:<10} {min(ts):8.0f} {statistics.median(ts):10.0f}")
    for name in ("wrapper", "nested"):
        diffs = [a - b for a, b in zip(rows[name], rows["hooked"])]
        print(f"{name} - hooked: min {min(diffs):.0f} ns, median {statistics.median(diffs):.0f} ns")
    n = 64
    fast = terra_dyn.optimize(loop_item, backend="interpreter")
    for _ in range(10):
        fast(x, n)
    per_break = []
    for _ in range(args.rounds):
        ours = _timed(lambda v: fast(v, n), x, 100) / n
        plain = _timed(lambda v: loop_item(v, n), x, 100) / n
        per_break.append(ours - plain)
    print(f"per break (terra_dyn - plain, 64 breaks a call): min {min(per_break):.0f} ns, "
          f"median {statistics.median(per_break):.0f} ns")
    per_step = []
    for _ in range(args.rounds):
        ours = _timed(lambda v: run_function(_step, (STEPS,)), x, 20) / STEPS
        plain = _timed(lambda v: _plain_steps(STEPS), x, 20) / STEPS
        per_step.append(ours - plain)
    print(f"trampoline per step (run_function + Continue + call_moved - a plain loop of the same calls): "
          f"min {min(per_step):.0f} ns, median {statistics.median(per_step):.0f} ns")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
