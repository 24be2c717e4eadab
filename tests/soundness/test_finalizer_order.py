"""Finalizers run where plain Python runs them: each function logs its own steps and every
`__del__` / weakref callback into one list, run plainly and optimized; the two logs must be
equal (issue 16). 3.13 compiles `a, b = ...` to STORE_FAST_STORE_FAST (two drops in one
instruction) and `x = ...; use(x)` pairs to STORE_FAST_LOAD_FAST; the other stores let go of
an attribute's, an item's or a cell's old value."""
import gc
import io
import sys
import weakref

import pytest

import terra_dyn
from terra_dyn.report import recording

pytestmark = pytest.mark.usefixtures("fresh_terra_dyn")

LOG = []
SINK = io.StringIO()


class Fin:
    """Logs its own finalization."""

    def __init__(self, name):
        self.name = name

    def __del__(self):
        LOG.append(f"del {self.name}")


class Plain:
    def __init__(self, name):
        self.name = name


def pair_store():
    a, b = Fin("a1"), Fin("b1")
    LOG.append("step 1")
    a, b = Fin("a2"), Fin("b2")  # 3.13: STORE_FAST_STORE_FAST, both old values die here
    LOG.append("step 2")
    a, b = b, a  # a swap drops nothing
    LOG.append("step 3")
    a, b = 1, 2
    LOG.append("step 4")
    return a + b


def pair_store_one_finalizes():
    a, b = 0, Fin("b1")
    LOG.append("step 1")
    a, b = Fin("a2"), 5
    LOG.append("step 2")
    return b


def pair_store_same_object():
    a = b = Fin("shared")
    LOG.append("step 1")
    a, b = 1, 2  # the first store leaves it in b, the second lets it go
    LOG.append("step 2")
    return a + b


def pair_store_in_loop():
    a, b = Fin("a0"), Fin("b0")
    for i in range(3):
        a, b = Fin(f"a{i + 1}"), Fin(f"b{i + 1}")
        LOG.append(f"iteration {i}")
    return i


def store_then_load():
    x = Fin("x1")
    LOG.append("step 1")
    for i in range(2):
        x = Fin(f"x{i + 2}")
        LOG.append(x.name)
    return i


def store_and_load_on_one_line():
    x = Fin("x1")
    LOG.append("step 1")
    x = Fin("x2"); LOG.append(x.name)  # noqa: E702 - 3.13: STORE_FAST_LOAD_FAST drops x1
    LOG.append("step 2")
    return x.name


def comprehension_items():
    # 3.12+: inlined, y's stores drop nothing. 3.11: a function called with iter(the list);
    # the step code calling it kept the list in a temp too, so its items died after the
    # call in the list's teardown order, not c1 at the end of the loop and c2 with y
    names = [y.name for y in [Fin("c1"), Fin("c2")]]
    LOG.append("step 1")
    return names


def attribute_overwrite():
    o = Plain("o")
    o.held = Fin("h1")
    LOG.append("step 1")
    o.held = Fin("h2")
    LOG.append("step 2")
    del o.held
    LOG.append("step 3")
    return o.name


def item_overwrites():
    d = {"k": Fin("d1")}
    lst = [Fin("l1"), Fin("l2")]
    LOG.append("step 1")
    d["k"] = Fin("d2")
    LOG.append("step 2")
    lst[0] = Fin("l3")
    LOG.append("step 3")
    del lst[0]
    LOG.append("step 4")
    lst.clear()
    LOG.append("step 5")
    d.update({"k": 0})
    LOG.append("step 6")
    return len(d) + len(lst)


def dict_clear():
    d = {"k": Fin("d1"), "j": Fin("d2")}
    LOG.append("step 1")
    d.clear()
    LOG.append("step 2")
    return len(d)


def cell_overwrite():
    # c1 was made by a call that broke: before, the trampoline passed the resume function a
    # new tuple (the values and the closure) and the breaking frame's own tuple kept c1
    c = Fin("c1")

    def read():
        return c.name

    LOG.append(read())
    c = Fin("c2")
    LOG.append(read())
    return read()


def weakref_callback():
    o = Plain("w")
    r = weakref.ref(o, lambda _: LOG.append("callback"))
    LOG.append("step 1")
    del o
    LOG.append("step 2")
    return r() is None


def weakref_finalize():
    o = Plain("f")
    weakref.finalize(o, LOG.append, "finalize")
    LOG.append("step 1")
    o = None
    LOG.append("step 2")
    return o


CASES = [pair_store, pair_store_one_finalizes, pair_store_same_object, pair_store_in_loop, store_then_load,
         store_and_load_on_one_line, comprehension_items,
         attribute_overwrite, item_overwrites, dict_clear, cell_overwrite, weakref_callback, weakref_finalize]


def _logged(fn):
    LOG.clear()
    result = fn()
    LOG.append("returned")
    out = list(LOG)
    LOG.clear()
    return result, out


@pytest.mark.parametrize("fn", CASES, ids=lambda f: getattr(f, "__name__", None))
def test_finalizers_run_where_python_runs_them(fn):
    plain = _logged(fn)
    opt = terra_dyn.optimize(fn, backend="interpreter")
    assert _logged(opt) == plain
    assert _logged(opt) == plain  # the cached translation too


def test_a_swap_does_not_break():
    def swap(x):
        a, b = x, x + 1
        a, b = b, a
        return a - b

    import torch

    x = torch.ones(3)
    with recording() as rec:
        out = terra_dyn.optimize(swap, backend="interpreter")(x)
    assert torch.equal(out, swap(x))
    assert not rec.report().breaks


def test_an_imported_module_with_a_finalizer_is_no_break():
    """sys.modules holds an imported package: `import pkg.sub as F` dropping the package from
    the stack cannot finalize it, even when someone registered weakref.finalize on it."""
    import types

    import torch

    pkg = types.ModuleType("terra_dyn_test_pkg")
    pkg.__path__ = []
    sub = types.ModuleType("terra_dyn_test_pkg.sub")
    sub.scale = 3.0
    pkg.sub = sub
    sys.modules.update({pkg.__name__: pkg, sub.__name__: sub})
    weakref.finalize(pkg, LOG.append, "package finalized")

    def f(x):
        import terra_dyn_test_pkg.sub as m
        return x * m.scale

    x = torch.ones(3)
    try:
        with recording() as rec:
            out = terra_dyn.optimize(f, backend="interpreter")(x)
        assert torch.equal(out, f(x))
        assert not rec.report().breaks
        assert "package finalized" not in LOG
    finally:
        del sys.modules[pkg.__name__], sys.modules[sub.__name__]



def _takes(a, k=None):
    LOG.append("step 1")
    del k
    LOG.append("step 2")
    del a
    LOG.append("step 3")
    return 1


class _Holder:
    def method(self, a):
        LOG.append("step 1")
        del a
        LOG.append("step 2")
        return 2


def _positional(take):
    return take(Fin("a"), Fin("k"))


def _keyword(take):
    return take(Fin("a"), k=Fin("k"))


def _method(take):
    if take is _takes:
        return _Holder().method(Fin("m"))

    class Fast(_Holder):
        method = terra_dyn.optimize(_Holder.method, backend="interpreter")

    return Fast().method(Fin("m"))


@pytest.mark.parametrize("call", [_positional, _keyword, _method])
def test_an_argument_deleted_in_the_body_dies_there(call):
    # before: the optimized callable (a C callable) left its arguments on the caller's
    # stack for the whole call, so `del a` finalized nothing and a died after the return
    gc.collect()  # an earlier test's module finalizer
    LOG.clear()
    plain = _logged(lambda: call(_takes))
    fast = terra_dyn.optimize(_takes, backend="interpreter")
    assert _logged(lambda: call(fast)) == plain
    assert _logged(lambda: call(fast)) == plain  # cached


def test_a_translation_made_for_a_plain_argument_is_not_reused_for_a_finalizing_one():
    # the first calls pass plain objects (or None): `del a` / `del k` were judged harmless
    # with nothing guarding what that rested on, and a later call with finalizing objects
    # reused the translation, so they died at the return instead of at their `del`
    gc.collect()
    fast = terra_dyn.optimize(_takes, backend="interpreter")
    calls = [lambda take: take(Plain("a")), lambda take: take(Plain("a"), k=None),
             lambda take: take(Plain("a"), k=Fin("k")), lambda take: take(Fin("a"), k=Fin("k")),
             lambda take: take(Fin("a"))]
    for call in calls:
        assert _logged(lambda: call(fast)) == _logged(lambda: call(_takes))
