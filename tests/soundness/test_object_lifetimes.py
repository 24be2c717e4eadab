"""Objects die where plain Python frees them, across graph breaks (csrc/moves.c).

A frame split at a break is a chain of calls (the hook calls the rewritten code, the
trampoline calls each resume function): every caller used to keep the values it handed on
until the callee returned, so `del x; gc.collect()` after a break freed nothing, a weakref
stayed alive and `__del__` ran late (CPython's test_scope testCellLeak, test_exceptions
test_unraisable). Each test compares with the same function run plainly.
"""
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
