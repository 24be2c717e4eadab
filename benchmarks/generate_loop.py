"""A greedy generation loop of a small decoder, from a cold start: eager, terra_dyn and torch.compile.

    .venv/bin/python benchmarks/generate_loop.py --models mistral,gemma2 --tokens 64
    .venv/bin/python benchmarks/generate_loop.py --systems eager,terra,compile_eager,inductor

Each (model, system) runs in a fresh process: build the model (tests/models/corpus.py), import
what the system's first translation imports (timed apart: sympy and torch._dynamo, which a
ShapeEnv and torch.compile both pull in, once per process), one eager warm-up generate of 2
tokens (transformers' own first-call costs), then wrap `model.forward` and run two greedy
generates of --tokens new tokens from a --prompt-token prompt (the corpus' positions are 64:
a one-token prompt leaves room for 63 more). Printed per system, CPU time of the process
(the machine is shared):
    total     the first generate, translations or compilations included
    tokens    its forward calls that translated (terra) or compiled a frame (torch.compile)
    steady    the second generate, ms per token (every translation cached)
    most      the most translations of one code object (terra)
and the generated tokens and every step's logits equal to eager's or not. torch.compile runs only as the comparison
(terra_dyn never imports torch._dynamo itself).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

SYSTEMS = ("eager", "terra", "compile_eager")


def one(model_name, system, logits_path, tokens, prompt):
    """Runs in the child process: a dict of figures for one model under one system."""
    import torch

    torch.set_num_threads(1)
    from tests.models.corpus import BY_NAME

    t0 = time.process_time()
    import sympy  # noqa: F401
    import torch._dynamo  # noqa: F401  (a ShapeEnv imports it: torch.fx.experimental.validator)
    imports = time.process_time() - t0
    model, inputs = BY_NAME[model_name].build()
    ids = inputs["input_ids"][:1, :prompt]
    kwargs = dict(do_sample=False, pad_token_id=0, min_new_tokens=tokens, max_new_tokens=tokens,
                  output_logits=True, return_dict_in_generate=True)
    warnings.simplefilter("ignore")
    with torch.no_grad():
        model.generate(ids, max_new_tokens=2, do_sample=False, pad_token_id=0)
        forward, events, per_code = _wrap(model, system)
        calls = []

        def timed(*args, **kw):
            before = events()
            start = time.process_time()
            out = forward(*args, **kw)
            calls.append((time.process_time() - start, events() - before))
            return out

        model.forward = timed
        start = time.process_time()
        first = model.generate(ids, **kwargs)
        total = time.process_time() - start
        cold = list(calls)
        calls.clear()
        start = time.process_time()
        second = model.generate(ids, **kwargs)
        steady = time.process_time() - start
    logits = torch.stack(first.logits)  # (tokens, batch, vocab): each step's logits
    torch.save(logits, logits_path)
    return {"model": model_name, "system": system, "imports_s": imports, "total_s": total,
            "steady_ms_per_token": steady / tokens * 1e3, "tokens": first.sequences[0, ids.shape[1]:].tolist(),
            "translating_calls": [i for i, (_, n) in enumerate(cold) if n],
            "translations": sum(n for _, n in cold), "after_token_2": sum(n for _, n in cold[2:]),
            "slowest_call_ms": max(s for s, _ in cold) * 1e3,
            "median_call_ms": statistics.median(s for s, _ in cold) * 1e3,
            "most_per_code": per_code(), "same_twice": torch.equal(first.sequences, second.sequences)
            and torch.equal(logits, torch.stack(second.logits))}


def _most_per_code(names):
    """The most translations (or compiled frames) of one code object, and its name."""
    counts = {}
    for key in names:
        counts[key] = counts.get(key, 0) + 1
    return max(((n, f"{k[0]} {os.path.basename(k[1])}:{k[2]}") for k, n in counts.items()), default=(0, ""))


def _wrap(model, system):
    """(the forward to call, a function counting translations / compiled frames so far)."""
    if system == "eager":
        return model.forward, lambda: 0, lambda: None
    if system == "terra":
        import terra_dyn
        from terra_dyn import report

        def per_code():
            return _most_per_code((t.code_name, t.filename, t.lineno) for t in report.global_report().translations)

        return (terra_dyn.optimize(model.forward, backend="interpreter"),
                lambda: len(report.global_report().translations), per_code)
    import torch

    counters = torch._dynamo.utils.counters
    backend = "eager" if system == "compile_eager" else "inductor"
    compiled = torch.compile(model.forward, backend=backend)
    return compiled, lambda: counters["stats"]["unique_graphs"], lambda: None  # per code: not counted


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mistral,gemma2")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--prompt", type=int, default=1, help="prompt tokens (corpus positions: 64 in all)")
    parser.add_argument("--json", default="")
    parser.add_argument("--one", nargs=3, metavar=("MODEL", "SYSTEM", "LOGITS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(one(*args.one, args.tokens, args.prompt)))
        return
    rows = []
    scratch = tempfile.mkdtemp(prefix="generate_loop_")
    for name in args.models.split(","):
        results = {}
        for system in args.systems.split(","):
            logits = os.path.join(scratch, f"{name}_{system}.pt")
            cmd = [sys.executable, os.path.abspath(__file__), "--one", name, system, logits,
                   "--tokens", str(args.tokens), "--prompt", str(args.prompt)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if not line:
                print(f"{name:<10} {system:<14} failed: {out.stderr.strip().splitlines()[-1:] or out.returncode}")
                continue
            results[system] = json.loads(line[0][7:])
        _compare_logits(results, scratch, name)
        _print(name, results, args.tokens)
        rows += results.values()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


def _compare_logits(results, scratch, name):
    """Each system's logits at every generated token against eager's: the largest difference."""
    import torch

    if "eager" not in results:
        return
    eager = torch.load(os.path.join(scratch, f"{name}_eager.pt"))
    for system, r in results.items():
        got = torch.load(os.path.join(scratch, f"{name}_{system}.pt"))
        r["logits_equal"] = got.shape == eager.shape and torch.equal(got, eager)
        r["logits_max_diff"] = (got - eager).abs().max().item() if got.shape == eager.shape else float("inf")


def _print(name, results, tokens):
    eager = results.get("eager")
    for system, r in results.items():
        same = "" if eager is None else ("same tokens" if r["tokens"] == eager["tokens"] else "TOKENS DIFFER")
        ratio = "" if eager is None else (f" ({r['total_s'] / eager['total_s']:.2f}x eager;"
                                          f" steady {r['steady_ms_per_token'] / eager['steady_ms_per_token']:.2f}x)")
        print(f"{name:<10} {system:<14} total {r['total_s'] * 1e3:7.0f} ms for {tokens} tokens, "
              f"steady {r['steady_ms_per_token']:6.2f} ms/token{ratio}; translations {r['translations']} "
              f"(after token 2: {r['after_token_2']}) at calls {r['translating_calls']}, slowest call "
              f"{r['slowest_call_ms']:.0f} ms;{_per_code_text(r)} imports {r['imports_s'] * 1e3:.0f} ms; {same}; logits {_logits_text(r)}", flush=True)


def _per_code_text(r):
    most = r.get("most_per_code")
    return "" if not most else f" most for one code object {most[0]} ({most[1]});"


def _logits_text(r):
    if "logits_equal" not in r:
        return "not compared"
    return "equal" if r["logits_equal"] else f"DIFFER by up to {r['logits_max_diff']:.3g}"


if __name__ == "__main__":
    main()
