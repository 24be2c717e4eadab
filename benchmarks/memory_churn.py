"""Memory over functions and models created, optimized, called once and dropped.

    python benchmarks/memory_churn.py --functions 4000 --models 250

Prints RSS every 1000 functions (exec'd one-line functions, each a new code object) and how
many of the dropped models' parameters are still alive. Flat RSS and 0 alive mean neither
the caches, the guards nor the report recorder keep dropped work alive.
"""
import argparse
import gc
import os
import sys
import weakref

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402


def rss_mib():
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--functions", type=int, default=4000)
    p.add_argument("--models", type=int, default=250)
    args = p.parse_args()
    import terra_dyn

    x = torch.randn(2, 8)
    alive = []
    every = max(1, args.functions // max(1, args.models))
    for i in range(args.functions + 1):
        namespace = {}
        exec(f"def f{i}(x):\n    return x * {i} + 1\n", {"torch": torch}, namespace)
        terra_dyn.optimize(namespace[f"f{i}"], backend="interpreter")(x)
        if i % every == 0 and len(alive) < args.models:
            model = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
            alive.append(weakref.ref(model[0].weight))
            with torch.no_grad():
                terra_dyn.optimize(model, backend="interpreter")(x)
            del model
        if i % 1000 == 0:
            gc.collect()
            print(f"{i:6d} functions: {rss_mib():.0f} MiB", flush=True)
    gc.collect()
    print(f"models dropped: {len(alive)}, still alive: {sum(r() is not None for r in alive)}")


if __name__ == "__main__":
    main()
