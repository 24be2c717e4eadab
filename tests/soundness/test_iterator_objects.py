"""An iterator the frame hands on (returned, passed to a call, alive at a break) is
CPython's own: its type, `__reduce__` (pickle, copy) and what it yields are those of the
iterator plain Python makes, consumed or not (CPython's test_iter
test_reduce_mutating_builtins_iter: a str iterator was rebuilt as a tuple iterator)."""
import pickle

import pytest
import torch

import terra_dyn

pytestmark = pytest.mark.usefixtures("fresh_terra_dyn")

MAKE = ["iter(s)", "reversed(s)", "iter(tuple(s))"]
CONSUME = ["pass", "next(it)", "list(it)"]
SEQS = ["xyz", "\u00e9ab", [1, 2, 3], (1, 2, 3), b"ab", range(3), "q"]


def _function(make, consume):
    ns = {}
    exec(f"def f(s):\n    it = {make}\n    {consume}\n"
         f"    return type(it).__name__, it.__reduce__(), pickle.dumps(it), list(it)\n", {"pickle": pickle}, ns)
    return ns["f"]


@pytest.mark.parametrize("make", MAKE)
@pytest.mark.parametrize("consume", CONSUME)
def test_an_escaping_iterator_is_cpythons_own(make, consume):
    f = _function(make, consume)
    fast = terra_dyn.optimize(f, backend="interpreter")
    for s in SEQS:
        if make.startswith("reversed") and isinstance(s, bytes):
            continue  # (bytes are not reversible)
        expected = f(s)
        assert fast(s) == expected, (make, consume, s)
        assert fast(s) == expected, (make, consume, s)


@pytest.mark.parametrize("kind", ["keys", "values", "items"])
@pytest.mark.parametrize("reverse", [False, True])
def test_an_exhausted_dict_iterator_keeps_its_type(kind, reverse):
    def f(d):
        view = getattr(d, kind)()
        it = reversed(view) if reverse else iter(view)
        list(it)
        return type(it).__name__, it.__reduce__()

    assert terra_dyn.optimize(f, backend="interpreter")({1: 2}) == f({1: 2})


def test_a_tuple_iterator_over_graph_values_keeps_its_index():
    def f(x):
        it = iter((x, x + 1))
        next(it)
        return type(it).__name__, it.__reduce__()[2:], list(it)

    x = torch.ones(1)
    plain, fast = f(x), terra_dyn.optimize(f, backend="interpreter")(x)
    assert plain[:2] == fast[:2] and torch.equal(plain[2][0], fast[2][0])


def test_iter_with_a_sentinel_runs():
    def f(x):
        it = iter([1, 2, 0, 3].pop, 2)
        return x + sum(it)

    assert torch.equal(terra_dyn.optimize(f, backend="interpreter")(torch.zeros(1)), f(torch.zeros(1)))
