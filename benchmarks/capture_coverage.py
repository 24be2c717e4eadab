"""Capture coverage, side by side: how many programs terra_dyn and torch.compile (TorchDynamo
with an eager, graph-counting backend, fullgraph=True) each capture whole, on the same inputs.

    suites: corpus   (tests/translate/corpus.py, the entries that can be one graph per frame)
            op_db    (tests/translate/db_samples.op_cases: CPU float32 samples, 3 per op)
            module_db(tests/translate/db_samples.module_cases: 3 per module, training mode)
    per sample, for each system:  eager run  vs  optimized run, first call and cached call
        captured = same results as eager AND first call = one graph (per frame, for the corpus)
                   AND cached call compiles nothing new

    .venv/bin/python benchmarks/capture_coverage.py                       # all suites, both systems
    .venv/bin/python benchmarks/capture_coverage.py --suite op_db --only torch_compile
    .venv/bin/python benchmarks/capture_coverage.py --limit 20 --json out.json

Measured 2026-11-24, torch 2.13.0+cpu, this machine (terra_dyn figures from the test
files' printed counts, `pytest -q -s tests/translate/test_op_db.py test_module_db.py`):
    suite        terra_dyn    torch_compile      (captured whole / samples; 0 wrong for terra_dyn)
    corpus       164/169      165/169
    op_db        1810/1880    1753/1880          (torch.compile: 1 wrong, masked_select)
    module_db    306/318      297/318

torch.compile is only ever called here (and never by terra_dyn or the tests); its counts are
stored, with this command, as constants in tests/translate/test_op_db.py / test_module_db.py.
"""
import argparse
import collections
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Normalized paths (no "..") so code filenames match terra_dyn's own library-code test.
sys.path.insert(0, os.path.join(ROOT, "tests"))  # the shared suites: translate.*
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from translate import db_samples, harness  # noqa: E402


class CountingBackend:
    """A torch.compile backend that counts the graphs it is given and runs them eagerly."""

    def __init__(self):
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        return gm.forward


class DynamoVerdict:
    """torch.compile's counterpart of harness.Capture for one call."""

    def __init__(self, graphs, error):
        self.graphs, self.error = graphs, error

    def one_graph(self):
        return self.graphs == 1 and self.error is None

    whole_per_frame = one_graph

    def quiet(self):
        return self.graphs == 0 and self.error is None

    def why(self):
        if self.error is not None:
            return f"{type(self.error).__name__}: {str(self.error).splitlines()[0][:160] if str(self.error) else ''}"
        return f"{self.graphs} graph(s)"


def dynamo_optimize(fn):
    torch._dynamo.reset()
    backend = CountingBackend()
    fast = torch.compile(fn, backend=backend, fullgraph=True)
    fast.counting_backend = backend
    return fast


def _dynamo_error(outcome):
    err = outcome.error
    if err is not None and type(err).__module__.startswith("torch._dynamo"):
        return err
    return None


def dynamo_capture(fast, args, kwargs, snapshot=None, module=None):
    before = fast.counting_backend.graphs
    outcome = harness.call(fast, args, kwargs, snapshot, module)
    return outcome, DynamoVerdict(fast.counting_backend.graphs - before, _dynamo_error(outcome))


def dynamo_db_capture(fast, args, kwargs, module=None):
    return dynamo_capture(fast, args, kwargs, None, module)


SYSTEMS = {
    "terra_dyn": dict(db=(db_samples.terra_dyn_optimize, db_samples.terra_dyn_capture),
                      corpus=(harness.optimize, harness.optimized_call)),
    "torch_compile": dict(db=(dynamo_optimize, dynamo_db_capture), corpus=(dynamo_optimize, dynamo_capture)),
}


def run_db_suite(cases, system, limit):
    optimize, capture_of = SYSTEMS[system]["db"]
    rows = []
    for case in cases[:limit]:
        try:
            result = db_samples.run_case(case, optimize, capture_of)
            rows += [dict(name=case.name, sample=i, captured=c, why=w, wrong=w.startswith("wrong result"))
                     for i, (c, w) in enumerate(zip(result.captured, result.why))]
        except Exception as err:  # a crash of the harness itself: count the case as missed
            rows.append(dict(name=case.name, sample=-1, captured=False, wrong=True,
                             why=f"harness error {type(err).__name__}: {err}"))
    return rows


def run_corpus(system, limit):
    from translate.corpus import ENTRIES
    from translate.test_corpus import run_entry

    optimize, capture_of = SYSTEMS[system]["corpus"]
    rows = []
    for entry in [e for e in ENTRIES if e.whole][:limit]:
        result = run_entry(entry, optimize, capture_of)
        rows.append(dict(name=entry.name, sample=0, captured=result.captured,
                         why="" if result.captured else result.why_not_captured(),
                         wrong=bool(result.problems) and not any(getattr(c, "error", None) for c in result.captures)))
    return rows


def measure(suite, system, limit, show_missed):
    """Rows for one suite under one system, in this process."""
    start = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if suite == "corpus":
            rows = run_corpus(system, limit)
        else:
            cases = db_samples.op_cases() if suite == "op_db" else db_samples.module_cases()
            rows = run_db_suite(cases, system, limit)
    if show_missed:
        reasons = collections.Counter(r["why"].split(":")[0] for r in rows if not r["captured"])
        print(f"{suite} / {system}: missed by reason: {dict(reasons.most_common(8))}")
        for r in [r for r in rows if not r["captured"]][:show_missed]:
            print(f"  {r['name']}[{r['sample']}]: {r['why'][:200]}")
    return dict(rows=rows, seconds=time.time() - start)


def measure_in_child(suite, system, args):
    """Each system runs in its own process: terra_dyn's frame hook and TorchDynamo's both set
    the interpreter's frame-evaluation function, and must never see each other."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rows.json")
        cmd = [sys.executable, os.path.abspath(__file__), "--suite", suite, "--only", system,
               "--child-json", out, "--show-missed", str(args.show_missed)]
        if args.limit is not None:
            cmd += ["--limit", str(args.limit)]
        subprocess.run(cmd, check=True)
        with open(out) as f:
            return json.load(f)


def main(argv=None):
    # torch.compile logs each failed fake-tensor run with a traceback; the table says enough.
    logging.getLogger("torch._subclasses.fake_tensor").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", choices=["corpus", "op_db", "module_db", "all"], default="all")
    parser.add_argument("--only", choices=list(SYSTEMS), help="run one system instead of both")
    parser.add_argument("--limit", type=int, default=None, help="first N ops/modules/entries only")
    parser.add_argument("--json", help="write per-sample rows to this file")
    parser.add_argument("--show-missed", type=int, default=0, help="print up to N missed samples per system")
    parser.add_argument("--child-json", help=argparse.SUPPRESS)  # internal: one suite, one system
    args = parser.parse_args(argv)

    if args.child_json:
        with open(args.child_json, "w") as f:
            json.dump(measure(args.suite, args.only, args.limit, args.show_missed), f)
        return

    suites = ["corpus", "op_db", "module_db"] if args.suite == "all" else [args.suite]
    systems = [args.only] if args.only else list(SYSTEMS)
    print(f"torch {torch.__version__}; caps: {db_samples.OP_SAMPLES} samples/op, "
          f"{db_samples.MODULE_SAMPLES} samples/module; limit {args.limit}", flush=True)
    table, dump = [], {}
    for suite in suites:
        counts = {}
        for system in systems:
            result = measure_in_child(suite, system, args)
            rows = result["rows"]
            counts[system] = (sum(r["captured"] for r in rows), len(rows), sum(r["wrong"] for r in rows),
                              result["seconds"])
            dump[f"{suite}/{system}"] = rows
        table.append((suite, counts))

    print(f"\n{'suite':<10} " + " ".join(f"{s + ' captured/total (wrong, s)':>42}" for s in systems))
    for suite, counts in table:
        cells = [f"{c}/{n} ({w} wrong, {sec:.0f}s)" for c, n, w, sec in (counts[s] for s in systems)]
        print(f"{suite:<10} " + " ".join(f"{cell:>42}" for cell in cells))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dump, f, indent=1)


if __name__ == "__main__":
    main()
