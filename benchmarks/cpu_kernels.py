"""CPU kernels: eager vs terra_dyn (backend="cpu") vs torch.compile (inductor), one run.

    python benchmarks/cpu_kernels.py                    # everything (a few minutes)
    python benchmarks/cpu_kernels.py --only chain,softmax --sizes 1048576
    python benchmarks/cpu_kernels.py --smoke            # tiny sizes, checks results only
    python benchmarks/cpu_kernels.py --threads 1        # steadier on a shared machine
    python benchmarks/cpu_kernels.py --clock cpu        # process CPU time (a loaded machine)

Workloads: a GELU-like chain of pointwise ops, softmax and layer norm over rows of 1024
(sizes are total elements, 1k..16M); a small MLP and a transformer block at batch 1 and 64,
inference (no_grad) and a training step (forward, loss, backward). terra_dyn runs through
its frontend (terra_dyn.optimize), as a user would; inductor through torch.compile with
dynamic=False. Times are medians of repeated calls after warm-up, the three modes taking
turns call by call: per-call wall time (time.perf_counter), or with `--clock cpu` the
process's CPU time (time.process_time: all its threads; on a machine shared with other
jobs, time spent waiting for a core is not counted, so the figures move less). "1st call" rows time the first call of a fresh function with cold caches
for both compilers (a new kernel cache directory each); backend="cpu" runs that call eagerly
while g++ builds its kernels in the background, and "+ kernels built" times the first call
plus the wait for that build (the latency until kernels run, against inductor's first call). terra_dyn lowers every graph at its
first call here (CpuCompiledGraph.PAYBACK = 0): by default backend="cpu" runs a graph
eagerly until its eager time pays for the lowering, and this benchmark measures kernels.
"""
import argparse
import math
import os
import statistics
import sys
import tempfile
import time

_COLD = tempfile.mkdtemp(prefix="cpu_kernels_bench_")
os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(_COLD, "inductor")  # before torch imports inductor
if "--clock=cpu" in sys.argv or "--clock" in sys.argv and sys.argv[sys.argv.index("--clock") + 1:][:1] == ["cpu"]:
    # the CPU clock counts compiler processes only once waited for: inductor compiles in
    # waited g++ processes then, not in a pool of workers that outlive the call
    os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = "1"

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import terra_dyn  # noqa: E402
import terra_dyn.config as config  # noqa: E402

config.cache_dir = os.path.join(_COLD, "terra_dyn")
from terra_dyn.backends.cpu.compiled_graph import CpuCompiledGraph  # noqa: E402
from terra_dyn.backends.cpu import wait_for_kernels  # noqa: E402

CpuCompiledGraph.PAYBACK = 0.0  # kernels from the first call (module docstring)

SIZES = [1 << 10, 1 << 14, 1 << 18, 1 << 20, 1 << 22, 1 << 24]
ROW = 1024
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]  # --clock


def first_call_clock():
    """The clock for first calls: with --clock cpu, the process's CPU time plus that of its
    finished child processes (g++ for both compilers; 10 ms resolution, fine for these)."""
    if clock is time.perf_counter:
        return clock()
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def chain(x):
    # the "gelu-like" chain: eager runs 9 ops, each a pass over memory
    y = x * 0.5 * (1.0 + torch.tanh(0.7978845608 * (x + 0.044715 * x * x * x)))
    return y * torch.sigmoid(x) + 1.0


def softmax(x):
    return torch.softmax(x, -1)


def layer_norm(x, w, b):
    return F.layer_norm(x, (x.shape[-1],), w, b)


class MLP(nn.Module):
    def __init__(self, dim=256, hidden=1024, out=10):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(dim, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, out)

    def forward(self, x):
        return self.fc3(F.gelu(self.fc2(F.gelu(self.fc1(x)))))


class Block(nn.Module):
    def __init__(self, dim=256, heads=4):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
        batch, seq, dim = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(dim, dim=-1)
        q, k, v = [t.view(batch, seq, self.heads, dim // self.heads).transpose(1, 2) for t in (q, k, v)]
        att = torch.softmax(q @ k.transpose(-2, -1) * (1.0 / math.sqrt(dim // self.heads)), -1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(batch, seq, dim))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


def median_ms(fns: dict, budget_s=1.0, min_reps=7, max_reps=300) -> dict:
    """Median ms per call of each function, the modes taking turns call by call so that
    load from other processes on a shared machine hits every mode alike."""
    for fn in fns.values():
        for _ in range(2):
            fn()
    wait_for_kernels()  # backend="cpu" builds kernels in the background: time the kernels
    for fn in fns.values():
        fn()
    for _ in range(2 * CpuCompiledGraph.TRIAL_CALLS):
        # backend="cpu" then times its kernels against the graph module, a call each in
        # turn, and keeps the faster: time what it kept, not the trial's alternation
        fns["terra_dyn"]()
    times = {name: [] for name in fns}
    start = clock()
    while min(map(len, times.values())) < min_reps or (
            len(times["eager"]) < max_reps and clock() - start < budget_s * len(fns)):
        for name, fn in fns.items():
            t = clock()
            fn()
            times[name].append((clock() - t) * 1e3)
    return {name: statistics.median(ts) for name, ts in times.items()}


def compilers(fn):
    return {"eager": fn, "terra_dyn": terra_dyn.optimize(fn, backend="cpu"),
            "inductor": torch.compile(fn, dynamic=False)}


def check(results, what):
    ref = results["eager"]
    for name, out in results.items():
        outs, refs = (out, ref) if isinstance(out, (tuple, list)) else ((out,), (ref,))
        for o, r in zip(outs, refs):
            if not torch.allclose(o, r, atol=1e-4, rtol=1e-4):
                raise SystemExit(f"{what}: {name} differs from eager by {(o - r).abs().max().item()}")


def kernel_rows(names, sizes, smoke):
    rows = []
    for name in names:
        fn = {"chain": chain, "softmax": softmax, "layer_norm": layer_norm}[name]
        modes = compilers(fn)
        for size in sizes:
            x = torch.randn(max(size // ROW, 1), min(size, ROW))
            args = [x] + ([torch.randn(x.shape[-1]), torch.randn(x.shape[-1])] if name == "layer_norm" else [])
            check({m: f(*args) for m, f in modes.items()}, f"{name} {size}")
            if smoke:
                continue
            rows.append((f"{name} {size:>9,}", median_ms({m: (lambda f=f: f(*args)) for m, f in modes.items()})))
    return rows


def model_rows(smoke):
    rows = []
    torch.manual_seed(0)
    for label, model, shape in (("mlp", MLP(), lambda b: (b, 256)), ("block", Block(), lambda b: (b, 64, 256))):
        for batch in ((1,) if smoke else (1, 64)):
            x = torch.randn(shape(batch))
            modes = compilers(model)
            with torch.no_grad():
                check({m: f(x) for m, f in modes.items()}, f"{label} b{batch}")
                if not smoke:
                    rows.append((f"{label} b{batch} infer", median_ms({m: (lambda f=f: f(x)) for m, f in modes.items()})))

            def train_step(f):
                def step():
                    model.zero_grad(set_to_none=True)
                    f(x).square().mean().backward()
                return step
            if not smoke:
                rows.append((f"{label} b{batch} train", median_ms({m: train_step(f) for m, f in modes.items()})))
            else:
                for f in modes.values():
                    train_step(f)()
    return rows


def first_call_rows():
    """Cold first call (fresh function, fresh caches): capture + lowering + codegen + compile
    (with --clock cpu, the compilers' g++ processes included)."""
    rows = []
    x = torch.randn(1024, 1024)
    for label, fn, args in (("chain", lambda x: chain(x) * 1.5, (x,)), ("layer_norm", lambda x, w, b: layer_norm(x, w, b) + 1,
                                                                     (x, torch.randn(1024), torch.randn(1024)))):
        times = {"eager": 0.0}
        for mode, make in (("terra_dyn", lambda f: terra_dyn.optimize(f, backend="cpu")),
                           ("inductor", lambda f: torch.compile(f, dynamic=False))):
            f = make(fn)
            t = first_call_clock()
            f(*args)
            times[mode] = (first_call_clock() - t) * 1e3
            if mode == "terra_dyn":  # the first call ran eagerly while g++ built the kernels
                wait_for_kernels()
                built = dict(times, terra_dyn=(first_call_clock() - t) * 1e3)
        rows.append((f"1st call {label} 1M", times))
        rows.append(("  + kernels built", dict(built, inductor=times["inductor"])))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="chain,softmax,layer_norm,models,first_call")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall: time.perf_counter; cpu: the process's CPU time (time.process_time)")
    opts = parser.parse_args()
    global clock
    clock = CLOCKS[opts.clock]
    if opts.threads:
        torch.set_num_threads(opts.threads)
    only = opts.only.split(",")
    sizes = [int(s) for s in opts.sizes.split(",")] if not opts.smoke else [1 << 10, 1 << 12]
    rows = kernel_rows([n for n in ("chain", "softmax", "layer_norm") if n in only], sizes, opts.smoke)
    if "models" in only:
        rows += model_rows(opts.smoke)
    if "first_call" in only and not opts.smoke:
        rows += first_call_rows()
    if opts.smoke:
        print("smoke: all modes match eager")
        return
    print(f"threads={torch.get_num_threads()} torch={torch.__version__} clock={opts.clock}  "
          "(ms, median; speed-up vs eager)")
    print(f"{'workload':<24} {'eager':>9} {'terra_dyn':>9} {'inductor':>9} {'td/eager':>9} {'td/ind':>7}")
    for name, t in rows:
        ratio = f"{t['eager'] / t['terra_dyn']:>8.2f}x" if t["eager"] else f"{'':>9}"
        print(f"{name:<24} {t['eager']:>9.3f} {t['terra_dyn']:>9.3f} {t['inductor']:>9.3f} {ratio} "
              f"{t['inductor'] / t['terra_dyn']:>6.2f}x")


if __name__ == "__main__":
    main()
