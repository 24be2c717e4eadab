"""Micro-benchmarks of terra_dyn's fixed costs, with torch.compile's beside them, in one run.

    python benchmarks/micro.py                 # everything, CPU
    python benchmarks/micro.py --quick --no-compile

1. per-call overhead over eager of `f(x, y) = x + y` on tiny tensors (target <= 1 us);
2. guard-check cost: f cached for K input shapes; calling the entry checked last costs more
   than the one checked first by (K - 1) failed guard checks;
3. translation latency per bytecode instruction, on generated straight-line functions of
   25, 100 and 400 tensor statements (terra_dyn's report gives translate seconds when it
   records them; else first call minus an eager call);
4. first-call (translate + compile) latency of a 12-layer MLP and a transformer block, with
   torch.compile default and backend="eager" (targets: <= 1/10 and <= 1/2 of theirs).

Timings take the best of several repeats of a loop (the figure least disturbed by other
processes) and repeats of different modes alternate. Inductor's caches are disabled (cold
compiles) unless --warm-caches; each first call starts from reset caches.
"""
import argparse
import dis
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def best_per_call(fns, calls, repeats):
    """{name: best seconds per call}; repeats of the different fns alternate."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / calls)
    return best


class Systems:
    """The optimizers compared: terra_dyn (one backend) and torch.compile (default, eager)."""

    def __init__(self, args):
        self.args = args
        self.terra = None
        self.terra_error = "skipped (--no-terra)" if args.no_terra else None
        try:
            if args.no_terra:
                raise ImportError("skipped")
            import terra_dyn
            import terra_dyn.report  # noqa: F401
            self.terra = terra_dyn
        except Exception as e:
            self.terra_error = self.terra_error or f"{type(e).__name__}: {e}"
        self.backend = args.backend

    def names(self):
        names = ["terra_dyn"] if self.terra and not self.args.no_terra else []
        if not self.args.no_compile:
            names += ["compile:inductor", "compile:eager"]
        return names

    def wrap(self, name, fn, **compile_kwargs):
        import torch
        if name == "terra_dyn":
            return self.terra.optimize(fn, backend=self.backend)
        return torch.compile(fn, backend=name.split(":")[1], **compile_kwargs)

    def reset(self):
        import torch
        if self.terra and not self.args.no_terra:
            self.terra.reset()
        if not self.args.no_compile:
            torch._dynamo.reset()

    def recording(self):
        import contextlib
        if self.terra and not self.args.no_terra:
            return self.terra.report.recording()
        return contextlib.nullcontext()


def tiny(x, y):
    return x + y


def bench_overhead(systems, args):
    import torch
    x, y = torch.randn(8), torch.randn(8)
    fns, graphs = {"eager": lambda: tiny(x, y)}, {}
    for name in systems.names():
        fast = systems.wrap(name, tiny)
        with systems.recording() as rec:
            fast(x, y)
            fast(x, y)  # second call: Dynamo's automatic-dynamic settles after the first
        graphs[name] = len(rec.report().graphs) if name == "terra_dyn" else None
        fns[name] = (lambda f: lambda: f(x, y))(fast)
    best = best_per_call(fns, args.calls, args.repeats)
    return {name: {"per_call_us": t * 1e6, "overhead_us": (t - best["eager"]) * 1e6,
                   "graphs_recorded": graphs.get(name)} for name, t in best.items()}


def bench_guards(systems, args, k=8):
    """Per failed guard-check cost: spread of per-call times across K cached shapes / (K - 1)."""
    import torch
    out = {}
    inputs = [(torch.randn(n + 1), torch.randn(n + 1)) for n in range(k)]
    for name in systems.names():
        systems.reset()

        def g(x, y):
            return x * y - x

        fast = systems.wrap(name, g, **({} if name == "terra_dyn" else {"dynamic": False}))
        with systems.recording() as rec:
            for xy in inputs:
                fast(*xy)
        graphs = len(rec.report().graphs) if name == "terra_dyn" else None
        times = best_per_call({i: (lambda xy: lambda: fast(*xy))(xy) for i, xy in enumerate(inputs)},
                              args.calls, args.repeats)
        spread = max(times.values()) - min(times.values())
        out[name] = {"per_check_ns": spread / (k - 1) * 1e9, "entries": k, "graphs_recorded": graphs}
    systems.reset()
    return out


def straight_line_function(n):
    """A generated function of n tensor statements (a realistic mix of pointwise ops)."""
    ops = ["x = x * 1.01 + y", "y = torch.relu(y - x)", "x = torch.tanh(x) * 0.5", "y = y + x.sin()"]
    body = "\n".join("    " + ops[i % len(ops)] for i in range(n))
    src = f"def straight_{n}(x, y):\n{body}\n    return x + y\n"
    namespace = {}
    import torch
    namespace["torch"] = torch
    exec(compile(src, f"<straight_{n}>", "exec"), namespace)
    return namespace[f"straight_{n}"]


def bench_translation(systems, args):
    import torch
    sizes = [25, 100] if args.quick else [25, 100, 400]
    x, y = torch.randn(64), torch.randn(64)
    out = {}
    for n in sizes:
        fn = straight_line_function(n)
        instructions = len(list(dis.get_instructions(fn.__code__)))
        t0 = time.perf_counter()
        fn(x, y)
        eager = time.perf_counter() - t0
        row = {"instructions": instructions}
        for name in systems.names():
            if name == "compile:inductor":
                continue  # compile time, not translation: see the first-call table
            systems.reset()
            fast = systems.wrap(name, fn)
            with systems.recording() as rec:
                t0 = time.perf_counter()
                fast(x, y)
                first = time.perf_counter() - t0
            translate = None
            if name == "terra_dyn":
                translate = sum(g.translate_seconds for g in rec.report().graphs) or None
            seconds = translate if translate else max(first - eager, 0.0)
            row[name] = {"us_per_instruction": seconds / instructions * 1e6, "first_call_s": first,
                         "source": "report" if translate else "first call - eager",
                         "graphs_recorded": len(rec.report().graphs) if name == "terra_dyn" else None}
        out[f"straight_{n}"] = row
    systems.reset()
    return out


def mlp12(torch):
    layers = []
    for _ in range(12):
        layers += [torch.nn.Linear(256, 256), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers), (torch.randn(32, 256),)


class TransformerBlock:
    """Built lazily (torch imported late): pre-LN attention + MLP written with plain ops."""

    @staticmethod
    def build(torch, d=128, heads=4, seq=32, batch=4):
        import math
        nn, F = torch.nn, torch.nn.functional

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
                self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
                self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

            def forward(self, x):
                b, n, _ = x.shape
                q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
                q, k, v = (t.view(b, n, heads, d // heads).transpose(1, 2) for t in (q, k, v))
                att = (q @ k.transpose(-2, -1)) / math.sqrt(d // heads)
                mask = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
                att = F.softmax(att.masked_fill(mask, float("-inf")), dim=-1)
                x = x + self.proj((att @ v).transpose(1, 2).reshape(b, n, d))
                return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))

        return Block(), (torch.randn(batch, seq, d),)


def bench_first_call(systems, args):
    import torch
    out = {}
    for label, make in (("mlp12", mlp12), ("transformer_block", TransformerBlock.build)):
        torch.manual_seed(0)
        model, inputs = make(torch)
        expected = model(*inputs)
        row = {}
        for name in systems.names():
            systems.reset()
            fast = systems.wrap(name, model)
            with systems.recording() as rec:
                t0 = time.perf_counter()
                result = fast(*inputs)
                first = time.perf_counter() - t0
            steady = best_per_call({"s": lambda: fast(*inputs)}, 20, 3)["s"]
            row[name] = {"first_call_s": first, "steady_ms": steady * 1e3,
                         "graphs_recorded": len(rec.report().graphs) if name == "terra_dyn" else None,
                         "matches_eager": bool(torch.allclose(result, expected, rtol=1e-4, atol=1e-5))}
        row["eager"] = {"steady_ms": best_per_call({"s": lambda: model(*inputs)}, 20, 3)["s"] * 1e3}
        out[label] = row
    systems.reset()
    return out


def warm_up(systems):
    """Import-time costs (Inductor's modules, terra_dyn's translator) must not land on row one."""
    import torch
    for name in systems.names():
        systems.wrap(name, lambda a: a * 2 + 1)(torch.randn(3))
    systems.reset()


def no_graphs(r):
    return "   (0 graphs recorded: nothing captured)" if r.get("graphs_recorded") == 0 else ""


def report(results, systems):
    lines = []
    ov = results["overhead"]
    lines.append("1. per-call overhead, f(x, y) = x + y on 8-element tensors (target: terra_dyn <= 1 us)")
    for name, r in ov.items():
        lines.append(f"   {name:<18} {r['per_call_us']:8.2f} us/call   overhead {r['overhead_us']:8.2f} us"
                     + (f"   {'MEETS' if r['overhead_us'] <= 1.0 else 'MISSES'} target" if name == "terra_dyn" else "")
                     + no_graphs(r))
    lines.append("2. guard check, per failed entry (8 cached shapes)")
    for name, r in results["guards"].items():
        lines.append(f"   {name:<18} {r['per_check_ns']:8.0f} ns{no_graphs(r)}")
    lines.append("3. translation latency per bytecode instruction")
    for fn, row in results["translation"].items():
        cells = "  ".join(f"{n} {r['us_per_instruction']:7.1f} us ({r['source']}){no_graphs(r)}"
                          for n, r in row.items() if isinstance(r, dict))
        lines.append(f"   {fn:<13} {row['instructions']:5d} instr  {cells}")
    lines.append("4. first call (translate + compile); targets: terra_dyn <= 1/10 compile:inductor, "
                 "<= 1/2 compile:eager")
    for label, row in results["first_call"].items():
        lines.append(f"   {label:<18} eager steady {row['eager']['steady_ms']:7.3f} ms")
        terra = row.get("terra_dyn", {}).get("first_call_s")
        for name, r in row.items():
            if name == "eager":
                continue
            verdict = ""
            if terra is not None and name.startswith("compile"):
                limit = r["first_call_s"] / (10 if name == "compile:inductor" else 2)
                verdict = f"  terra/this {terra / r['first_call_s']:6.3f} " + ("MEETS" if terra <= limit else "MISSES")
            lines.append(f"     {name:<16} first {r['first_call_s']:8.3f} s  steady {r['steady_ms']:7.3f} ms  "
                         f"{'ok' if r['matches_eager'] else 'DIFF'}{verdict}{no_graphs(r)}")
    if systems.terra is None:
        lines.append(f"terra_dyn unavailable: {systems.terra_error}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="interpreter", help="terra_dyn backend (default interpreter)")
    p.add_argument("--quick", action="store_true", help="fewer calls and sizes (smoke test)")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to compile here)")
    p.add_argument("--no-terra", action="store_true", help="skip terra_dyn (torch.compile figures only)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warm-caches", action="store_true")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    args.calls, args.repeats = (200, 3) if args.quick else (2000, 7)
    if not args.warm_caches:
        os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")
    import torch
    torch.set_num_threads(args.threads)
    systems = Systems(args)
    warm_up(systems)
    results = {}
    for part, bench in (("overhead", bench_overhead), ("guards", bench_guards),
                        ("translation", bench_translation), ("first_call", bench_first_call)):
        results[part] = bench(systems, args)
    print(report(results, systems))
    from benchmarks.measure import environment
    path = args.json or os.path.join(REPO, "benchmarks", "results", f"micro-{time.strftime('%Y%m%d-%H%M%S')}.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"env": environment("cpu"), "backend": args.backend, "results": results}, f, indent=1)
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
