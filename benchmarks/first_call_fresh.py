"""Time to first result in a fresh process: importing the system plus the first call of a
freshly built model, each system in its own process (issue 11, part 4).

    python benchmarks/first_call_fresh.py [--repeats 3] [--models mlp12,transformer_block,gpt2_tiny] [--clock cpu]

Each child imports torch (and transformers for gpt2_tiny), builds the model and its inputs
and runs them once eagerly (eager kernels warm, torch's own lazy imports done: common to all
systems), then times `import <system>; wrap(model); model(*inputs)`: the system's imports,
its translation and compile, and the call. Nothing warms the system before: what a user
waits for after starting a script. It also says which heavy modules the system imported.
Systems: terra_dyn (backend="interpreter") and torch.compile(backend="eager") (capture only).
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
torch.manual_seed(0)
if label == "gpt2_tiny":
    import transformers
    transformers.logging.set_verbosity_error()
    config = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=256, n_positions=64)
    net = transformers.GPT2LMHeadModel(config).eval()
    model, inputs = (lambda ids: net(ids).logits), (torch.randint(0, 256, (2, 16)),)
else:
    model, inputs = (micro.mlp12 if label == "mlp12" else micro.TransformerBlock.build)(torch)
expected = model(*inputs)
heavy = ("torch._dynamo", "torch._inductor", "sympy")
before = [m for m in heavy if m in sys.modules]
t0 = {clock}()
if system == "terra_dyn":
    import terra_dyn
    fast = terra_dyn.optimize(model, backend="interpreter")
else:
    fast = torch.compile(model, backend=system.split(":")[1])
out = fast(*inputs)
seconds = {clock}() - t0
assert torch.allclose(out, expected, atol=1e-5), "wrong result"
print(json.dumps([seconds, [m for m in heavy if m in sys.modules and m not in before]]))
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="mlp12,transformer_block,gpt2_tiny")
    parser.add_argument("--systems", default="terra_dyn,compile:eager")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: the child's process CPU time (the machine is shared)")
    args = parser.parse_args(argv)
    clock = "time.process_time" if args.clock == "cpu" else "time.perf_counter"
    code = CHILD.format(repo=REPO, bench=os.path.join(REPO, "benchmarks"), clock=clock)
    for label in args.models.split(","):
        results = {}
        for system in args.systems.split(","):
            times, imported = [], set()
            for _ in range(args.repeats):
                out = subprocess.run([sys.executable, "-c", code, system, label], capture_output=True,
                                     text=True, timeout=600, env={**os.environ, "TERRA_DYN": ""})
                if out.returncode != 0:
                    raise SystemExit(f"{system} {label} failed:\n{out.stderr[-2000:]}")
                seconds, heavy = json.loads(out.stdout.strip().splitlines()[-1])
                times.append(seconds)
                imported.update(heavy)
            results[system] = statistics.median(times)
            print(f"{label:18} {system:14} import + first call {results[system]:.3f} s  (median of "
                  f"{args.repeats})  imported: {', '.join(sorted(imported)) or 'none of dynamo/inductor/sympy'}",
                  flush=True)
        if "terra_dyn" in results and "compile:eager" in results:
            print(f"{'':18} terra_dyn / compile:eager: {results['terra_dyn'] / results['compile:eager']:.2f}"
                  f"  (target <= 0.5)")


if __name__ == "__main__":
    main()
