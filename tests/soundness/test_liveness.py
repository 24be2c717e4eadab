"""Liveness and resources: Ctrl-C propagates, translation has a budget, nothing is kept alive.

    KeyboardInterrupt raised while a frame is translated, or while a guard runs -> the call
        raises it at once (it used to become a warning, and the loop ran on)
    a loop walking a 2000-deep structure -> the frame runs as plain Python, the report says why
    the translation budget counts CPU time: a loaded machine (wall clock) translates the same
    functions and modules created and dropped -> their code, entries, graphs, parameters freed
    reset() -> the process-wide report recorder is empty; it never holds more than its limit
"""
import gc
import time
import weakref

import pytest
import torch
import torch.nn as nn

import terra_dyn
from terra_dyn import convert_frame, report
from terra_dyn.translate import executor


@pytest.fixture(autouse=True)
def _fresh():
    terra_dyn.reset()
    yield
    terra_dyn.reset()


def _interrupted_during_translation(x):
    return x + 1


def test_keyboard_interrupt_during_translation_propagates(monkeypatch):
    real = convert_frame.translate_frame

    def interrupted(frame, options):
        if frame.f_code is _interrupted_during_translation.__code__:
            raise KeyboardInterrupt
        return real(frame, options)

    monkeypatch.setattr(convert_frame, "translate_frame", interrupted)
    fast = terra_dyn.optimize(_interrupted_during_translation, backend="interpreter")
    with pytest.raises(KeyboardInterrupt):
        fast(torch.ones(1))


def _guarded(x):
    return x + 1


def test_keyboard_interrupt_inside_a_python_guard_propagates():
    from terra_dyn import _C
    from terra_dyn.codegen import flatten_signature

    interrupt = [False]

    def predicate(*args):  # a guard's Python part (deep sources) runs user __eq__ and friends
        if interrupt[0]:
            raise KeyboardInterrupt
        return True

    def callback(frame):
        if frame.f_code is not _guarded.__code__:
            return _C.SKIP
        return _C.CacheEntry(_C.Guard([], predicate), flatten_signature(frame.f_code))

    fast = _C.OptimizedCallable(_guarded, callback)
    assert fast(1) == 2
    interrupt[0] = True
    with pytest.raises(KeyboardInterrupt):
        fast(1)  # it used to count as a failing guard: a recompile, and the call ran on
    interrupt[0] = False
    assert fast(1) == 2


def _walk(n, x):
    while isinstance(n, list):
        n = n[0]
    return x + n


def test_deep_structure_runs_as_plain_python_and_the_report_says_why():
    deep = 3
    for _ in range(2000):
        deep = [deep]
    x = torch.ones(1)
    fast = terra_dyn.optimize(_walk, backend="interpreter")
    with report.recording() as rec:
        t0 = time.perf_counter()
        assert torch.equal(fast(deep, x), _walk(deep, x))
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        assert torch.equal(fast(deep, x), _walk(deep, x))
        cached = time.perf_counter() - t0
    assert first < 5.0 and cached < 0.05, (first, cached)  # was 29 s and 68 ms per call
    reasons = [f.reason for f in rec.report().fallbacks]
    assert any("levels deep" in r for r in reasons), reasons


def _long_loop(x):
    for _ in range(400):
        x = x + 1
    return x


def test_translation_time_budget_makes_the_frame_plain(monkeypatch):
    monkeypatch.setattr(executor, "MAX_SECONDS", 0.0)

    fast = terra_dyn.optimize(_long_loop, backend="interpreter")
    with report.recording() as rec:
        assert torch.equal(fast(torch.zeros(1)), torch.full((1,), 400.0))
    reasons = [f.reason for f in rec.report().fallbacks]
    assert any("budget" in r and "CPU time" in r and "translator steps" in r for r in reasons), reasons


def test_translation_budget_is_cpu_time_not_wall_clock(monkeypatch):
    """A loaded machine (other processes on the cores) makes the wall clock run far ahead of
    the translation's own work; what is translated must not change with it. The wall clock
    here jumps 100 s at every read: a wall-clock budget gave the frame up (plain Python, no
    graph), a CPU-time one translates it as on an idle machine."""
    monkeypatch.setattr(executor, "MAX_SECONDS", 5.0)
    real = time.perf_counter
    jumps = iter(range(10 ** 9))
    monkeypatch.setattr(time, "perf_counter", lambda: real() + 100.0 * next(jumps))

    fast = terra_dyn.optimize(_long_loop, backend="interpreter")
    with report.recording() as rec:
        assert torch.equal(fast(torch.zeros(1)), _long_loop(torch.zeros(1)))
    r = rec.report()
    assert not r.fallbacks, r.fallbacks
    assert len(r.graphs) == 1


def test_dropped_functions_and_modules_are_freed():
    x = torch.randn(2, 4)
    codes, params = [], []
    for i in range(40):
        namespace = {}
        exec(f"def f{i}(x):\n    return x * {i} + 1\n", {"torch": torch}, namespace)
        fn = namespace[f"f{i}"]
        codes.append(weakref.ref(fn.__code__))
        terra_dyn.optimize(fn, backend="interpreter")(x)
        del fn, namespace
    for i in range(10):
        model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
        params.append(weakref.ref(model[0].weight))
        with torch.no_grad():
            terra_dyn.optimize(model, backend="interpreter")(x)
        del model
    gc.collect()
    assert sum(r() is not None for r in codes) == 0
    assert sum(r() is not None for r in params) == 0


def test_reset_clears_the_recorder_and_the_recorder_is_bounded():
    terra_dyn.optimize(lambda x: x * 2, backend="interpreter")(torch.ones(1))
    assert report.global_report().graphs
    terra_dyn.reset()
    assert not report.global_report().graphs
    recorder = report.Recorder(limit=3)
    for i in range(10):
        recorder.add("fallbacks", i)
    assert recorder.report().fallbacks == [7, 8, 9]
