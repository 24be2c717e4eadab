"""A drop of a function, class or builtin that its module holds under its own name never
finalizes it, whatever weak references other tools keep to it (translate/drops.py).

Found on the Hugging Face corpus (issue 17): once torch.compile had run in the process, its
bookkeeping left `weakref.finalize` entries on `tuple`, `dict` and `all` and WeakKeyDictionary
entries on transformers' mask functions; each loop variable rebound over such a function
(`all(mask(...) for mask in mask_functions)`) and each `tuple(... for k in self.keys())` in
ModelOutput.to_tuple then broke as "dropping a reference to an object whose class has
__del__": roberta went from one graph to 9 graphs and 25 breaks, 7x eager's time.
Each test compares with the function run plainly.
"""
import weakref

import pytest
import torch

import terra_dyn
from terra_dyn import report

pytestmark = pytest.mark.usefixtures("fresh_terra_dyn")


def positive(x):
    return x > 0


def small(x):
    return x < 0.5


_OTHER_TOOLS_BOOKKEEPING = weakref.WeakKeyDictionary({positive: 1, small: 2})
weakref.finalize(positive, int)
weakref.finalize(torch.where, int)


def masked(x):
    out = x
    for fn in (positive, small):  # each turn drops the last turn's function
        out = out * fn(x)
    keep = torch.where  # a builtin held by its module, dropped below
    keep = None
    return out + all(f is not None for f in (positive, small)), keep


def _one_graph(fn, *args):
    with report.recording() as rec:
        out = terra_dyn.optimize(fn, backend="interpreter")(*args)
    return out, rec.report()


def test_rebinding_a_module_function_with_weak_references_stays_in_the_graph():
    x = torch.randn(8)
    (out, keep), r = _one_graph(masked, x)
    expected, _ = masked(x)
    torch.testing.assert_close(out, expected)
    assert keep is None
    assert r.break_count == 0 and r.graph_count == 1, r.breaks


def make_local():
    def local(x):
        return x + 1
    return local


def drops_a_local_function(x, ran):
    fn = make_local()
    weakref.finalize(fn, ran.append, len(ran))
    y = fn(x)
    fn = None  # the finalizer runs here in plain Python
    return y * 2, len(ran)


def test_a_local_function_with_a_users_finalizer_still_breaks_where_it_is_dropped():
    # not held by its module: the drop may be its last reference, and the finalizer runs there
    x = torch.randn(3)
    (y, _), r = _one_graph(drops_a_local_function, x, [])
    torch.testing.assert_close(y, drops_a_local_function(x, [])[0])
    assert any("__del__" in b.reason and b.lineno == drops_a_local_function.__code__.co_firstlineno + 4
               for b in r.breaks)


def test_a_local_functions_finalizer_runs_where_it_is_dropped():
    # the resume translation after the `weakref.finalize` break guards the function made in
    # the call: by a weak reference (a local function, as a local class), so it dies at
    # `fn = None` on every call, the translating ones included
    x = torch.randn(3)
    plain_ran = []
    assert drops_a_local_function(x, plain_ran)[1] == 1
    fast = terra_dyn.optimize(drops_a_local_function, backend="interpreter")
    for _ in range(3):
        ran = []
        y, count = fast(x, ran)
        assert count == 1 and ran == [0]
        torch.testing.assert_close(y, drops_a_local_function(x, [])[0])


def test_a_local_function_passed_in_is_not_kept_alive_by_its_translation():
    def apply(fn, x):
        return fn(x) * 2

    fast = terra_dyn.optimize(apply, backend="interpreter")
    x = torch.randn(3)
    fn = make_local()
    gone = weakref.ref(fn)
    torch.testing.assert_close(fast(fn, x), apply(fn, x))
    del fn
    assert gone() is None  # no gc.collect(): the guards hold it weakly, nothing in a cycle
    other = make_local()
    torch.testing.assert_close(fast(other, x), apply(other, x))
