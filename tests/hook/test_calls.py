"""Calls through the hook behave as plain calls: arguments, closures, recursion,
exceptions and tracebacks, generators and coroutines, threads, tracing, nesting."""
import asyncio
import gc
import sys
import threading
import traceback

import pytest

from terra_dyn import _C
from terra_dyn.eval_frame import frame_hook, optimized_callable

from .callbacks import RecordingCallback


@pytest.fixture(autouse=True)
def fresh_cache():
    _C.reset()
    yield
    _C.reset()


def both(fn, *args, **kwargs):
    """(plain result, hooked result, callback) for one call; run twice to hit the cache."""
    _C.reset()
    cb = RecordingCallback()
    fast = optimized_callable(fn, cb)
    expected = fn(*args, **kwargs)
    first = fast(*args, **kwargs)
    second = fast(*args, **kwargs)
    assert first == second
    return expected, first, cb


def test_positional_keyword_default_kwonly_varargs_varkw():
    def f(a, b=2, *rest, c, d=4, **kw):
        return (a, b, rest, c, d, sorted(kw.items()))

    for args, kwargs in [((1,), {"c": 3}), ((1, 5, 6, 7), {"c": 3, "d": 9, "z": 1}), ((), {"a": 1, "c": 0})]:
        expected, got, cb = both(f, *args, **kwargs)
        assert got == expected
        assert cb.names == ["f"]


def test_positional_only_arguments():
    def f(a, /, b, *, c=1):
        return a * 100 + b * 10 + c

    expected, got, _ = both(f, 1, b=2)
    assert got == expected


def test_callback_sees_arguments_in_frame_locals():
    def f(a, b=2, *rest, c, **kw):
        return a

    cb = RecordingCallback()
    optimized_callable(f, cb)(1, 9, 8, c=3, k=4)
    assert cb.locals == [{"a": 1, "b": 9, "rest": (8,), "c": 3, "kw": {"k": 4}}]


def test_closures_and_cells():
    def outer(x):
        y = x + 1

        def inner(z):
            return x + y + z

        return inner(10), [cell.cell_contents for cell in inner.__closure__]

    expected, got, cb = both(outer, 5)
    assert got == expected == (21, [5, 6])
    # 3.12+ inline list comprehensions into their function (PEP 709): no frame of their own.
    comprehension = ["<listcomp>"] if sys.version_info < (3, 12) else []
    assert cb.names == ["outer", "inner", *comprehension]


def test_cell_that_is_an_argument():
    def f(a, b):
        def g():
            nonlocal a
            a += 1
            return a + b

        return g(), a

    expected, got, _ = both(f, 1, 2)
    assert got == expected == (4, 2)


def test_free_variables_change_between_calls():
    def make(k):
        def f(x):
            return x * k

        return f

    cb = RecordingCallback()
    f2, f3 = optimized_callable(make(2), cb), optimized_callable(make(3), cb)
    assert [f2(5), f3(5), f2(5)] == [10, 15, 10]
    assert cb.names == ["f"]  # one entry serves both closures


def test_recursion():
    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    expected, got, cb = both(fib, 15)
    assert got == expected
    assert cb.names == ["fib"]


def test_methods_and_classes():
    class Acc:
        def __init__(self, start):
            self.total = start

        def add(self, x):
            self.total += x
            return self

    def f(n):
        acc = Acc(0)
        for i in range(n):
            acc.add(i)
        return acc.total

    expected, got, _ = both(f, 10)
    assert got == expected


def failing(x):
    y = x + 1
    return inner_failing(y)


def inner_failing(y):
    return {}[y]


def frames_of(fn, *args):
    with pytest.raises(KeyError) as info:
        fn(*args)
    return [(f.name, f.lineno, f.line) for f in traceback.extract_tb(info.value.__traceback__)
            if f.filename == __file__ and f.name != "frames_of"]


def test_exception_traceback_same_frames_names_lines():
    expected = frames_of(failing, 1)
    got = frames_of(optimized_callable(failing, RecordingCallback()), 1)
    assert got == expected
    assert [name for name, _, _ in got] == ["failing", "inner_failing"]


def test_exception_caught_inside():
    def f(x):
        try:
            return 1 / x
        except ZeroDivisionError:
            return "inf"

    expected, got, _ = both(f, 0)
    assert got == expected == "inf"


def test_generators_run_unmodified():
    def gen(n):
        for i in range(n):
            yield i * i

    def f(n):
        return list(gen(n)) + [sum(x for x in gen(n))]

    expected, got, cb = both(f, 5)
    assert got == expected
    assert "gen" not in cb.names and "<genexpr>" not in cb.names


def test_generator_throw_and_close():
    def gen():
        try:
            yield 1
        except ValueError:
            yield "caught"

    def f():
        g = gen()
        first = next(g)
        second = g.throw(ValueError)
        g.close()
        return first, second

    expected, got, _ = both(f)
    assert got == expected == (1, "caught")


def test_async_functions_run_unmodified():
    async def add(a, b):
        await asyncio.sleep(0)
        return a + b

    async def agen():
        yield 1
        yield 2

    async def main():
        return await add(1, 2), [x async for x in agen()]

    def f():
        return asyncio.run(main())

    cb = RecordingCallback()
    assert optimized_callable(f, cb)() == f()
    assert not {"add", "main", "agen"} & set(cb.names)


def test_two_threads_one_hooked_one_not():
    seen = {}

    def work(n):
        return sum(helper(i) for i in range(n))

    def helper(i):
        return i * 2

    cb = RecordingCallback()
    barrier = threading.Barrier(2)

    def hooked():
        barrier.wait()
        seen["hooked"] = optimized_callable(work, cb)(100)

    def plain():
        barrier.wait()
        seen["plain"] = [work(100) for _ in range(50)][-1]

    threads = [threading.Thread(target=hooked), threading.Thread(target=plain)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen["hooked"] == seen["plain"] == work(100)
    assert cb.names == ["work", "helper"]  # the plain thread never reached the callback


def test_set_eval_frame_is_per_thread_and_returns_previous():
    cb = RecordingCallback()
    assert _C.set_eval_frame(cb) is None
    try:
        other = []
        t = threading.Thread(target=lambda: other.append(_C.set_eval_frame(None)))
        t.start()
        t.join()
        assert other == [None]
    finally:
        assert _C.set_eval_frame(None) is cb


def test_frame_hook_context_manager():
    def f(x):
        return x + 1

    cb = RecordingCallback()
    with frame_hook(cb):
        assert f(1) == 2
    assert f(1) == 2
    assert cb.names == ["f"]


def record_events(setter, fn, *args):
    events = []

    def tracer(frame, event, arg):
        if frame.f_code.co_filename == __file__ and event in ("call", "return"):
            events.append((event, frame.f_code.co_name))
        return tracer if setter is sys.settrace else None

    setter(tracer)
    try:
        fn(*args)
    finally:
        setter(None)
    return [e for e in events if e[1] not in ("both", "record_events", "<lambda>")]


def traced(x):
    return traced_inner(x) + 1


def traced_inner(x):
    return x * 2


@pytest.mark.parametrize("setter", [sys.settrace, sys.setprofile], ids=["settrace", "setprofile"])
def test_trace_and_profile_still_report_calls(setter):
    expected = record_events(setter, traced, 3)
    fast = optimized_callable(traced, RecordingCallback())
    fast(3)  # fill the cache: the second call runs rewritten code
    got = record_events(setter, fast, 3)
    assert got == expected
    assert ("call", "traced_inner") in got


def test_nested_optimize_restores_outer_callback():
    def inner(x):
        return x + 1

    def outer(x):
        return fast_inner(x) + helper(x)

    def helper(x):
        return x * 10

    inner_cb, outer_cb = RecordingCallback(), RecordingCallback()
    fast_inner = optimized_callable(inner, inner_cb)
    fast_outer = optimized_callable(outer, outer_cb)
    assert fast_outer(1) == 12
    assert outer_cb.names == ["outer", "helper"]  # helper ran after inner's callback was restored
    assert inner_cb.names == ["inner"]
    assert _C.set_eval_frame(None) is None  # nothing left installed


def test_optimized_callable_is_a_method_and_keeps_metadata():
    class Point:
        def __init__(self, x):
            self.x = x

        def scaled(self, k):
            """Scale x."""
            return self.x * k

    Point.scaled = optimized_callable(Point.scaled, RecordingCallback())
    assert Point(3).scaled(2) == 6
    assert Point.scaled.__name__ == "scaled" and Point.scaled.__doc__ == "Scale x."
    assert Point.scaled.__wrapped__ is Point.scaled.fn
    assert "OptimizedCallable" in repr(Point.scaled)


def test_callback_keeping_frames_and_falling_back():
    """A callback may read f_locals (which runs COPY_FREE_VARS early) and keep the frame
    object past the call; the original frame then runs and dies normally."""
    kept = []

    def callback(frame):
        frame.f_locals  # noqa: B018  (fills free variables, as a translator does)
        kept.append(frame)
        return None

    def outer(a):
        b = a * 2

        def inner(c):
            def innermost():
                return c
            return a + b + c + innermost()

        return inner(a + 1)

    fast = optimized_callable(outer, callback)
    assert fast(1) == outer(1) == 7
    names = [f.f_code.co_name for f in kept]
    assert names == ["outer", "inner", "innermost"]
    assert kept[1].f_back is kept[0]  # linked as in a plain call
    assert kept[0].f_back.f_code.co_name == "test_callback_keeping_frames_and_falling_back"
    assert kept[1].f_locals["c"] == 2


def test_callback_keeping_frames_of_cache_hits():
    """A frame the hook answers with a CacheEntry is cleared by the hook itself on 3.12+
    (frame_api.h): a frame object the callback kept must take over the frame's data and
    stay readable, linked to its caller, after the call."""
    kept = []
    recording = RecordingCallback()

    def callback(frame):
        kept.append(frame)
        return recording(frame)

    def outer(a, *rest, k=1):
        b = a * 2

        def inner(c):
            return a + b + c + k

        return inner(a + 1) + len(rest)

    fast = optimized_callable(outer, callback)
    assert fast(1, 9, k=3) == outer(1, 9, k=3) == 9
    gc.collect()
    assert [f.f_code.co_name for f in kept] == ["outer", "inner"]
    assert kept[0].f_back.f_code.co_name == "test_callback_keeping_frames_of_cache_hits"
    assert kept[0].f_locals["a"] == 1 and kept[0].f_locals["rest"] == (9,)
    assert kept[1].f_locals["c"] == 2
    kept.clear()
    assert fast(2) == outer(2)  # hits: no callback, frames cleared by the hook
    assert kept == []


def test_exception_from_a_cache_hit_clears_the_frame():
    def fails(x):
        return 1 / x

    fast = optimized_callable(fails, RecordingCallback())
    for _ in range(3):
        with pytest.raises(ZeroDivisionError) as info:
            fast(0)
        assert info.traceback[-1].name == "fails"
    assert fast(4) == 0.25


def test_deep_recursion_raises_recursion_error_like_plain():
    def down(n):
        return 0 if n == 0 else 1 + down(n - 1)

    limit = sys.getrecursionlimit()
    fast = optimized_callable(down, RecordingCallback())
    assert fast(200) == 200
    with pytest.raises(RecursionError):
        fast(limit * 2)
    assert fast(10) == 10
