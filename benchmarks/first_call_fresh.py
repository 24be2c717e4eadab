"""First-call latency of the transformer block and the 12-layer MLP, each system in its own
fresh process (so no system inherits caches another one warmed).

    python benchmarks/first_call_fresh.py [--repeats 3]

Each child process imports torch and one system, warms it on a one-line function (imports,
first translation), then times the first call of a freshly built model (translate + compile +
run) and a second first call on another instance after a reset (the figure once torch's own
lazy caches are warm). micro.py measures all systems in one process instead; this script is
the check that its ordering does not flatter anyone.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, sys, time
sys.path.insert(0, {repo!r}); sys.path.insert(0, {bench!r})
import torch
import micro
torch.set_num_threads(1)
system, label = sys.argv[1], sys.argv[2]
if system == "terra_dyn":
    import terra_dyn
    wrap, reset = (lambda m: terra_dyn.optimize(m, backend="interpreter")), terra_dyn.reset
else:
    wrap = lambda m: torch.compile(m, backend=system.split(":")[1])
    reset = torch._dynamo.reset
wrap(lambda a: a * 2 + 1)(torch.randn(3)); reset()
make = micro.mlp12 if label == "mlp12" else micro.TransformerBlock.build
times = []
for _ in range(2):
    torch.manual_seed(0)
    model, inputs = make(torch)
    model(*inputs)  # eager kernels warm, as in micro.py
    fast = wrap(model)
    t0 = time.perf_counter(); fast(*inputs); times.append(time.perf_counter() - t0)
    reset()
print(json.dumps(times))
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--systems", default="terra_dyn,compile:eager")
    args = parser.parse_args(argv)
    code = CHILD.format(repo=REPO, bench=os.path.join(REPO, "benchmarks"))
    results = {}
    for label in ("mlp12", "transformer_block"):
        for system in args.systems.split(","):
            firsts, seconds = [], []
            for _ in range(args.repeats):
                out = subprocess.run([sys.executable, "-c", code, system, label], capture_output=True,
                                     text=True, timeout=600)
                if out.returncode != 0:
                    raise SystemExit(f"{system} {label} failed:\n{out.stderr[-2000:]}")
                first, second = json.loads(out.stdout.strip().splitlines()[-1])
                firsts.append(first)
                seconds.append(second)
            results[(label, system)] = (statistics.median(firsts), statistics.median(seconds))
            print(f"{label:18} {system:16} first call {results[(label, system)][0]:.3f} s   "
                  f"again on a new instance {results[(label, system)][1]:.3f} s   (median of {args.repeats})")
        if "terra_dyn" in args.systems and "compile:eager" in args.systems:
            ours, theirs = results[(label, "terra_dyn")], results[(label, "compile:eager")]
            print(f"{'':18} terra_dyn / compile:eager: {ours[0] / theirs[0]:.2f} (first), "
                  f"{ours[1] / theirs[1]:.2f} (again); target <= 0.5")


if __name__ == "__main__":
    main()
