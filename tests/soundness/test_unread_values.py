"""A value a resume function only drops or stores is not guarded by what it is (issue 16).

`weakref.finalize(obj, ...)` runs natively (a break); the resume function after it gets the
new finalize object as an argument. Guarded by identity, as a callable object without a
`__dict__` is when it is read, every call's new one failed the guard: a recompile per call
up to the limit. Unread, it is now carried in its slot (opcodes_stack.LOAD_FAST); read later
(called, its attributes read), it is wrapped and guarded there. Each test compares the log
and results with the same function run plainly, call by call, and counts recompiles.
"""
import io
import weakref

import pytest
import torch

import terra_dyn
from terra_dyn.report import recording

pytestmark = pytest.mark.usefixtures("fresh_terra_dyn")

LOG = []
SINK = io.StringIO()


class Obj:
    pass


def result_unused(x):
    o = Obj()
    weakref.finalize(o, LOG.append, "finalized")  # POP_TOP of the resume's stack item
    LOG.append("after")
    return x + 1


def result_kept_in_a_local(x):
    o = Obj()
    fin = weakref.finalize(o, LOG.append, "finalized")  # STORE_FAST under another name
    y = x * 2
    del o  # its finalizer runs here (a break): fin is handed on unread
    LOG.append("after del")
    return y + 1


def result_read_after_another_break(x):
    o = Obj()
    fin = weakref.finalize(o, LOG.append, "finalized")
    print("a break", file=SINK)
    alive = fin.alive  # read: wrapped and guarded here, in the next resume function
    LOG.append(f"alive {alive}")
    fin()  # runs the callback once
    return x + int(alive), fin.alive


def result_called_right_away(x):
    fin = weakref.finalize(Obj(), LOG.append, "finalized")
    return x - 1, fin.detach() is None


def _run(fn, calls=6):
    """(plain logs and results, optimized logs and results, recompiles)."""
    plain, fast = [], []
    for out, f in ((plain, fn), (fast, terra_dyn.optimize(fn, backend="interpreter"))):
        with recording() as rec:
            for i in range(calls):
                LOG.clear()
                result = f(torch.full((2,), float(i)))
                out.append((list(LOG), result))
    return plain, fast, len(rec.report().recompiles)


@pytest.mark.parametrize("fn", [result_unused, result_kept_in_a_local, result_read_after_another_break,
                                result_called_right_away], ids=lambda f: f.__name__)
def test_a_finalize_made_per_call_matches_plain_python(fn):
    plain, fast, _ = _run(fn)
    assert len(plain) == len(fast)
    for (plain_log, plain_out), (fast_log, fast_out) in zip(plain, fast):
        assert fast_log == plain_log
        torch.testing.assert_close(fast_out, plain_out)


@pytest.mark.parametrize("fn", [result_unused, result_kept_in_a_local], ids=lambda f: f.__name__)
def test_an_unread_finalize_made_per_call_is_no_recompile(fn):
    _, _, recompiles = _run(fn)
    assert recompiles == 0
