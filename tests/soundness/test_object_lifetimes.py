"""Objects die where plain Python frees them, across graph breaks (csrc/moves.c).

A frame split at a break is a chain of calls (the hook calls the rewritten code, the
trampoline calls each resume function): every caller used to keep the values it handed on
until the callee returned, so `del x; gc.collect()` after a break freed nothing, a weakref
stayed alive and `__del__` ran late (CPython's test_scope testCellLeak, test_exceptions
test_unraisable). Each test compares with the same function run plainly.
"""
import functools
import gc
import io
import weakref

import pytest

import terra_dyn

SINK = io.StringIO()


pytestmark = pytest.mark.usefixtures("fresh_terra_dyn")


def both(fn):
    """(plain result, optimized result)."""
    return fn(), terra_dyn.optimize(fn, backend="interpreter")()


class Obj:
    pass


def local_deleted_after_a_break():
    o = Obj()
    ref = weakref.ref(o)
    print("break", file=SINK)
    del o
    gc.collect()
    return ref() is None


def test_a_local_deleted_after_a_break_dies():
    assert both(local_deleted_after_a_break) == (True, True)


def cell_leak():
    # test_scope's testCellLeak: `self` is a cell; `self = None` breaks the cycle
    # instance -> exception -> traceback -> frame
    class Tester:
        def dig(self):
            if 0:
                lambda: self
            try:
                1 / 0
            except Exception as exc:
                self.exc = exc
            self = None

    tester = Tester()
    tester.dig()
    ref = weakref.ref(tester)
    del tester
    gc.collect()
    return ref() is None


def test_a_cycle_through_a_caught_exception_is_collected():
    assert both(cell_leak) == (True, True)


def numbers():
    yield 1
    yield 2


def loop_iterator_dies_after_the_loop():
    it = numbers()
    ref = weakref.ref(it)
    for x in it:
        print(x, file=SINK)  # a break inside the loop: the iterator is a stack item
    del it
    gc.collect()
    return ref() is None


def test_a_loops_iterator_dies_once_the_loop_and_its_name_let_go():
    assert both(loop_iterator_dies_after_the_loop) == (True, True)


def weakref_referent_dies():
    # test_descr's test_weakrefs: r() was evaluated at translation, its result baked into
    # the code as a constant, which kept the object alive
    c = Obj()
    r = weakref.ref(c)
    same = r() is c
    del c
    gc.collect()
    return same, r()


def test_a_weakrefs_referent_is_read_at_run_time_and_dies():
    assert both(weakref_referent_dies) == ((True, None), (True, None))


def deleted_before_a_native_call():
    # `del x` then gc.collect() in the same segment: the rewritten frame held x in its
    # argument slot while gc.collect() ran (x is in a cycle: only the collector frees it)
    x = Obj()
    wr = weakref.ref(x)  # a break: x is an argument of the rest
    x.me = x
    del x
    gc.collect()
    return wr() is None


def test_a_name_deleted_before_a_native_call_no_longer_holds_its_object():
    assert both(deleted_before_a_native_call) == (True, True)


def subclass_removed():
    # test_descr's test_remove_subclass: guards and code constants held the local class
    class Parent:
        pass

    class Child(Parent):
        pass

    before = Parent.__subclasses__() == [Child]
    del Child
    gc.collect()
    return before, Parent.__subclasses__()


def test_a_deleted_local_class_leaves_its_bases_subclass_list():
    assert both(subclass_removed) == ((True, []), (True, []))


def heap_count_is_stable():
    # test_descr's test_slots: G.__eq__ was translated between the two counts
    class G:
        def __eq__(self, other):
            return False

    g = G()
    before = len(gc.get_objects())
    for _ in range(10):
        g == g
    return len(gc.get_objects()) - before


def test_a_frame_walking_gcs_heap_runs_with_its_callees_as_written():
    assert both(heap_count_is_stable) == (0, 0)


class Counted:
    """Live instances counted by `__new__` / `__del__`: dropping the last reference runs
    `__del__` at once in plain Python, without gc.collect()."""
    alive = 0

    def __new__(cls):
        cls.alive += 1
        return object.__new__(cls)

    def __del__(self):
        type(self).alive -= 1


def finalized_where_dropped():
    seen = []
    x = Counted()
    seen.append(Counted.alive)
    del x  # __del__ runs here
    seen.append(Counted.alive)
    y = Counted()
    y = None  # and here
    seen.append(Counted.alive)
    xs = [Counted(), Counted()]
    seen.append(Counted.alive)
    del xs  # the list's items here
    seen.append(Counted.alive)
    Counted()  # an unused result here
    seen.append(Counted.alive)
    return seen


def test_an_object_with_del_is_finalized_where_the_frame_drops_it():
    # CPython's test_iter test_ref_counting_behavior: the translator read `Counted.alive`
    # as if `del x` did nothing (the resume call's argument held x until the frame returned)
    assert Counted.alive == 0
    plain, fast = both(finalized_where_dropped)
    assert plain == [1, 0, 0, 2, 0, 0]
    assert fast == plain
    assert terra_dyn.optimize(finalized_where_dropped, backend="interpreter")() == plain


class _Finalized:
    dropped = 0

    def __del__(self):
        type(self).dropped += 1


def _drop_in_try():
    s = _Finalized()
    try:
        del s
    finally:
        pass
    return _Finalized.dropped


def _drop_in_with():
    s = _Finalized()
    with io.StringIO():
        s = None
    return _Finalized.dropped, s


@pytest.mark.parametrize("fn", [_drop_in_try, _drop_in_with])
def test_an_object_with_del_dropped_inside_try_or_with_runs_as_python_does(fn):
    # the drop's break inside a try body or a with block ran as a step code whose
    # arguments left out the deleted name: UnboundLocalError where Python runs
    _Finalized.dropped = 0
    plain = fn()
    _Finalized.dropped = 0
    assert terra_dyn.optimize(fn, backend="interpreter")() == plain
    assert _Finalized.dropped == 1


class _Box(list):
    """A list that can be weakly referenced."""


class _SlottedCallable:
    __slots__ = ("__weakref__",)

    def __call__(self, value):
        return value


def _calls_it(x, cb):
    cb(1)
    return x * 2


class _Counter:
    def __init__(self):
        self.n = 0

    def add(self, value):
        self.n += value  # replayed as an attribute write after the graph: its record named it


def _made_per_call(kind):
    if kind == "bound builtin method":
        box = _Box()
        return box.append, weakref.ref(box)
    if kind == "bound method writing its object":
        counter = _Counter()
        return counter.add, weakref.ref(counter)
    if kind == "functools.wraps wrapper":
        @functools.wraps(_Counter.add)  # its qualname is copied: no `<locals>` in it
        def wrapper(value):
            return value
        return wrapper, weakref.ref(wrapper)
    if kind == "class made by type()":
        cls = type("Made", (), {"__init__": lambda self, value: None})
        return cls, weakref.ref(cls)
    if kind == "instance of a class made by type()":  # guarded by its type: the class is held
        cls = type("Made", (), {"__call__": lambda self, value: value})
        return cls(), weakref.ref(cls)
    obj = _SlottedCallable()
    return obj, weakref.ref(obj)


# An argument made per call that is guarded by identity is held weakly by the translation made
# for it (reconstruct.held_weakly), as local functions and classes, modules and tensors are;
# the translation's side-effect records let go of theirs when it ends (GraphState.
# release_user_objects). Before, the callable and its __self__ lived until the frame's
# recompile limit dropped the translations, or until the cyclic gc.
@pytest.mark.parametrize("kind", ["bound builtin method", "bound method writing its object",
                                  "callable without __dict__", "functools.wraps wrapper",
                                  "class made by type()", "instance of a class made by type()"])
def test_a_callable_made_per_call_is_not_kept_alive_by_its_translation(fresh_terra_dyn, kind):
    import torch

    fast = terra_dyn.optimize(_calls_it, backend="interpreter")
    x = torch.ones(3)
    cb, gone = _made_per_call(kind)
    assert torch.equal(fast(x, cb), _calls_it(x, cb))
    del cb
    if "class made by type()" in kind:
        gc.collect()  # a class is a cycle (its __mro__ holds it): only the cyclic gc frees it
    assert gone() is None
