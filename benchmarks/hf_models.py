"""Hugging Face transformers models (tests/models/corpus.py) under terra_dyn and torch.compile.

    .venv/bin/python benchmarks/hf_models.py                       # whole corpus, all systems
    .venv/bin/python benchmarks/hf_models.py --models gpt2,bert --systems terra
    .venv/bin/python benchmarks/hf_models.py --json out.json --breaks 5
    .venv/bin/python benchmarks/hf_models.py --generate 32 --models gpt2,llama   # generate loop
    .venv/bin/python benchmarks/hf_models.py --overhead      # cached-call cost, 12-layer BERT

Per model and system, in one process: right (forward, one training step with every
gradient, greedy generate for decoders; tests/models/check.py), graphs and breaks recorded
on the first forward call, first-call seconds (with the garbage collector's share when it
ran), and steady-state forward time as a multiple
of eager's (median of process CPU time over --iters calls, after two warm-up calls; CPU time
because the machine is shared). Systems:
    terra          terra_dyn.optimize(model, backend="interpreter")
    compile_eager  torch.compile(model, backend="eager")    capture only
    inductor       torch.compile(model)                      the default compiler
torch.compile is used here only as the comparison; terra_dyn never imports torch._dynamo.
"""
import argparse
import collections
import gc
import json
import os
import statistics
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

from tests.models import check  # noqa: E402
from tests.models.corpus import BY_NAME, CORPUS  # noqa: E402

SYSTEMS = ("terra", "terra_cpu", "compile_eager", "inductor")
_TERRA_BACKENDS = {"terra": "interpreter", "terra_cpu": "cpu"}  # terra_cpu: generated C++ kernels


class System:
    """How one system wraps a model, resets its caches and reports what it captured."""

    def __init__(self, name):
        self.name = name

    def reset(self):
        if self.name in _TERRA_BACKENDS:
            import terra_dyn

            terra_dyn.reset()
        else:
            torch._dynamo.reset()
            torch._dynamo.utils.counters.clear()

    def wrap(self, model):
        if self.name in _TERRA_BACKENDS:
            import terra_dyn

            return terra_dyn.optimize(model, backend=_TERRA_BACKENDS[self.name])
        return torch.compile(model, backend="eager" if self.name == "compile_eager" else "inductor")

    def first_call(self, model, inputs):
        """Run the first call; return (seconds, graphs, breaks as [(reason, where)])."""
        if self.name in _TERRA_BACKENDS:
            from terra_dyn import report

            with report.recording() as rec:
                seconds = _cpu_seconds(lambda: model(**inputs))
            r = rec.report()
            breaks = [(b.reason, f"{report.short_path(b.filename)}:{b.lineno}") for b in r.breaks]
            breaks += [(f"fallback: {f.reason}", f"{report.short_path(f.filename)}:{f.lineno}")
                       for f in r.fallbacks]
            return seconds, len(r.graphs), breaks
        seconds = _cpu_seconds(lambda: model(**inputs))
        counters = torch._dynamo.utils.counters
        breaks = [(reason, "") for reason, n in counters["graph_break"].items() for _ in range(n)]
        return seconds, counters["stats"]["unique_graphs"], breaks


class GcClock:
    """CPU seconds the cyclic garbage collector ran inside a block (gc.callbacks): a full
    collection in a process holding many models can land in any one first call."""

    def __init__(self):
        self.seconds, self._start = 0.0, None

    def __call__(self, phase, info):
        if phase == "start":
            self._start = time.process_time()
        elif self._start is not None:
            self.seconds += time.process_time() - self._start
            self._start = None

    def __enter__(self):
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc):
        gc.callbacks.remove(self)


def _cpu_seconds(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.process_time()
        fn()
        return time.process_time() - start


def steady(model, inputs, iters):
    with torch.no_grad():
        for _ in range(2):
            _cpu_seconds(lambda: model(**inputs))
        return statistics.median(_cpu_seconds(lambda: model(**inputs)) for _ in range(iters))


def run_model(entry, systems, iters):
    model, inputs = entry.build()
    eager_s = steady(model, inputs, iters)
    row = {"model": entry.name, "family": entry.family, "eager_ms": eager_s * 1e3}
    for system in systems:
        system.reset()
        fresh, _ = entry.build()
        wrapped = system.wrap(fresh)
        try:
            with torch.no_grad(), GcClock() as gc_clock:
                first, graphs, breaks = system.first_call(wrapped, inputs)
            ratio = steady(wrapped, inputs, iters) / eager_s
        except Exception as exc:
            first, graphs, breaks, ratio = None, None, [(f"raised {type(exc).__name__}: {exc}", "")], None
            gc_clock = GcClock()
        result = check.check_model(entry, system.wrap)
        row[system.name] = {"right": result.right, "problems": result.problems, "graphs": graphs,
                            "breaks": len(breaks), "break_reasons": breaks, "first_s": first, "first_gc_s": gc_clock.seconds,
                            "x_eager": ratio}
    return row


def _fmt(cell):
    if cell is None:
        return "-"
    right = "ok" if cell["right"] else "WRONG"
    ratio = "-" if cell["x_eager"] is None else f"{cell['x_eager']:.2f}"
    first = "-" if cell["first_s"] is None else f"{cell['first_s']:.2f}s"
    if cell.get("first_gc_s", 0) >= 0.01:
        first += f" (gc {cell['first_gc_s']:.2f})"
    return f"{right} {cell['graphs']}g/{cell['breaks']}b {first} {ratio}x"


def print_table(rows, systems):
    names = [s.name for s in systems]
    print(f"{'model':<12} " + " ".join(f"{n:<38}" for n in names))
    for row in rows:
        print(f"{row['model']:<12} " + " ".join(f"{_fmt(row.get(n)):<38}" for n in names))
    for n in names:
        cells = [r[n] for r in rows if n in r]
        ratios = [c["x_eager"] for c in cells if c["x_eager"] is not None]
        one = sum(1 for c in cells if c["graphs"] == 1 and c["breaks"] == 0)
        right = sum(1 for c in cells if c["right"])
        med = f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})" if ratios else "-"
        slower = sum(1 for r in ratios if r > 1.0)
        firsts = [c["first_s"] for c in cells if c["first_s"] is not None]
        first = f"{statistics.median(firsts):.2f} s" if firsts else "-"
        print(f"{n}: right {right}/{len(cells)}, one graph {one}/{len(cells)}, x eager median {med}, "
              f"slower than eager {slower}/{len(ratios)}, first call median {first}")
    if "terra" in names and "compile_eager" in names:
        pairs = [(r["terra"]["first_s"], r["compile_eager"]["first_s"]) for r in rows]
        half = [a <= 0.5 * b for a, b in pairs if a is not None and b is not None]
        print(f"terra first call at most half of compile_eager's: {sum(half)}/{len(half)}")


def print_break_reasons(rows, system, top):
    """The most common break reasons, by how many models they affect (what to fix first)."""
    models = collections.defaultdict(set)
    counts = collections.Counter()
    for row in rows:
        for reason, where in (row.get(system) or {}).get("break_reasons", []):
            key = reason.split("\n")[0][:100]
            models[key].add(row["model"])
            counts[key] += 1
    print(f"\n{system}: break reasons by models affected")
    for key in sorted(models, key=lambda k: (-len(models[k]), -counts[k]))[:top]:
        print(f"  {len(models[key]):>2} models, {counts[key]:>4}x  {key}")
    for row in rows:
        for problem in (row.get(system) or {}).get("problems", []):
            print(f"  {row['model']}: {problem[:200]}")


def generate_loop(entry, tokens):
    """Greedy generate of `tokens` new tokens with the model's forward optimized by terra_dyn:
    translations after the second token (a warm-up generate of 2 tokens first, so that any
    translation in the measured run is one a later token needed) and ms per token vs eager."""
    import terra_dyn
    from terra_dyn import report

    terra_dyn.reset()
    model, inputs = entry.build()
    ids = _prompt(model, inputs, tokens)
    kwargs = dict(do_sample=False, pad_token_id=0, min_new_tokens=tokens)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outputs = {}
        eager_s = _cpu_seconds(lambda: outputs.setdefault("eager", model.generate(ids, max_new_tokens=tokens, **kwargs)))
        model.forward = terra_dyn.optimize(model.forward, backend="interpreter")
        try:
            model.generate(ids, max_new_tokens=2, **kwargs)
            with report.recording() as rec:
                ours_s = _cpu_seconds(lambda: outputs.setdefault("ours", model.generate(ids, max_new_tokens=tokens, **kwargs)))
        except Exception as exc:  # a wrong result: say so, go on with the next model
            print(f"{entry.name:<12} generate {tokens} tokens: raised {type(exc).__name__}: {str(exc)[:150]}")
            return
    r = rec.report()
    same = "same tokens as eager" if torch.equal(outputs["ours"], outputs["eager"]) else "TOKENS DIFFER FROM EAGER"
    print(f"{entry.name:<12} generate {tokens} tokens ({same}): translations after token 2: "
          f"{len(r.graphs)} graphs, {len(r.recompiles)} recompiles; "
          f"{ours_s / tokens * 1e3:.2f} ms/token vs eager {eager_s / tokens * 1e3:.2f} ({ours_s / eager_s:.2f}x)")
    theirs = _compiled_generate(entry, tokens, kwargs)
    if theirs is not None:
        frames, theirs_s = theirs
        print(f"{'':<12} torch.compile(backend='eager'): frames compiled after token 2: {frames}; "
              f"{theirs_s / tokens * 1e3:.2f} ms/token ({theirs_s / eager_s:.2f}x eager)")


def _prompt(model, inputs, tokens):
    """The first row of the inputs, cut so that prompt + `tokens` fit the positions."""
    limit = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    ids = inputs["input_ids"][:1]
    return ids[:, :max(1, limit - tokens)] if limit else ids


def _compiled_generate(entry, tokens, kwargs):
    """The same loop with the forward under torch.compile's capture only: (frames it
    compiled after the warm-up generate, CPU seconds), or None if it raised."""
    model, inputs = entry.build()
    ids = _prompt(model, inputs, tokens)
    torch._dynamo.reset()
    model.forward = torch.compile(model.forward, backend="eager")
    counters = torch._dynamo.utils.counters
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.generate(ids, max_new_tokens=2, **kwargs)
            before = counters["stats"]["unique_graphs"]
            seconds = _cpu_seconds(lambda: model.generate(ids, max_new_tokens=tokens, **kwargs))
    except Exception as exc:
        print(f"{entry.name:<12} torch.compile generate raised {type(exc).__name__}: {str(exc)[:150]}")
        return None
    return counters["stats"]["unique_graphs"] - before, seconds


def cached_call_overhead(iters):
    """A 12-layer BERT encoder (BertModel, the small corpus widths, no loss head) under
    terra_dyn: median wall time of a cached call against the time its graphs themselves
    take (the backend's callables, timed inside), so the difference is what the rewritten
    code, the guards and the hook cost per call. Medians over `iters` rounds of 200 calls."""
    import transformers

    import terra_dyn
    from terra_dyn import backends, report
    from tests.models.corpus import _ENC, _ids

    torch.manual_seed(0)
    config = transformers.BertConfig(**dict(_ENC, num_hidden_layers=12))
    model = transformers.BertModel(config, add_pooling_layer=False).eval()
    ids = _ids()
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    graph_seconds = []
    interpreter = backends.lookup("interpreter")

    def timed_backend(gm, example_inputs):
        compiled = interpreter(gm, example_inputs)

        def run(*args):
            t0 = time.perf_counter()
            out = compiled(*args)
            graph_seconds.append(time.perf_counter() - t0)
            return out
        return run

    terra_dyn.reset()
    fast = terra_dyn.optimize(model, backend=timed_backend)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with report.recording() as rec:
            fast(**inputs)
        rep = rec.report()
        for _ in range(20):
            fast(**inputs)
        calls, graphs, eager = [], [], []
        for _ in range(iters):
            graph_seconds.clear()
            t0 = time.perf_counter()
            for _ in range(200):
                fast(**inputs)
            calls.append((time.perf_counter() - t0) / 200)
            graphs.append(sum(graph_seconds) / 200)
            t0 = time.perf_counter()
            for _ in range(200):
                model(**inputs)
            eager.append((time.perf_counter() - t0) / 200)
    call_us, graph_us, eager_us = (statistics.median(v) * 1e6 for v in (calls, graphs, eager))
    print(f"bert, 12 layers: {rep.graph_count} graphs, {rep.break_count} breaks on the first call; "
          f"cached call {call_us:.1f} us, its graphs {graph_us:.1f} us, overhead {call_us - graph_us:.1f} us "
          f"per call; eager {eager_us:.1f} us ({call_us / eager_us:.2f}x eager)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="", help="comma-separated names (default: all)")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--breaks", type=int, default=15, help="break reasons to list per system")
    parser.add_argument("--json", default="", help="write the rows here")
    parser.add_argument("--generate", type=int, default=0, help="only the generate loop, this many tokens")
    parser.add_argument("--overhead", action="store_true",
                        help="only the cached-call overhead of a 12-layer BERT encoder")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.overhead:
        cached_call_overhead(args.iters)
        return
    entries = [BY_NAME[n] for n in args.models.split(",")] if args.models else CORPUS
    if args.generate:
        for entry in entries:
            if entry.family == "decoder":
                generate_loop(entry, args.generate)
        return
    systems = [System(n) for n in args.systems.split(",")]
    rows = []
    for entry in entries:
        rows.append(run_model(entry, systems, args.iters))
        print(entry.name, {s.name: _fmt(rows[-1].get(s.name)) for s in systems}, flush=True)
    print()
    print_table(rows, systems)
    for s in systems:
        print_break_reasons(rows, s.name, args.breaks)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1, default=str)


if __name__ == "__main__":
    main()
