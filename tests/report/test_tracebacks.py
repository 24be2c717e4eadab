"""A user exception raised after a graph break shows the user's frames, not terra_dyn's
(tracebacks.py, called by codegen's trampoline)."""
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
    # known: the outermost broken function also appears once at its break line (the
    # rewritten frame's entry is added by Python after the trampoline cleaned the rest)
    break_line = outer.__code__.co_firstlineno + 2
    assert optimized == [("outer", break_line)] + eager
