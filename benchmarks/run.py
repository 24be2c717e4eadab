"""Run the training programs side by side: eager, terra_dyn, torch.compile.

    python benchmarks/run.py --programs gpt2,dcgan --config small --iters 10
    python benchmarks/run.py --modes eager,terra:interpreter --iters 3 --json /tmp/r.json

For each program, every mode gets its own copy (same seed: same initial weights, batches
and random streams) and the modes take turns, one step each, in an order that rotates every
iteration, so ratios hold on a noisy machine. Per mode it reports: the first step's time
(translation + compile), the median of the later steps, peak memory growth, graphs /
breaks / recompiles / fallbacks, and whether its losses match eager's at every step
(rtol 1e-3, atol 1e-4; the JSON has the largest relative difference).

Each program runs in its own child process (a crash in one mode, a segfault included, must
not end the run): if the child dies, each non-eager mode is re-run alone with eager, and
the ones that kill their child are reported as crashed. `--in-process` skips the children.

On CPU the default is one intra-op thread (`--threads`): on a small shared machine OpenMP
threads spinning against other processes make two-thread step times swing tenfold.
Inductor's caches are disabled unless `--warm-caches`, so first steps are cold compiles.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

RTOL, ATOL = 1e-3, 1e-4


def parse_args(argv):
    from benchmarks.programs import NAMES
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--programs", default=",".join(NAMES), help="comma-separated names (default: all)")
    p.add_argument("--config", default="small", choices=["small", "full"])
    p.add_argument("--iters", type=int, default=6, help="steps per mode (the first is the compile step)")
    p.add_argument("--modes", default=None, help="comma-separated; default depends on --device")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--json", default=None, help="output path (default benchmarks/results/run-<time>.json)")
    p.add_argument("--unit", default=None, choices=["step", "model"], help="override what is optimized")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: 1 on cpu)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--step-timeout", type=int, default=900, help="seconds before a step counts as hung")
    p.add_argument("--child-timeout", type=int, default=3600, help="seconds for one program's child")
    p.add_argument("--warm-caches", action="store_true", help="let Inductor use its on-disk caches")
    p.add_argument("--in-process", action="store_true", help="no child processes")
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                   help="wall: time.perf_counter; cpu: the process's CPU time (time.process_time, all its "
                        "threads; a machine shared with other jobs moves it less; --device cpu only)")
    p.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.programs = [n for n in args.programs.split(",") if n]
    unknown = [n for n in args.programs if n not in NAMES]
    if unknown:
        p.error(f"unknown programs {unknown}; known: {NAMES}")
    return args


# -- one program, all modes interleaved (runs inside the child) ---------------------------
def run_program(name, args, mode_names):
    import torch

    from benchmarks import programs
    from benchmarks.measure import PeakMemory, StepTimeout, median, time_limit, timed
    from benchmarks.modes import ModeUnavailable, configure_torch_compile, make_mode

    modes = [make_mode(m) for m in mode_names]
    results = {m.name: {"status": "ok", "error": None, "times": [], "losses": [], "peak_mb": None}
               for m in modes}
    n_compile = sum(m.kind == "compile" for m in modes)
    if n_compile:
        configure_torch_compile(n_compile)

    # a throwaway eager step first: lazy initialisation must not count against any mode
    warm = programs.build(name, args.config, args.device, args.seed)
    warm.run(warm.make_batch(0))
    del warm

    progs = {}
    for mode in modes:
        try:
            mode.prepare()
            prog = programs.build(name, args.config, args.device, args.seed)
            if mode.kind != "eager":
                prog.optimize(mode.wrap, args.unit)
            progs[mode.name] = prog
        except ModeUnavailable as e:
            results[mode.name].update(status="unavailable", error=str(e))
        except Exception as e:
            results[mode.name].update(status="failed", error=f"setup: {type(e).__name__}: {e}")

    active = [m for m in modes if m.name in progs]
    for i in range(args.iters):
        shift = i % max(1, len(active))
        for mode in active[shift:] + active[:shift]:
            prog, res = progs[mode.name], results[mode.name]
            if res["status"] != "ok":
                continue
            batch = prog.make_batch(i)
            try:
                with mode.counting(), PeakMemory(args.device) as mem, time_limit(args.step_timeout):
                    seconds, loss = timed(lambda: float(prog.run(batch)), args.device, args.clock)
            except (Exception, StepTimeout) as e:
                res.update(status="failed", error=f"step {i}: {type(e).__name__}: {e}"[:500],
                           traceback=traceback.format_exc()[-3000:])
                continue
            res["times"].append(seconds)
            res["losses"].append(loss)
            if mem.peak_mb is not None:
                res["peak_mb"] = max(res["peak_mb"] or 0.0, mem.peak_mb)
        del batch

    eager_losses = results.get("eager", {}).get("losses")
    for mode in modes:
        res = results[mode.name]
        times = res["times"]
        res["first_s"] = times[0] if times else None
        res["median_s"] = median(times[1:]) if len(times) > 1 else (times[0] if times else None)
        res["counts"] = {k: v for k, v in vars(mode.counts).items()}
        res["loss_match"], res["max_rel_diff"] = compare_losses(eager_losses, res["losses"])
    del progs
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return {"program": name, "config": args.config, "device": args.device, "modes": results}


def compare_losses(reference, losses):
    """(all steps within tolerance, largest relative difference); a NaN where eager has a
    number counts as an infinite difference."""
    if not reference or not losses:
        return None, None
    pairs = list(zip(reference, losses))
    diffs = [0.0 if a == b or (math.isnan(a) and math.isnan(b)) else
             math.inf if math.isnan(a) or math.isnan(b) else abs(a - b) / max(abs(a), 1e-12)
             for a, b in pairs]
    match = all(d == 0.0 or abs(a - b) <= ATOL + RTOL * abs(a) for d, (a, b) in zip(diffs, pairs))
    return match, max(diffs)


# -- children --------------------------------------------------------------------------
def child_command(args, name, modes, out):
    cmd = [sys.executable, os.path.abspath(__file__), "--programs", name, "--config", args.config,
           "--iters", str(args.iters), "--modes", ",".join(modes), "--device", args.device,
           "--seed", str(args.seed), "--step-timeout", str(args.step_timeout), "--child-out", out]
    if args.unit:
        cmd += ["--unit", args.unit]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    if args.warm_caches:
        cmd.append("--warm-caches")
    if args.clock != "wall":
        cmd += ["--clock", args.clock]
    return cmd


def run_child(args, name, modes):
    """(result dict or None, description of how the child ended)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        try:
            proc = subprocess.run(child_command(args, name, modes, out), timeout=args.child_timeout,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        except subprocess.TimeoutExpired:
            return None, f"child timed out after {args.child_timeout} s"
        if proc.returncode == 0 and os.path.exists(out):
            with open(out) as f:
                return json.load(f), "ok"
        how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
        return None, f"child crashed ({how}): {proc.stdout[-400:].strip()}"


def run_isolated(args, name, modes):
    result, how = run_child(args, name, modes)
    if result is not None:
        return result
    print(f"  {name}: {how}; re-running each mode alone to find the one that crashes", flush=True)
    merged = {"program": name, "config": args.config, "device": args.device, "modes": {}}
    for mode in modes:
        if mode == "eager":
            continue
        alone, how = run_child(args, name, ["eager", mode] if "eager" in modes else [mode])
        if alone is None:
            merged["modes"][mode] = {"status": "crashed", "error": how, "counts": {}}
            continue
        merged["modes"].setdefault("eager", alone["modes"].get("eager"))
        merged["modes"][mode] = alone["modes"][mode]
    if "eager" in modes and not merged["modes"].get("eager"):  # every other mode crashed
        alone, how = run_child(args, name, ["eager"])
        merged["modes"]["eager"] = (alone["modes"]["eager"] if alone is not None
                                    else {"status": "crashed", "error": how, "counts": {}})
    merged["modes"] = {m: merged["modes"][m] for m in modes if m in merged["modes"]}
    return merged


# -- the table -------------------------------------------------------------------------
HEADER = (f"{'program':<17} {'mode':<17} {'first s':>8} {'med ms':>8} {'x eager':>7} "
          f"{'peak MB':>8} {'graph':>5} {'brk':>4} {'reco':>4} {'fb':>3} {'loss':>5}")


def fmt(value, spec, width):
    return f"{value:{spec}}".rjust(width) if value is not None else "-".rjust(width)


def table_rows(result):
    modes = result["modes"]
    eager_median = (modes.get("eager") or {}).get("median_s")
    rows = []
    for mode, res in modes.items():
        if res.get("status") != "ok":
            why = (res.get("error") or "")[: 100 - 37 - len(res.get("status", ""))]
            rows.append(f"{result['program']:<17} {mode:<17} {res.get('status', '?').upper()}: {why}")
            continue
        c = res.get("counts", {})
        ratio = res["median_s"] / eager_median if eager_median and res.get("median_s") else None
        if mode == "eager":
            counts = f"{'-':>5} {'-':>4} {'-':>4} {'-':>3}"
        else:
            reco = c.get("recompiles")
            fb = c.get("fallbacks") if mode.startswith("terra") else None
            counts = f"{fmt(c.get('graphs'), 'd', 5)} {fmt(c.get('breaks'), 'd', 4)} {fmt(reco, 'd', 4)} {fmt(fb, 'd', 3)}"
        match = {True: "ok", False: "DIFF", None: "-"}[res.get("loss_match")] if mode != "eager" else "ref"
        if any(math.isnan(x) for x in res.get("losses", [])):
            match = "NaN"
        med = res["median_s"] * 1e3 if res.get("median_s") is not None else None
        rows.append(f"{result['program']:<17} {mode:<17} {fmt(res.get('first_s'), '.2f', 8)} {fmt(med, '.1f', 8)} "
                    f"{fmt(ratio, '.2f', 7)} {fmt(res.get('peak_mb'), '.1f', 8)} {counts} {match:>5}")
    return rows


def late_rows(result):
    """Per terra mode: its translations in steps 3 and later, then one indented line per
    code object (issue 11: a code object settles within two steps; target none)."""
    rows = []
    for mode, res in result["modes"].items():
        late = (res.get("counts") or {}).get("late_translations")
        if not mode.startswith("terra") or late is None or res.get("status") != "ok":
            continue
        rows.append(f"{result['program']:<17} {mode:<17} translations after step 2: {sum(late.values())}")
        rows += [f"    {n} x {k}" for k, n in sorted(late.items(), key=lambda kv: (-kv[1], kv[0]))]
    return rows


def print_table(results, env):
    print(f"\nconfig={results[0]['config'] if results else '?'}  " + "  ".join(f"{k}={v}" for k, v in env.items()))
    print(HEADER)
    print("-" * len(HEADER))
    for result in results:
        for row in table_rows(result):
            print(row)
    print("first s: first step (translate + compile); med ms: median of later steps; x eager: med / eager med;\n"
          "graph/brk/reco/fb: graphs, graph breaks, recompiles (torch.compile: frames translated after\n"
          f"step 1), terra_dyn fallbacks, over all steps; loss: vs eager at every step (rtol {RTOL}).")
    late = [row for result in results for row in late_rows(result)]
    if late:
        print("\nterra_dyn translations after step 2 (steps 3 on), per code object (target: none):")
        for row in late:
            print(row)


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    if not args.warm_caches:
        os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")
    import torch

    from benchmarks.measure import environment
    from benchmarks.modes import DEBUG_MODES, KNOWN_MODES, default_modes
    threads = args.threads if args.threads is not None else (1 if args.device == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    modes = args.modes.split(",") if args.modes else default_modes(args.device)
    bad = [m for m in modes if m not in KNOWN_MODES + DEBUG_MODES]
    if bad:
        sys.exit(f"unknown modes {bad}; known: {KNOWN_MODES}")
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device here")

    if args.child_out:  # inside a child: one program, write its result and leave
        result = run_program(args.programs[0], args, modes)
        with open(args.child_out, "w") as f:
            json.dump(result, f)
        return 0

    env = environment(args.device)
    results = []
    for name in args.programs:
        t0 = time.time()
        print(f"running {name} ({args.config}, {args.iters} iters, modes {','.join(modes)})", flush=True)
        try:
            result = run_program(name, args, modes) if args.in_process else run_isolated(args, name, modes)
        except Exception as e:  # eager itself failed in-process: record, keep going
            result = {"program": name, "config": args.config, "device": args.device,
                      "modes": {"eager": {"status": "failed", "error": f"{type(e).__name__}: {e}", "counts": {}}}}
        result["wall_s"] = time.time() - t0
        results.append(result)
        for row in table_rows(result) + late_rows(result):
            print("  " + row, flush=True)

    print_table(results, env)
    path = args.json or os.path.join(REPO, "benchmarks", "results", f"run-{time.strftime('%Y%m%d-%H%M%S')}.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"env": env, "args": {k: v for k, v in vars(args).items() if k != "child_out"},
                   "modes": modes, "results": results}, f, indent=1)
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
