"""The per-code cache: hits skip the callback, guards choose among entries, SKIP, None,
failing callbacks (warning + original code, or strict), reset, clear_code, disable."""
import warnings

import pytest

import terra_dyn
from terra_dyn import _C
from terra_dyn.codegen import flatten_signature
from terra_dyn.eval_frame import disable, optimized_callable, reset

from .callbacks import RecordingCallback, is_test_code


@pytest.fixture(autouse=True)
def fresh_cache():
    _C.reset()
    yield
    _C.reset()


def add(a, b):
    return a + b


def test_cache_hit_does_not_call_callback_again():
    cb = RecordingCallback()
    fast = optimized_callable(add, cb)
    assert [fast(i, 1) for i in range(5)] == [add(i, 1) for i in range(5)]
    assert cb.names == ["add"]
    (entry,) = _C.cache_entries(add.__code__)
    assert entry.code.co_name == "add" and entry.code is not add.__code__
    assert _C.is_skipped(entry.code)  # rewritten code never reaches a callback
    assert "CacheEntry(Guard(()), code=<add at" in repr(entry)


def marked(tag):
    """A rewritten add that tags its result, so a test sees which entry ran."""
    ns = {}
    exec(f"def add(a, b):\n    return ({tag!r}, a + b)", ns)
    return flatten_signature(ns["add"].__code__)


def test_several_entries_guards_choose():
    entries = {
        int: _C.CacheEntry(_C.Guard([("type", 0, int)]), marked("int")),
        str: _C.CacheEntry(_C.Guard([("type", 0, str)]), marked("str")),
    }
    asked = []

    def callback(frame):
        if not is_test_code(frame.f_code):
            return _C.SKIP
        asked.append(type(frame.f_locals["a"]))
        return entries[type(frame.f_locals["a"])]

    fast = optimized_callable(add, callback)
    assert fast(1, 2) == ("int", 3)
    assert fast("x", "y") == ("str", "xy")
    assert fast(5, 5) == ("int", 10)
    assert fast("p", "q") == ("str", "pq")
    assert asked == [int, str]  # one recompile per new type, then hits
    assert _C.cache_entries(add.__code__) == [entries[int], entries[str]]


def test_first_passing_entry_runs():
    always = _C.CacheEntry(_C.Guard([]), marked("first"))
    cb = RecordingCallback(answer=always)
    fast = optimized_callable(add, cb)
    fast(1, 1)
    _C.cache_entries(add.__code__)  # a copy: appending to it does not change the cache
    assert fast(2, 2) == ("first", 4)


def test_none_runs_original_and_asks_again():
    asked = []

    def callback(frame):
        asked.append(frame.f_code.co_name)
        return None

    fast = optimized_callable(add, callback)
    assert [fast(1, 2), fast(3, 4)] == [3, 7]
    assert asked == ["add", "add"]


def test_skip_runs_original_and_never_asks_again_until_reset():
    asked = []

    def callback(frame):
        asked.append(frame.f_code.co_name)
        return _C.SKIP

    fast = optimized_callable(add, callback)
    assert [fast(1, 2), fast(3, 4)] == [3, 7]
    assert asked == ["add"] and _C.is_skipped(add.__code__)
    reset()
    assert not _C.is_skipped(add.__code__)
    fast(1, 2)
    assert asked == ["add", "add"]


def test_skip_code_survives_reset_and_clear_code_drops_it():
    cb = RecordingCallback()
    _C.skip_code(add.__code__)
    _C.reset()
    assert optimized_callable(add, cb)(1, 2) == 3 and cb.names == []
    _C.clear_code(add.__code__)
    assert optimized_callable(add, cb)(1, 2) == 3 and cb.names == ["add"]


def test_reset_drops_entries():
    cb = RecordingCallback()
    fast = optimized_callable(add, cb)
    fast(1, 2)
    assert len(_C.cache_entries(add.__code__)) == 1
    reset()
    assert _C.cache_entries(add.__code__) == []
    assert fast(1, 2) == 3 and cb.names == ["add", "add"]


def test_callback_exception_warns_and_runs_original():
    def callback(frame):
        raise ValueError("translator bug")

    with pytest.warns(RuntimeWarning) as record:
        assert optimized_callable(add, callback)(1, 2) == 3
    (message,) = [str(w.message) for w in record]
    assert "add" in message and f"{__file__}:{add.__code__.co_firstlineno}" in message
    assert "ValueError: translator bug" in message


def test_wrong_return_type_warns_with_clear_message():
    with pytest.warns(RuntimeWarning, match="must return None, terra_dyn._C.SKIP, terra_dyn._C.OFF or a CacheEntry, not int"):
        assert optimized_callable(add, lambda frame: 42)(1, 2) == 3


def test_strict_mode_propagates(monkeypatch):
    monkeypatch.setattr(terra_dyn.config, "strict", True)

    def callback(frame):
        raise ValueError("translator bug")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="translator bug"):
            optimized_callable(add, callback)(1, 2)
        with pytest.raises(TypeError, match="must return None"):
            optimized_callable(add, lambda frame: "nope")(1, 2)


def test_warning_filter_error_propagates_as_exception():
    def callback(frame):
        raise ValueError("translator bug")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeWarning, match="translator bug"):
            optimized_callable(add, callback)(1, 2)


def test_disable_turns_hook_off_for_callee_tree():
    def helper(x):
        return inner(x) * 2

    def inner(x):
        return x + 1

    def outer(x):
        return plain(x) + inner(x)

    plain = disable(helper)
    cb = RecordingCallback()
    assert optimized_callable(outer, cb)(1) == outer(1) == 6
    assert cb.names == ["outer", "inner"]  # inner ran once inside the disabled helper, unasked
    assert _C.is_skipped(helper.__code__)
    assert plain.__name__ == "helper" and "DisabledCallable" in repr(plain)


def test_cache_entry_requires_flattened_signature():
    def f(*args, **kwargs):
        return args

    with pytest.raises(ValueError, match="flattened signature"):
        _C.CacheEntry(_C.Guard([]), f.__code__)
    _C.CacheEntry(_C.Guard([]), flatten_signature(f.__code__))


def test_class_bodies_and_exec_code_run_unmodified():
    cb = RecordingCallback()

    def f():
        class Local:
            x = 1

        ns = {}
        exec("y = 2", ns)
        return Local.x + ns["y"]

    assert optimized_callable(f, cb)() == 3
    assert cb.names == ["f"]  # they read a locals dict: no function call can stand in


def test_reprs_are_readable():
    assert repr(_C.SKIP) == "terra_dyn._C.SKIP"
    entry = _C.CacheEntry(_C.Guard([("type", 0, int)]), flatten_signature(add.__code__))
    assert repr(entry).startswith("CacheEntry(Guard((('type', 0, <class 'int'>),)), code=<add at ")


def test_entry_whose_code_does_not_fit_the_frame_is_refused():
    def make():
        k = 1

        def uses_k(a, b):
            return a + b + k

        return uses_k

    other_arity = _C.CacheEntry(_C.Guard([]), flatten_signature(make.__code__))
    closure_code = _C.CacheEntry(_C.Guard([]), flatten_signature(make().__code__))
    for entry, fn, args in [(other_arity, add, (1, 2)), (closure_code, add, (1, 2))]:
        with pytest.warns(RuntimeWarning, match="the CacheEntry's code takes"):
            assert optimized_callable(fn, lambda frame, e=entry: e)(*args) == fn(*args)
        assert _C.cache_entries(fn.__code__) == []
