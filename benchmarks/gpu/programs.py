"""Part 4 of the GPU benchmark: the ten training programs, eager vs terra_dyn vs torch.compile.

    python benchmarks/gpu/programs.py OUT_DIR [--smoke] [--budget S] [--config full]
        -> OUT_DIR/programs.json

Each program runs in a child of benchmarks/run.py (a crash or a hang ends only that child),
all modes interleaved step by step, losses compared with eager at every step. Modes: eager,
terra_dyn, torch.compile (Inductor). On a Python where terra_dyn's frame hook runs, the
terra_dyn mode is the product (`terra:auto`, the training step optimized); elsewhere (the
GPU machine's Python 3.12 until the frontend supports it) it is `fx:triton`: each model's
forward as a make_fx graph compiled by the Triton backend (benchmarks/fx_module.py), the
training loop's Python running as written. Programs run in order until the time budget is
spent; a child that outlives its share is stopped and then tried without Inductor, whose
cold compiles of full-size training graphs take minutes.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from common import REPO, Budget, save

ORDER = ["gpt2", "bert_cls", "music_transformer", "dcgan", "resnet50", "bert_qa", "dropblock", "sdpoint",
         "yolov3", "faster_rcnn"]


def frontend_runs_here() -> bool:
    return sys.version_info[:2] == (3, 11)


def run_child(name, modes, opts, device, timeout):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        unit = "step" if modes[1].startswith("terra") else "model"
        cmd = [sys.executable, os.path.join(REPO, "benchmarks", "run.py"), "--programs", name, "--config",
               opts.config, "--iters", str(opts.iters), "--modes", ",".join(modes), "--device", device,
               "--unit", unit, "--child-out", out]
        try:
            proc = subprocess.run(cmd, timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, cwd=REPO)
        except subprocess.TimeoutExpired:
            return None, f"timed out after {timeout:.0f} s"
        if proc.returncode == 0 and os.path.exists(out):
            with open(out) as f:
                return json.load(f), "ok"
        return None, f"exit {proc.returncode}: {proc.stdout[-600:]}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--budget", type=float, default=180.0)
    parser.add_argument("--config", default=None)
    parser.add_argument("--iters", type=int, default=4)
    parser.add_argument("--programs", default=None, help="comma-separated (default: all ten; smoke: three)")
    parser.add_argument("--per-program", type=float, default=90.0, help="seconds for one program's child")
    parser.add_argument("--no-inductor", action="store_true", help="eager and terra_dyn only")
    opts = parser.parse_args()
    budget = Budget(opts.budget)
    device = "cpu" if opts.smoke else "cuda"
    opts.config = opts.config or ("small" if opts.smoke else "full")
    terra = ("terra:auto" if frontend_runs_here() else "fx:triton") if not opts.smoke else "fx:interpreter"
    modes = ["eager", terra] + ([] if opts.smoke or opts.no_inductor else ["compile:inductor"])
    results = []
    names = opts.programs.split(",") if opts.programs else (["gpt2", "dcgan", "resnet50"] if opts.smoke else ORDER)
    for name in [p for p in names if p]:
        if budget.left() < 20:
            results.append({"program": name, "skipped": "time budget spent"})
            continue
        start = time.time()
        result, how = run_child(name, modes, opts, device, min(opts.per_program, budget.left()))
        if result is None and len(modes) > 2 and budget.left() > 20:
            first_how = how
            result, how = run_child(name, modes[:2], opts, device, min(opts.per_program, budget.left()))
            how = f"with inductor: {first_how}; without: {how}"
        if result is None:
            result = {"program": name, "error": how}
        else:
            result["how"] = how
        result["wall_s"] = time.time() - start
        results.append(result)
        print(f"programs: {name}: {how} ({result['wall_s']:.0f} s)", flush=True)
        save(opts.out, "programs", {"config": opts.config, "modes": modes, "results": results})
    save(opts.out, "programs", {"config": opts.config, "modes": modes, "results": results})


if __name__ == "__main__":
    main()
