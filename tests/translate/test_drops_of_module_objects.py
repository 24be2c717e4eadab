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


@pytest.mark.xfail(strict=True, reason="the translation after the `weakref.finalize` break keeps the local "
                                        "function alive (recompiling on it every call): its finalizer never runs")
def test_a_local_functions_finalizer_runs_where_it_is_dropped():
    x = torch.randn(3)
    plain_ran, ran = [], []
    assert drops_a_local_function(x, plain_ran)[1] == 1
    assert terra_dyn.optimize(drops_a_local_function, backend="interpreter")(x, ran)[1] == 1
