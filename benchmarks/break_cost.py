"""The cost of one graph break: a loop whose body breaks at `.item()` every iteration.

    python benchmarks/break_cost.py            # 64 iterations a call
    python benchmarks/break_cost.py 256

Per iteration, terra_dyn (interpreter backend) against the same function run plainly, in
process CPU time (the machine is shared: wall time is not), median of 15 rounds of 200
calls. The difference is what a break costs: the native `.item()`, the resume function's
guard and entry through the hook, the trampoline step. Run it from two checkouts one after
the other to compare a change with its base.
"""
import statistics
import sys
import time

import torch

import terra_dyn


def loop_item(x, n):
    t = 0.0
    for _ in range(n):
        t += x.sum().item()
    return t


def per_iteration(fn, x, n, calls=200, rounds=15):
    times = []
    for _ in range(rounds):
        t0 = time.process_time()
        for _ in range(calls):
            fn(x, n)
        times.append((time.process_time() - t0) / calls / n * 1e9)
    return statistics.median(times)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    n = int(argv[0]) if argv else 64
    x = torch.ones(2)
    fast = terra_dyn.optimize(loop_item, backend="interpreter")
    for _ in range(10):
        fast(x, n)
    ours, plain = per_iteration(fast, x, n), per_iteration(loop_item, x, n)
    print(f"per iteration: terra_dyn {ours:.0f} ns, plain {plain:.0f} ns, break cost {ours - plain:.0f} ns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
