"""Part 1 of the GPU benchmark: the environment and the copy-bandwidth ceiling.

    python benchmarks/gpu/env.py OUT_DIR [--smoke]      -> OUT_DIR/env.json

The ceiling every bandwidth figure is a fraction of: `dst.copy_(src)` over 1 GiB, timed as
CUDA graph replays, counting bytes read plus bytes written (the same rule the kernel
figures use). On this kind of machine it measured about 4.3 TB/s before; it is measured
again in every run because clocks and drivers move it.
"""
import argparse
import platform
import subprocess
import sys

import torch

from common import device_us, import_backend, save


def nvidia_smi():
    fields = "name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem,power.limit,temperature.gpu"
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return dict(zip(fields.split(","), [v.strip() for v in out.split(",")]))


def copy_ceiling(device, smoke):
    """The fastest of three ways to copy 1 GiB: `copy_` timed as a burst of calls, and
    `copy_` and `mul(out=)` as CUDA graph replays. Inside a CUDA graph a device-to-device
    `copy_` becomes a memcpy node, which ran at about 2.8 TB/s where an SM kernel moves
    about 4.3 (first H200 run), so one way alone can understate the ceiling."""
    from common import burst_us
    numel = (1 << 16) if smoke else (1 << 28)  # 1 GiB of float32 on a GPU
    src = torch.randn(numel, device=device)
    dst = torch.empty_like(src)
    moved = 2 * src.numel() * src.element_size()
    ways = {"copy_ (graph)": device_us(lambda *_: dst.copy_(src), (src,), reps=10)[0],
            "mul out= (graph)": device_us(lambda *_: torch.mul(src, 1.0, out=dst), (src,), reps=10)[0]}
    if device == "cuda":
        ways["copy_ (burst)"] = min(burst_us(lambda: dst.copy_(src), (), 10) for _ in range(5))
    best = min(ways, key=ways.get)
    return {"bytes": moved, "us": ways[best], "gbps": moved / ways[best] / 1e3, "timed_by": best,
            "all_gbps": {k: moved / v / 1e3 for k, v in ways.items()}}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--smoke", action="store_true")
    opts = parser.parse_args()
    import triton
    backend = import_backend()
    env = {
        "smoke": opts.smoke,
        "python": sys.version.split()[0], "platform": platform.platform(),
        "torch": torch.__version__, "triton": triton.__version__, "cuda": torch.version.cuda,
        "triton_backend_available": backend.is_available(),
        "why_unavailable": backend.why_unavailable(),
    }
    device = "cpu"
    if torch.cuda.is_available() and not opts.smoke:
        device = "cuda"
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, capability=".".join(map(str, torch.cuda.get_device_capability(0))),
                   sms=props.multi_processor_count, memory_gib=round(props.total_memory / 2**30, 1),
                   l2_mib=round(getattr(props, "L2_cache_size", 0) / 2**20, 1), nvidia_smi=nvidia_smi())
    env["copy"] = copy_ceiling(device, opts.smoke)
    save(opts.out, "env", env)
    print(f"env: {env.get('gpu', 'CPU (smoke)')}; torch {env['torch']}, triton {env['triton']}, "
          f"python {env['python']}; copy ceiling {env['copy']['gbps']:.0f} GB/s ({env['copy']['timed_by']})")


if __name__ == "__main__":
    main()
