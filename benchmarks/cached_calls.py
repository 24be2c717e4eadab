"""Cached-call cost: what a call costs once its translation is cached (guards + graph call).

    python benchmarks/cached_calls.py                # terra_dyn and eager
    python benchmarks/cached_calls.py --compile      # with torch.compile(backend="eager") beside
    python benchmarks/cached_calls.py --clock cpu    # thread CPU time (a loaded shared machine)
    python benchmarks/cached_calls.py --no-direct    # also terra_dyn with TERRA_DYN_DIRECT_CALLS=0
                                                     # (the rewritten frame on every hit)

Programs: `x + y` on 8-element tensors (the hook's fixed overhead), a 12-layer MLP module
(per-module guards: identity, containers, class version tags, global hook registries), and
a function calling a helper, F.gelu and a class constant (function, module-attribute and
class guards). Figures are the best of several repeats of a loop, µs per call, one thread;
the systems' loops alternate within each repeat, so load changes hit them alike.
"""
import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def tiny(x, y):
    return x + y


def _scale(t, k=2.0):
    return t * k


class Config:
    shift = 0.5


def helpers(x):
    return _scale(F.gelu(x)) + Config.shift


def mlp():
    torch.manual_seed(0)
    layers = []
    for _ in range(12):
        layers += [nn.Linear(16, 16), nn.ReLU()]
    return nn.Sequential(*layers)


def best_us(fn, calls, repeats, clock=time.perf_counter):
    best = float("inf")
    for _ in range(repeats):
        t0 = clock()
        for _ in range(calls):
            fn()
        best = min(best, (clock() - t0) / calls)
    return best * 1e6


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=20000)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--compile", action="store_true", help="also torch.compile(backend='eager')")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="cpu: thread CPU time")
    p.add_argument("--no-direct", action="store_true", help="also terra_dyn translated with direct calls off")
    args = p.parse_args()
    torch.set_num_threads(1)
    import terra_dyn

    x8, y8 = torch.randn(8), torch.randn(8)
    xm = torch.randn(4, 16)
    model = mlp()
    programs = {
        "x + y": (tiny, (x8, y8), 1),
        "helper + F.gelu + class attr": (helpers, (x8,), 1),
        "12-layer MLP": (model, (xm,), 20),
    }
    systems = {"eager": lambda f: f, "terra_dyn": lambda f: terra_dyn.optimize(f, backend="interpreter")}
    if args.no_direct:
        systems["terra no-direct"] = lambda f: terra_dyn.optimize(f, backend="interpreter")
    if args.compile:
        systems["compile:eager"] = lambda f: torch.compile(f, backend="eager")
    print(f"{'program':32s}" + "".join(f"{s:>16s}" for s in systems) + f"{'terra - eager':>16s}")
    with torch.no_grad():
        for name, (fn, inputs, slow) in programs.items():
            row, made = {s: float("inf") for s in systems}, {}
            for system, make in systems.items():
                made[system] = fast = make(fn)
                terra_dyn.config.direct_calls = system != "terra no-direct"  # read when translating
                fast(*inputs), fast(*inputs)
                terra_dyn.config.direct_calls = True
            clock = time.thread_time if args.clock == "cpu" else time.perf_counter
            for _ in range(args.repeats):
                for system, fast in made.items():
                    row[system] = min(row[system], best_us(lambda: fast(*inputs), args.calls // slow, 1, clock))
            cells = "".join(f"{row[s]:14.2f}us" for s in systems)
            print(f"{name:32s}{cells}{row['terra_dyn'] - row['eager']:14.2f}us")


if __name__ == "__main__":
    main()
