"""No reference leaks over 100,000 calls through every path of the hook.

A release build has no sys.gettotalrefcount, so leaks are measured as growth of
tracemalloc's traced memory and of the gc's object count.
"""
import gc
import sys
import tracemalloc

import pytest
import torch

from terra_dyn import _C
from terra_dyn.eval_frame import disable, optimized_callable

from .callbacks import RecordingCallback

CALLS = 100_000


def add(a, b=1, *rest, k=2, **kw):
    return a + b + k


def make_closure():
    scale = 3

    def scaled(x):
        return x * scale

    return scaled


def divide(x):
    return 1 / x


def catch(fn):
    try:
        fn(0)
    except ZeroDivisionError:
        pass


def watched_refcounts(fn):
    """Refcounts of what a call touches: the wrappers, callbacks, entries, guards, codes."""
    objects = [add, add.__code__, fn]
    for cell in fn.__closure__ or ():
        objects.append(cell.cell_contents)
        objects += [getattr(cell.cell_contents, name, None) for name in ("fn", "callback")]
    for entry in _C.cache_entries(add.__code__):
        objects += [entry, entry.guard, entry.code]
    return [sys.getrefcount(o) for o in objects]


def growth(fn):
    fn()  # warm up: caches, interned strings, first-call allocations
    gc.collect()
    refs = watched_refcounts(fn)
    tracemalloc.start()
    before_mem = tracemalloc.get_traced_memory()[0]
    before_objs = len(gc.get_objects())
    for _ in range(CALLS):
        fn()
    gc.collect()
    after_mem = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert watched_refcounts(fn) == refs
    return after_mem - before_mem, len(gc.get_objects()) - before_objs


def paths():
    _C.reset()
    x = torch.ones(2)
    hit = optimized_callable(add, RecordingCallback())
    closure = optimized_callable(make_closure(), RecordingCallback())
    guarded = optimized_callable(add, RecordingCallback(guard=_C.Guard([
        ("tensor", 0, torch.Tensor, x.dtype, x.device, (2,), (1,), False), ("eq", 1, 1)])))
    skipped = optimized_callable(add, lambda frame: _C.SKIP)
    asked_each_time = optimized_callable(add, lambda frame: None)
    disabled = disable(make_closure())
    raising = optimized_callable(divide, RecordingCallback())
    return {
        "cache hit": lambda: hit(1, 2, 3, k=4, z=5),
        "closure hit": lambda: closure(2),
        "tensor guard hit": lambda: guarded(x),
        "skipped": lambda: skipped(1),
        "callback returning None": lambda: asked_each_time(1),
        "disabled": lambda: disabled(1),
        "cache hit raising": lambda: catch(raising),
    }


@pytest.mark.parametrize("path", list(paths()))
def test_no_leak(path):
    fn = paths()[path]
    mem, objs = growth(fn)
    assert mem < 64 * 1024, f"{path}: traced memory grew by {mem} bytes over {CALLS} calls"
    assert objs < 100, f"{path}: gc object count grew by {objs} over {CALLS} calls"
    _C.reset()
