"""Cached-call cost of a 12-layer BERT encoder: what a call costs beyond its graph's own run.

    python benchmarks/guard_cost.py                  # terra_dyn, eager, torch.compile(backend="eager")
    python benchmarks/guard_cost.py --no-compile     # without torch.compile
    python benchmarks/guard_cost.py --profile        # which guard checks cost what

The model is `BertModel(BertConfig(num_hidden_layers=12, hidden_size=64, ...))` (the
corpus's small widths, no dropout, no pooler), called with input_ids and attention_mask.
Each system's backend is wrapped so that the graph's own run is timed inside the call:

    overhead = median(cached call) - median(graph run inside it)

for terra_dyn (backend "interpreter") and torch.compile(backend="eager") (the graph module
run as is); "guard check" is terra_dyn's cache-entry guard alone, called on the frame's
argument slots (what the hook does before it runs the rewritten code); "caches cold": the
instant call with a 16 MiB buffer written before each (what a graph run and the machine's
other work do to the caches), minus the writes alone. Medians of --rounds
rounds of --calls calls each, µs per call of this thread's CPU time (time.thread_time: the
machine is shared, and time spent waiting for a core is not the call's), one torch thread.
torch.compile is only the comparison.
"""
import argparse
import inspect
import os
import statistics
import sys
import time
import warnings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import torch  # noqa: E402


def build():
    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=12,
                                     num_attention_heads=4, max_position_embeddings=64,
                                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = transformers.BertModel(config, add_pooling_layer=False).eval()
    ids = torch.randint(3, 96, (2, 8), generator=torch.Generator().manual_seed(1))
    return model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


class GraphClock:
    """Wraps a backend: the callables it returns add their run time to `seconds`."""

    def __init__(self, backend):
        self.backend = backend
        self.seconds = 0.0

    def __call__(self, gm, example_inputs):
        compiled = self.backend(gm, example_inputs)

        def run(*args):
            t0 = time.thread_time()
            out = compiled(*args)
            self.seconds += time.thread_time() - t0
            return out
        return run


class InstantGraph:
    """Wraps a backend: after its first run, the graph returns that run's outputs at once,
    so a call costs exactly what surrounds the graph (a steadier figure than a difference)."""

    def __init__(self, backend):
        self.backend = backend

    def __call__(self, gm, example_inputs):
        compiled = self.backend(gm, example_inputs)
        outputs = []

        def run(*args):
            if not outputs:
                outputs.append(compiled(*args))
            return outputs[0]
        return run


def per_call_us(fn, calls, rounds, clock=None):
    """Medians (µs per call) of a call and of the graph time inside it."""
    whole, inside = [], []
    fn(), fn()  # another system ran in between: a recompile is not this one's steady state
    for _ in range(rounds):
        if clock is not None:
            clock.seconds = 0.0
        t0 = time.thread_time()
        for _ in range(calls):
            fn()
        whole.append((time.thread_time() - t0) / calls * 1e6)
        inside.append(clock.seconds / calls * 1e6 if clock is not None else 0.0)
    return statistics.median(whole), statistics.median(inside)


def cold_call_us(fn, calls, rounds):
    """µs per call of fn() made after writing a 16 MiB buffer: the difference of two medians."""
    buf = torch.zeros(4 << 20)
    touch, both = [], []
    for _ in range(rounds):
        t0 = time.thread_time()
        for _ in range(calls):
            buf.add_(1)
        touch.append(time.thread_time() - t0)
        t0 = time.thread_time()
        for _ in range(calls):
            buf.add_(1)
            fn()
        both.append(time.thread_time() - t0)
    return (statistics.median(both) - statistics.median(touch)) / calls * 1e6


def guard_slots(model, inputs):
    """The argument slots the hook passes BertModel.forward's guard (codegen/signature.py)."""
    from terra_dyn.codegen.signature import argument_slot_names

    forward = type(model).forward  # transformers wraps it: the wrapper's frame is translated
    bound = inspect.signature(forward, follow_wrapped=False).bind(model, **inputs)
    bound.apply_defaults()
    return [bound.arguments[n] for n in argument_slot_names(forward.__code__)]


def entry_guard(model):
    """The cache entry's guard without its callback check (the timing loop installs none)."""
    from terra_dyn import _C

    entries = _C.cache_entries(type(model).forward.__code__)
    assert len(entries) == 1, f"{len(entries)} cache entries: a recompile"
    guard = entries[0].guard
    return _C.Guard([c for c in guard.checks if c[0] != "callback"], guard.fallback), guard


def profile(guard, slots, calls):
    """Cost of each kind of C check and of the Python predicate, µs per call."""
    from terra_dyn import _C

    kinds = {}
    for c in guard.checks:
        kinds.setdefault(c[0], []).append(c)
    for kind, checks in sorted(kinds.items()):
        g = _C.Guard(checks)
        us = per_call_us(lambda: g.check(*slots), calls, 5)[0]
        print(f"  {kind:14s} {len(checks):4d} checks {us:8.2f} us")
    if guard.fallback is not None:
        fb = guard.fallback
        us = per_call_us(lambda: fb(*slots), calls, 5)[0]
        print(f"  {'predicate':14s} {len(getattr(fb, 'exprs', ())):4d} exprs  {us:8.2f} us")
        for e in getattr(fb, "exprs", ()):
            print(f"      {e[:150]}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--profile", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")

    import terra_dyn
    from terra_dyn import backends

    model, inputs = build()
    rows = {}
    with torch.no_grad():
        terra_dyn.reset()
        clock = GraphClock(backends.lookup("interpreter"))
        fast = terra_dyn.optimize(model, backend=clock)
        for _ in range(3):
            fast(**inputs)
        guard, full = entry_guard(model)
        slots = guard_slots(model, inputs)
        assert guard.check(*slots), guard.explain(*slots)
        # before torch.compile runs: it patches BertModel, whose version tag the guard holds
        guard_us = per_call_us(lambda: guard.check(*slots), args.calls * 10, args.rounds)[0]
        guard_cold_us = cold_call_us(lambda: guard.check(*slots), args.calls // 2, args.rounds)
        instant = terra_dyn.optimize(model, backend=InstantGraph(backends.lookup("interpreter")))
        systems = {"eager": (lambda: model(**inputs), None), "terra_dyn": (lambda: fast(**inputs), clock)}
        if not args.no_compile:
            eager_clock = GraphClock(lambda gm, _: gm.forward)
            compiled = torch.compile(model, backend=eager_clock)
            for _ in range(3):
                compiled(**inputs)
            systems["compile:eager"] = (lambda: compiled(**inputs), eager_clock)
        for _ in range(2):  # interleaved: the shared machine's drift hits every system alike
            for name, (fn, clk) in systems.items():
                rows.setdefault(name, []).append(per_call_us(fn, args.calls, args.rounds, clk))
        rows = {name: min(runs) for name, runs in rows.items()}  # the steadier run (its call time)
        terra_dyn.reset()
        for _ in range(3):
            instant(**inputs)
        instant_us = per_call_us(lambda: instant(**inputs), args.calls * 5, args.rounds)[0]
        cold_us = cold_call_us(lambda: instant(**inputs), args.calls // 2, args.rounds)
        compile_instant_us = None
        if not args.no_compile:
            torch._dynamo.reset()
            compiled_instant = torch.compile(model, backend=InstantGraph(lambda gm, _: gm.forward))
            compile_instant_us = per_call_us(lambda: compiled_instant(**inputs), args.calls * 5, args.rounds)[0]
        n_py = len(getattr(guard.fallback, "exprs", ())) if guard.fallback is not None else 0
        n_snap = sum(c[0] == "snapshot" for c in guard.checks)
        print(f"bert encoder, 12 layers: guard {len(full.checks)} C checks ({n_snap} snapshots), "
              f"{n_py} Python expressions")
        print(f"{'system':16s}{'call':>12s}{'graph':>12s}{'overhead':>12s}")
        for name, (whole, graph) in rows.items():
            cells = f"{whole:10.1f}us{graph:10.1f}us" + (f"{whole - graph:10.1f}us" if name != "eager" else "")
            print(f"{name:16s}{cells}")
        print(f"terra_dyn guard check alone: {guard_us:.2f} us")
        print(f"terra_dyn guard check alone, caches cold: {guard_cold_us:.1f} us")
        print(f"a call whose graph returns its outputs at once: terra_dyn {instant_us:.2f} us" +
              (f", compile:eager {compile_instant_us:.2f} us" if compile_instant_us is not None else ""))
        print(f"the same call, caches cold: terra_dyn {cold_us:.1f} us")
        if args.profile:
            profile(guard, slots, args.calls * 10)


if __name__ == "__main__":
    main()
