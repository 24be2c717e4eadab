"""Triton backend kernels on a GPU: eager vs terra_dyn (backend="triton") vs torch.compile.

    python benchmarks/triton_kernels.py                  # GPU: all workloads, one table
    python benchmarks/triton_kernels.py --only softmax,layer_norm --reps 200
    python benchmarks/triton_kernels.py --smoke          # CPU, TRITON_INTERPRET=1, tiny sizes

Workloads: a chain of 10 pointwise ops, softmax, layer norm, a GELU MLP block and a small
transformer block (attention + layer norms + MLP). Graphs are built with
torch.fx.symbolic_trace and handed to terra_dyn.backends.triton.compile_graph directly, so
this runs without terra_dyn's 3.11 frame hook (Python 3.12, torch 2.11, triton 3.6 on the
GPU machine). Each mode is timed with CUDA events: median of --reps calls after warm-up.
For the memory-bound workloads the table also shows achieved bandwidth (bytes read +
written once / time) as a fraction of the device's peak; "1st s" is terra_dyn's first call
(lowering, code generation, Triton compile, autotuning).

--smoke runs every workload on CPU tensors through Triton's interpreter and only checks
that results match eager: its times say nothing about GPUs. GPU figures need a GPU.
"""
import argparse
import math
import os
import statistics
import sys
import time

SMOKE = "--smoke" in sys.argv
if SMOKE:
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported anywhere

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def import_backend():
    from benchmarks.gpu.common import import_backend as shared
    return shared()


# -- workloads: (function, input maker(device, dtype, smoke), bytes moved or None) ----------

def pointwise_chain(x, y):
    z = x * y + 1.0
    z = torch.sin(z) - y
    z = torch.exp(z * 0.5)
    z = torch.where(z > 1.0, z, -z)
    z = torch.sigmoid(z) / 3.0
    return torch.relu(z - 0.1)


def softmax(x):
    return torch.softmax(x, -1)


def layer_norm(x, w, b):
    return F.layer_norm(x, (x.shape[-1],), w, b)


def gelu_mlp(x, w1, b1, w2, b2):
    return F.linear(F.gelu(F.linear(x, w1, b1)), w2, b2)


def transformer_block(x, ln1_w, ln1_b, qkv_w, proj_w, ln2_w, ln2_b, fc1_w, fc2_w):
    batch, seq, dim = x.shape
    heads = 8
    h = F.layer_norm(x, (dim,), ln1_w, ln1_b)
    q, k, v = F.linear(h, qkv_w).split(dim, dim=-1)
    q = q.view(batch, seq, heads, dim // heads).transpose(1, 2)
    k = k.view(batch, seq, heads, dim // heads).transpose(1, 2)
    v = v.view(batch, seq, heads, dim // heads).transpose(1, 2)
    att = torch.softmax(q @ k.transpose(-2, -1) * (1.0 / math.sqrt(dim // heads)), -1)
    y = (att @ v).transpose(1, 2).reshape(batch, seq, dim)
    x = x + F.linear(y, proj_w)
    h = F.layer_norm(x, (dim,), ln2_w, ln2_b)
    return x + F.linear(F.gelu(F.linear(h, fc1_w)), fc2_w)


def _inputs(shapes, device, dtype):
    return [torch.randn(s, device=device, dtype=dtype) * (0.02 if len(s) == 2 and i > 0 else 1.0)
            for i, s in enumerate(shapes)]


def workloads(smoke):
    rows, cols = (37, 129) if smoke else (8192, 4096)
    d, hidden, tokens = (16, 64, 24) if smoke else (1024, 4096, 8192)
    batch, seq, dim = (2, 8, 32) if smoke else (8, 512, 512)
    return {
        "pointwise_chain": (pointwise_chain, [(rows, cols), (cols,)], torch.float32, True),
        "softmax": (softmax, [(rows, cols)], torch.float32, True),
        "softmax_fp16": (softmax, [(rows, cols)], torch.float16, True),
        "layer_norm": (layer_norm, [(rows, cols), (cols,), (cols,)], torch.float32, True),
        "gelu_mlp": (gelu_mlp, [(tokens, d), (hidden, d), (hidden,), (d, hidden), (d,)], torch.float16, False),
        "transformer_block": (transformer_block, [(batch, seq, dim), (dim,), (dim,), (3 * dim, dim), (dim, dim),
                                                  (dim,), (dim,), (4 * dim, dim), (dim, 4 * dim)], torch.float16, False),
    }


# -- timing ----------------------------------------------------------------------------

def median_ms(fn, args, reps, device):
    for _ in range(3):
        fn(*args)
    if device == "cuda":
        torch.cuda.synchronize()
        times = []
        for _ in range(reps):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn(*args)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        return statistics.median(times)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn(*args)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


PEAK_GBS = {"H100 SXM": 3350, "H100 PCIe": 2000, "H100 NVL": 3900, "H100": 3350, "H200": 4800, "A100": 2039,
            "L4": 300, "A10": 600}


def peak_bandwidth_gbs():
    props = torch.cuda.get_device_properties(0)
    clock_khz, bus_bits = getattr(props, "memory_clock_rate", 0), getattr(props, "memory_bus_width", 0)
    if clock_khz and bus_bits:
        return 2 * clock_khz * 1e3 * bus_bits / 8 / 1e9, "from memory clock and bus width"
    for name, gbs in PEAK_GBS.items():
        if name in props.name:
            return gbs, f"datasheet figure for {name}"
    return None, "unknown device"


def bytes_moved(args, out):
    outs = out if isinstance(out, (tuple, list)) else [out]
    return sum(t.numel() * t.element_size() for t in list(args) + list(outs))


def _close(a, b, dtype):
    tol = 2e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-4
    return torch.allclose(a.float(), b.float(), atol=tol, rtol=tol)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="CPU + TRITON_INTERPRET=1, tiny sizes, no GPU figures")
    parser.add_argument("--only", default="", help="comma-separated workload names")
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--no-torch-compile", action="store_true")
    parser.add_argument("--show-kernels", action="store_true", help="print generated Triton source")
    opts = parser.parse_args()

    backend = import_backend()
    device = "cpu" if opts.smoke else "cuda"
    if not opts.smoke and not backend.is_available():
        print(f"terra_dyn triton backend unavailable: {backend.why_unavailable()}")
        print("GPU figures need a GPU; run with --smoke to check the benchmark on CPU (interpreter).")
        return 1
    reps = 3 if opts.smoke else opts.reps
    use_compile = not opts.smoke and not opts.no_torch_compile
    peak, peak_src = (None, "") if opts.smoke else peak_bandwidth_gbs()
    if opts.smoke:
        print("SMOKE MODE: CPU tensors, Triton interpreter, tiny sizes. Times are NOT GPU figures; "
              "GPU figures need a GPU.")
    else:
        print(f"device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; peak bandwidth "
              f"{peak and round(peak)} GB/s ({peak_src})")
    header = f"{'workload':<18} {'eager ms':>9} {'terra ms':>9} {'compile ms':>10} {'eager/terra':>11} " \
             f"{'compile/terra':>13} {'terra GB/s':>10} {'% peak':>7} {'kernels':>7} {'1st s':>8}  ok"
    print(header)
    print("-" * len(header))
    selected = [w for w in opts.only.split(",") if w]
    failures = 0
    for name, (fn, shapes, dtype, memory_bound) in workloads(opts.smoke).items():
        if selected and name not in selected:
            continue
        torch.manual_seed(0)
        args = _inputs(shapes, device, dtype)
        gm = torch.fx.symbolic_trace(fn)
        with torch.no_grad():
            expected = fn(*args)
            start = time.perf_counter()
            compiled = backend.compile_graph(gm, args)
            first = compiled(*args)
            if device == "cuda":
                torch.cuda.synchronize()
            first_call_s = time.perf_counter() - start  # lowering, codegen, compile, autotune
            ok = _close(first, expected, dtype)
            eager_ms = median_ms(fn, args, reps, device)
            terra_ms = median_ms(compiled, args, reps, device)
            compile_ms = float("nan")
            if use_compile:
                try:
                    inductor = torch.compile(fn)
                    compile_ms = median_ms(inductor, args, reps, device)
                except Exception as exc:  # report and keep going
                    print(f"  torch.compile failed on {name}: {type(exc).__name__}: {exc}")
        failures += not ok
        gbs = bytes_moved(args, expected) / (terra_ms * 1e-3) / 1e9 if memory_bound else float("nan")
        frac = f"{100 * gbs / peak:6.1f}%" if peak and memory_bound else f"{'-':>7}"
        print(f"{name:<18} {eager_ms:9.3f} {terra_ms:9.3f} {compile_ms:10.3f} {eager_ms / terra_ms:11.2f} "
              f"{compile_ms / terra_ms:13.2f} {gbs:10.1f} {frac} {len(compiled.kernels):7d} {first_call_s:8.2f}"
              f"  {'yes' if ok else 'NO'}")
        for note in compiled.notes:
            print(f"  note: {note}")
        if opts.show_kernels:
            for text in compiled.kernel_sources:
                print(text)
    if opts.smoke:
        print("smoke run done: results checked against eager; GPU figures need a GPU.")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
