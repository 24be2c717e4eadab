"""A user exception raised after a graph break shows the user's frames, not terra_dyn's
(tracebacks.py, called by codegen's trampoline)."""
import sys
import traceback

import torch

import terra_dyn


def inner(y):
    raise ValueError(f"boom {y.numel()}")


def outer(x):
    y = x * 2
    print(y.sum().item())  # a break: the rest runs in a resume function
    return inner(y)


def frames_of(fn):
    try:
        fn(torch.ones(3))
    except ValueError as exc:
        return [(f.name, f.lineno) for f in traceback.extract_tb(exc.__traceback__)][1:], exc
    raise AssertionError("no exception")


def test_traceback_after_a_break_has_no_terra_dyn_frames_and_no_repeated_callee(fresh_terra_dyn):
    eager, _ = frames_of(outer)
    optimized, exc = frames_of(terra_dyn.optimize(outer, backend="interpreter"))
    files = [f.filename for f in traceback.extract_tb(exc.__traceback__)]
    assert not [f for f in files if "terra_dyn" in f], files
    assert optimized[-2:] == eager[-2:]  # outer at its raising line, then inner: as eager
    assert [name for name, _ in optimized].count("inner") == 1
    assert optimized == eager  # the rewritten frame's own entry (at the break) is dropped too


def boom(x):
    x + 1
    raise ValueError("bad")  # constructing it breaks, then the raise breaks in the resume code


def through(x):
    return boom(x * 2)


def entry(x):
    return through(x) + 1


def test_traceback_through_inlined_callers_of_a_raising_resume_equals_eagers(fresh_terra_dyn):
    eager, _ = frames_of(entry)
    optimized, exc = frames_of(terra_dyn.optimize(entry, backend="interpreter"))
    assert optimized == eager, (optimized, eager)


def deep(n):
    return 0 if n == 0 else deep(n - 1) + 1


def test_recursion_nine_tenths_of_the_limit_deep_finishes_as_in_eager(fresh_terra_dyn):
    # a rewritten frame costs up to three frames of the limit: deep frames run plainly.
    # on CPython 3.12 (3.12.1 measured) 500 levels finish and 700 raise: a frame the hook
    # hands to the evaluator also enters it from C, which 3.12 counts against its C
    # recursion limit (docs/VERSIONS.md)
    share = 5 if sys.version_info[:2] == (3, 12) else 9
    depth = sys.getrecursionlimit() * share // 10
    assert deep(depth) == depth
    assert terra_dyn.optimize(deep, backend="interpreter")(depth) == depth
