"""Acceptance: every corpus program gives eager PyTorch's results under terra_dyn, on the first
and on the cached call, and at least 95% of the programs that can be one graph per frame are.

    for each entry:  eager program  -- call(inputs seed 0), call(inputs seed 1) --> outcomes
                     ours = optimize(fresh program, backend="interpreter")
                                    -- call(inputs seed 0), call(inputs seed 1) --> outcomes + captures
    test_entry_matches_eager[name]:  outputs, exception types, mutated inputs, Python state,
                                     module parameters/buffers, output aliasing -- all equal
    test_capture_rate:               first call = one graph per frame, no break, no fallback;
                                     second call = cache hit (nothing new recorded)

Run: .venv/bin/python -m pytest -q tests/translate/test_corpus.py
"""
import dataclasses
import math
import warnings
from typing import List

import pytest
import torch

from . import harness
from .corpus import ENTRIES, Entry

CAPTURE_TARGET = 0.95  # fraction of the `whole` entries captured as one graph per frame
# For reference only (not asserted): torch.compile(fullgraph=True, counting eager backend)
# captures 165 of the 169 `whole` entries by the same criterion, measured 2026-11-24 with
#   .venv/bin/python benchmarks/capture_coverage.py --suite corpus
TORCH_COMPILE_CORPUS_CAPTURED = 165
SEEDS = (0, 1)  # first call, then the cached call on fresh values of the same shapes
RNG_SEED = 1234  # reseeded before every call so eager and ours draw the same dropout masks


@dataclasses.dataclass
class EntryResult:
    entry: Entry
    problems: List[str]
    captures: List[harness.Capture]

    @property
    def captured(self):
        """One graph per frame on the first call, a pure cache hit on the second (or, where
        the entry says why its guards must fail, one graph per frame again), and correct."""
        first, second = self.captures
        cached = second.quiet() or (self.entry.may_recompile and second.whole_per_frame())
        return not self.problems and first.whole_per_frame() and bool(cached)

    def why_not_captured(self):
        first, second = self.captures
        if not first.whole_per_frame():
            return "first call: " + first.why()
        if not second.quiet() and not (self.entry.may_recompile and second.whole_per_frame()):
            return "second call not a cache hit: " + second.why()
        return "wrong result: " + self.problems[0]


def _calls(entry, program, fn, capture_of=None):
    """Run both seeds' calls of one program; return their outcomes (and, through
    `capture_of`, what the optimizer recorded for each call)."""
    outcomes, captures = [], []
    for seed in SEEDS:
        args, kwargs = entry.inputs(seed)
        torch.manual_seed(RNG_SEED + seed)
        if capture_of is not None:
            outcome, capture = capture_of(fn, args, kwargs, program.snapshot, program.module)
            captures.append(capture)
        else:
            outcome = harness.call(fn, args, kwargs, program.snapshot, program.module)
        outcomes.append(outcome)
    return outcomes, captures


def run_entry(entry: Entry, optimize=harness.optimize, capture_of=harness.optimized_call) -> EntryResult:
    """Eager vs `optimize(program)` (terra_dyn by default; the capture benchmark passes
    torch.compile) on both seeds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eager_program = entry.fresh_program()
        eager, _ = _calls(entry, eager_program, eager_program.fn)
        ours_program = entry.fresh_program()  # built after the eager calls: programs may share globals
        fast = optimize(ours_program.fn)
        ours, captures = _calls(entry, ours_program, fast, capture_of)
    problems = [f"call {i + 1}: {p}" for i, (e, o) in enumerate(zip(eager, ours))
                for p in harness.compare_outcomes(e, o)]
    return EntryResult(entry, problems, captures)


_RESULTS = {}


def result_of(entry: Entry) -> EntryResult:
    if entry.name not in _RESULTS:
        _RESULTS[entry.name] = run_entry(entry)
    return _RESULTS[entry.name]


def test_corpus_is_large_and_covers_each_area():
    groups = {e.group for e in ENTRIES}
    assert len(ENTRIES) >= 170, len(ENTRIES)
    assert {"corpus_tensor", "corpus_python", "corpus_modules", "corpus_effects"} <= groups
    not_whole = [e for e in ENTRIES if not e.whole]
    assert all(e.why_not_whole for e in not_whole), "every by-design exclusion states why"
    assert len(not_whole) <= 0.15 * len(ENTRIES), "exclusions must stay the exception"


def test_eager_runs_are_deterministic():
    """Guards the suite itself: two eager runs of an entry agree, so any difference found
    below is terra_dyn's; and only the entries excluded for raising do raise."""
    for entry in ENTRIES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runs = []
            for _ in range(2):
                program = entry.fresh_program()
                runs.append(_calls(entry, program, program.fn)[0])
        problems = [p for a, b in zip(*runs) for p in harness.compare_outcomes(a, b)]
        assert not problems, f"{entry.name}: {problems}"
        raised = [o.error for o in runs[0] if o.error is not None]
        assert bool(raised) == (entry.why_not_whole == "raises"), f"{entry.name}: {raised}"


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_entry_matches_eager(entry):
    result = result_of(entry)
    if result.problems:
        pytest.fail(f"{entry!r} differs from eager:\n  " + "\n  ".join(result.problems), pytrace=False)


def test_capture_rate():
    results = [result_of(e) for e in ENTRIES]
    candidates = [r for r in results if r.entry.whole]
    missed = [r for r in candidates if not r.captured]
    needed = math.ceil(CAPTURE_TARGET * len(candidates))
    captured = len(candidates) - len(missed)
    print(f"\ncorpus capture: {captured}/{len(candidates)} whole-by-design entries captured as one graph "
          f"per frame (target {needed}; torch.compile {TORCH_COMPILE_CORPUS_CAPTURED}); "
          f"{len(results) - len(candidates)} entries excluded by design")
    for r in missed:
        print(f"  not captured: {r.entry.name} [{r.entry.exercises}]: {r.why_not_captured()}")
    assert captured >= needed, f"captured {captured}/{len(candidates)}, need {needed}; see the list above"
