"""Part 2 of the GPU benchmark: generated kernels against eager and Inductor, as bandwidth.

    python benchmarks/gpu/kernels.py OUT_DIR [--smoke] [--budget S] [--only softmax,...]
        -> OUT_DIR/kernels.json, OUT_DIR/kernels_src.txt (kernels below 90% of the ceiling)

Each case is one small graph (torch.fx.symbolic_trace of a function below) at one size and
dtype. The same graph runs three ways: eager, terra_dyn's Triton backend
(`compile_graph`, called directly: this part needs no frame hook, so it runs on any Python),
and torch.compile (Inductor, default mode, static shapes). Per system: GPU time of one call
(CUDA graph replay, so launch cost is not in it), achieved GB/s (bytes of every input and
output counted once) and its fraction of the copy ceiling from env.json, plus the wall
time of one synchronous call (what launch-bound sizes cost a caller). terra_dyn's entry
also has its first call (lowering, codegen, Triton compile, autotuning), the launch config
autotuning chose for each kernel, and its registers and spills.

Sizes: "small" (64K elements: launch-bound), "medium" (4M: fits in L2), "large" (64M:
several times the H200's 60 MB L2; the 90% target is on these); rows of 4096 elements.
Large cases run first, so a run that meets its time budget loses the least telling ones.
"""
import argparse
import os
import sys
import time
import traceback

SMOKE = "--smoke" in sys.argv
if SMOKE:
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported anywhere

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from common import Budget, call_us, close, device_us, import_backend, load, save, tensor_bytes  # noqa: E402
from benchmarks.triton_kernels import pointwise_chain  # noqa: E402  (a 10-op chain; row broadcast)


# -- the graphs ------------------------------------------------------------------------
def broadcast(x, row, col):
    return torch.relu((x + row) * col)


def softmax(x):
    return torch.softmax(x, -1)


def log_softmax(x):
    return torch.log_softmax(x, -1)


def layer_norm(x, w, b):
    return F.layer_norm(x, (x.shape[-1],), w, b)


def rms_norm(x, w):
    return F.rms_norm(x, (x.shape[-1],), w, 1e-6)


def sum_last(x):
    return x.sum(-1)


def mean_last(x):
    return x.mean(-1)


def var_last(x):
    return x.var(-1)


def sum_middle(x):
    return x.sum(1)


COLS = 4096
ROWS = {"small": 16, "medium": 1024, "large": 16384}
SMOKE_ROWS, SMOKE_COLS = 5, 37
DTYPES = {"small": ["float32"], "medium": ["float32", "bfloat16"], "large": ["float32", "bfloat16", "float16"]}
GRAPHS = {  # name -> (function, input shapes given (rows, cols))
    "pointwise_chain": (pointwise_chain, lambda r, c: [(r, c), (c,)]),
    "broadcast": (broadcast, lambda r, c: [(r, c), (c,), (r, 1)]),
    "softmax": (softmax, lambda r, c: [(r, c)]),
    "log_softmax": (log_softmax, lambda r, c: [(r, c)]),
    "layer_norm": (layer_norm, lambda r, c: [(r, c), (c,), (c,)]),
    "rms_norm": (rms_norm, lambda r, c: [(r, c), (c,)]),
    "sum_last": (sum_last, lambda r, c: [(r, c)]),
    "mean_last": (mean_last, lambda r, c: [(r, c)]),
    "var_last": (var_last, lambda r, c: [(r, c)]),
    "sum_middle": (sum_middle, lambda r, c: [(r * c // (512 * 128) or 1, 512 if r > 8 else r, 128)]),
}


def cases(smoke):
    if smoke:
        for name in GRAPHS:
            yield name, "smoke", "float32", SMOKE_ROWS, SMOKE_COLS
        return
    for size in ("large", "medium", "small"):
        for dtype in DTYPES[size]:
            for name in GRAPHS:
                yield name, size, dtype, ROWS[size], COLS


def make_inputs(shapes, device, dtype):
    g = torch.Generator(device="cpu").manual_seed(0)
    return [torch.randn(s, generator=g, dtype=torch.float32).to(device=device, dtype=dtype) for s in shapes]


# -- one case ------------------------------------------------------------------------
def launchers(compiled):
    """Every kernel launcher the compiled graph built, with its chosen config."""
    from terra_dyn.backends.triton.compiled_graph import GroupStep, Program
    from terra_dyn.backends.triton.launch import Launcher
    found = []
    for program in compiled.programs.values():
        if isinstance(program, Program):
            for step in program.steps:
                if isinstance(step, GroupStep):
                    found += [v for v in step.variants.values() if isinstance(v, Launcher)]
    return found


def kernel_facts(launcher):
    binary = getattr(launcher, "binary", None)
    return {"name": launcher.source.name, "config": repr(launcher.config),
            "regs": getattr(binary, "n_regs", None), "spills": getattr(binary, "n_spills", None),
            "xnumel": launcher.source.xnumel, "rnumel": launcher.source.rnumel,
            "persistent": launcher.source.persistent}


def agrees(got, expected, fn, args):
    """Equal to eager within tolerance, or, for 16-bit inputs, to the same graph computed in
    float64: eager rounds every intermediate to bf16/f16 and a fused kernel computes in fp32,
    so on a long chain the fused result can be the more accurate one and still differ."""
    dtype = args[0].dtype
    if close(got, expected, dtype):
        return True
    if dtype not in (torch.float16, torch.bfloat16):
        return False
    reference = fn(*[a.double() for a in args]).to(dtype)
    return close(got, reference, dtype)


def measure(fn, args, big):
    reps = 10 if big else 50
    us, how = device_us(fn, args, reps=reps)
    return {"device_us": us, "timed_by": how, "call_us": call_us(fn, args, reps=reps)}


def run_case(backend, name, size, dtype_name, rows, cols, device, use_inductor, ceiling):
    fn, shapes = GRAPHS[name]
    dtype = getattr(torch, dtype_name)
    args = make_inputs(shapes(rows, cols), device, dtype)
    gm = torch.fx.symbolic_trace(fn)
    row = {"case": name, "size": size, "dtype": dtype_name, "shapes": [list(a.shape) for a in args]}
    with torch.no_grad():
        expected = fn(*args)
        moved = tensor_bytes(args) + tensor_bytes(expected)
        row["bytes"] = moved
        big = moved > (1 << 26)
        systems = {"eager": {**measure(fn, args, big)}}

        start = time.perf_counter()
        compiled = backend.compile_graph(gm, args)
        got = compiled(*args)
        if device == "cuda":
            torch.cuda.synchronize()
        terra = {"first_call_s": time.perf_counter() - start, "ok": agrees(got, expected, fn, args)}
        terra.update(measure(compiled, args, big))
        terra["kernels"] = [kernel_facts(k) for k in launchers(compiled)]
        terra["notes"] = list(compiled.notes)
        systems["terra"] = terra
        row["sources"] = compiled.kernel_sources

        if use_inductor:
            try:
                import torch._dynamo as dynamo
                dynamo.reset()  # a fresh cache per case: no recompile limit, no automatic dynamic shapes
                start = time.perf_counter()
                inductor = torch.compile(gm, dynamic=False)
                got = inductor(*args)
                torch.cuda.synchronize()
                entry = {"first_call_s": time.perf_counter() - start, "ok": agrees(got, expected, fn, args)}
                entry.update(measure(inductor, args, big))
                systems["inductor"] = entry
            except Exception as exc:
                systems["inductor"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    for entry in systems.values():
        if "device_us" in entry:
            entry["gbps"] = moved / entry["device_us"] / 1e3
            entry["of_ceiling"] = entry["gbps"] / ceiling if ceiling else None
    row["systems"] = systems
    return row


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--budget", type=float, default=240.0, help="seconds for the whole part")
    parser.add_argument("--only", default="", help="comma-separated graph names")
    parser.add_argument("--sizes", default="large,medium,small")
    opts = parser.parse_args()
    budget = Budget(opts.budget)
    backend = import_backend()
    device = "cpu" if opts.smoke else "cuda"
    env = load(opts.out, "env") or {}
    ceiling = (env.get("copy") or {}).get("gbps")
    use_inductor = not opts.smoke
    if not opts.smoke and not backend.is_available():
        save(opts.out, "kernels", {"error": f"triton backend unavailable: {backend.why_unavailable()}", "rows": []})
        print(f"kernels: skipped, triton backend unavailable: {backend.why_unavailable()}")
        return
    only = [n for n in opts.only.split(",") if n]
    rows, sources = [], []
    for name, size, dtype, r, c in cases(opts.smoke):
        if only and name not in only or size not in opts.sizes.split(",") + ["smoke"]:
            continue
        if budget.spent():
            rows.append({"case": name, "size": size, "dtype": dtype, "skipped": "time budget spent"})
            continue
        try:
            row = run_case(backend, name, size, dtype, r, c, device, use_inductor, ceiling)
        except Exception as exc:  # one case failing must not lose the others
            row = {"case": name, "size": size, "dtype": dtype,
                   "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-2000:]}
        texts = row.pop("sources", [])
        terra = (row.get("systems") or {}).get("terra", {})
        if size == "large" and (terra.get("of_ceiling") or 1) < 0.9:
            sources.append(f"# {name} {size} {dtype}: {terra.get('of_ceiling', 0):.0%} of ceiling, "
                           f"kernels {terra.get('kernels')}\n" + "\n".join(texts))
        rows.append(row)
        print(row_line(row), flush=True)
    save(opts.out, "kernels", {"ceiling_gbps": ceiling, "rows": rows})
    with open(os.path.join(opts.out, "kernels_src.txt"), "w") as f:
        f.write("\n\n".join(sources))


def row_line(row):
    head = f"{row['case']:<16} {row['size']:<6} {row['dtype']:<9}"
    if "error" in row or "skipped" in row:
        return f"{head} {row.get('error') or row.get('skipped')}"[:160]
    parts = []
    for system in ("eager", "terra", "inductor"):
        e = row["systems"].get(system, {})
        if "device_us" in e:
            frac = f" {e['of_ceiling']:.0%}" if e.get("of_ceiling") else ""
            parts.append(f"{system} {e['device_us']:.1f}us {e['gbps']:.0f}GB/s{frac}")
        elif e:
            parts.append(f"{system} ERR")
    ok = row["systems"]["terra"].get("ok")
    return f"{head} {' | '.join(parts)} {'ok' if ok else 'WRONG'}"


if __name__ == "__main__":
    main()
