"""Part 3 of the GPU benchmark: what a small graph costs per call, with and without CUDA graphs.

    python benchmarks/gpu/overhead.py OUT_DIR [--smoke] [--budget S]   -> OUT_DIR/overhead.json

Small graphs are all launch overhead: a transformer block at batch 1 is ~20 kernels of a few
microseconds each. Per graph, the wall time of one synchronous call (median), for: eager;
terra_dyn's Triton backend; the same replayed through CUDA graphs (terra_dyn's
"reduce-overhead": backends/cudagraphs.py); torch.compile default and
mode="reduce-overhead". Each terra_dyn result is checked against eager, and the CUDA-graph
runner is also checked for the two ways a replay can go wrong: new input values must be
seen (inputs are copied into the graph's buffers), and an output the caller still holds must
not change on the next call (outputs are cloned).
"""
import argparse
import os
import sys
import time
import traceback

SMOKE = "--smoke" in sys.argv
if SMOKE:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import torch  # noqa: E402

from common import Budget, call_us, close, import_backend, save  # noqa: E402
from benchmarks.triton_kernels import gelu_mlp as mlp, transformer_block  # noqa: E402  (after common: repo on sys.path)


def add(x, y):
    return x + y


def graphs(smoke):
    d = 32 if smoke else 512
    seq = 4 if smoke else 16
    return {
        "add_1k": (add, [(1024,), (1024,)]),
        "mlp_batch1": (mlp, [(1, d), (4 * d, d), (4 * d,), (d, 4 * d), (d,)]),
        "transformer_block_batch1": (transformer_block, [(1, seq, d), (d,), (d,), (3 * d, d), (d, d), (d,), (d,),
                                                         (4 * d, d), (d, 4 * d)]),
    }


def inputs(shapes, device, dtype):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(s, generator=g) * (1.0 if i == 0 or len(s) == 1 else 0.02)).to(device, dtype)
            for i, s in enumerate(shapes)]


def replay_is_sound(runner, fn, args):
    """New input values are seen, and an output held by the caller survives the next call."""
    first = runner(*args)
    held = first.clone()
    other = [a + 1 if i == 0 else a for i, a in enumerate(args)]
    second = runner(*other)
    return bool(torch.equal(first, held)) and close(second, fn(*other), args[0].dtype)


def run_graph(backend, name, fn, shapes, device, dtype, smoke):
    from terra_dyn.backends.cudagraphs import CudaGraphRunner
    args = inputs(shapes, device, dtype)
    gm = torch.fx.symbolic_trace(fn)
    reps = 5 if smoke else 200
    row = {"graph": name, "dtype": str(dtype).replace("torch.", ""), "shapes": [list(a.shape) for a in args]}
    with torch.no_grad():
        expected = fn(*args)
        row["eager_us"] = call_us(fn, args, reps)
        compiled = backend.compile_graph(gm, args)
        row["terra_ok"] = close(compiled(*args), expected, dtype)
        row["terra_us"] = call_us(compiled, args, reps)
        row["kernels"] = len(compiled.kernels)
        runner = CudaGraphRunner(backend.compile_graph(gm, args), notes=[])
        row["terra_cudagraphs_ok"] = close(runner(*args), expected, dtype) and replay_is_sound(runner, fn, args)
        row["terra_cudagraphs_us"] = call_us(runner, args, reps)
        row["terra_cudagraphs_notes"] = runner.notes
        if not smoke:
            import torch._dynamo as dynamo
            for mode in ("default", "reduce-overhead"):
                try:
                    dynamo.reset()
                    inductor = torch.compile(gm, mode=mode, dynamic=False)
                    for _ in range(3):
                        inductor(*args)
                    row[f"inductor_{mode}_us"] = call_us(inductor, args, reps)
                except Exception as exc:
                    row[f"inductor_{mode}_error"] = f"{type(exc).__name__}: {exc}"[:300]
    return row


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--budget", type=float, default=60.0)
    opts = parser.parse_args()
    budget = Budget(opts.budget)
    backend = import_backend()
    if opts.smoke:
        device, dtypes = "cpu", [torch.float32]
    else:
        device, dtypes = "cuda", [torch.float16, torch.float32]
        if not backend.is_available():
            save(opts.out, "overhead", {"error": backend.why_unavailable(), "rows": []})
            return
    rows = []
    for dtype in dtypes:
        for name, (fn, shapes) in graphs(opts.smoke).items():
            if budget.spent():
                rows.append({"graph": name, "dtype": str(dtype), "skipped": "time budget spent"})
                continue
            start = time.perf_counter()
            try:
                row = run_graph(backend, name, fn, shapes, device, dtype, opts.smoke)
            except Exception as exc:
                row = {"graph": name, "dtype": str(dtype), "error": f"{type(exc).__name__}: {exc}",
                       "traceback": traceback.format_exc()[-2000:]}
            row["seconds"] = time.perf_counter() - start
            rows.append(row)
            print("overhead: " + ", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                                           for k, v in row.items() if k not in ("shapes", "traceback")), flush=True)
    save(opts.out, "overhead", {"device": device, "rows": rows})


if __name__ == "__main__":
    main()
