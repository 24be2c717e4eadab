"""Guards and recompiles: a cached translation is reused exactly when it is still valid.

Each test compares with eager PyTorch on the same inputs and counts translations through
the report records (one GraphRecord per translated frame here) and the hook's cache.
"""
import warnings

import pytest
import torch

import terra_dyn
from terra_dyn import _C, report

SCALE = 2.0


def _run(fast, *args):
    with report.recording() as rec:
        out = fast(*args)
    return out, rec.report()


def test_same_shapes_reuse_one_translation(fresh_terra_dyn):
    def f(x, y):
        return torch.relu(x) * y + 1

    fast = terra_dyn.optimize(f, backend="interpreter")
    x, y = torch.randn(4, 3), torch.randn(4, 3)
    out, rep = _run(fast, x, y)
    torch.testing.assert_close(out, f(x, y))
    assert rep.graph_count == 1
    out, rep = _run(fast, torch.randn(4, 3), torch.randn(4, 3))
    assert rep.graph_count == 0 and not rep.recompiles
    assert len(_C.cache_entries(f.__code__)) == 1


@pytest.mark.parametrize("change", ["shape", "dtype", "requires_grad", "strides"])
def test_tensor_metadata_change_recompiles(fresh_terra_dyn, change):
    def f(x):
        return (x * 2).sum(0)

    fast = terra_dyn.optimize(f, backend="interpreter")
    x = torch.randn(4, 3)
    torch.testing.assert_close(fast(x), f(x))
    other = {
        "shape": torch.randn(5, 3),
        "dtype": torch.randn(4, 3, dtype=torch.float64),
        "requires_grad": torch.randn(4, 3, requires_grad=True),
        "strides": torch.randn(3, 4).t(),
    }[change]
    out, rep = _run(fast, other)
    torch.testing.assert_close(out, f(other))
    assert out.requires_grad == f(other).requires_grad
    assert len(rep.recompiles) == 1 and rep.graph_count == 1
    assert len(_C.cache_entries(f.__code__)) == 2


def test_python_value_argument_guarded_by_value(fresh_terra_dyn):
    def f(x, mode):
        if mode == "double":
            return x * 2
        return x - 1

    fast = terra_dyn.optimize(f, backend="interpreter")
    x = torch.randn(3)
    for mode in ["double", "minus", "double", "minus"]:
        torch.testing.assert_close(fast(x, mode), f(x, mode))
    assert len(_C.cache_entries(f.__code__)) == 2


def test_global_changed_recompiles(fresh_terra_dyn):
    global SCALE

    def f(x):
        return x * SCALE

    fast = terra_dyn.optimize(f, backend="interpreter")
    x = torch.randn(3)
    try:
        torch.testing.assert_close(fast(x), x * 2.0)
        SCALE = 3.0
        out, rep = _run(fast, x)
        torch.testing.assert_close(out, x * 3.0)
        assert len(rep.recompiles) == 1
    finally:
        SCALE = 2.0


def test_module_swapped_recompiles(fresh_terra_dyn):
    holder = {"m": torch.nn.Linear(3, 2)}

    def f(x, m):
        return m(x).relu()

    fast = terra_dyn.optimize(f, backend="interpreter")
    x = torch.randn(4, 3)
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    torch.testing.assert_close(fast(x, a), f(x, a))
    out, rep = _run(fast, x, b)
    torch.testing.assert_close(out, f(x, b))
    assert len(rep.recompiles) == 1
    del holder


def test_parameter_replaced_and_updated_in_place(fresh_terra_dyn):
    m = torch.nn.Linear(3, 2)
    fast = terra_dyn.optimize(m, backend="interpreter")
    x = torch.randn(4, 3)
    torch.testing.assert_close(fast(x), m(x))
    with torch.no_grad():
        m.weight.add_(1.0)  # in place: same parameter object, the graph reads it at run time
    out, rep = _run(fast, x)
    torch.testing.assert_close(out, m(x))
    assert not rep.recompiles
    m.weight = torch.nn.Parameter(torch.randn(2, 3))  # a new object: guard fails
    out, rep = _run(fast, x)
    torch.testing.assert_close(out, m(x))
    assert len(rep.recompiles) == 1


def test_training_vs_eval(fresh_terra_dyn):
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5))
    fast = terra_dyn.optimize(m, backend="interpreter")
    x = torch.randn(8, 4)
    m.eval()
    torch.testing.assert_close(fast(x), m(x))
    m.train()
    torch.manual_seed(1)
    got = fast(x)
    torch.manual_seed(1)
    torch.testing.assert_close(got, m(x))
    m.eval()
    out, rep = _run(fast, x)
    torch.testing.assert_close(out, m(x))
    assert not rep.recompiles  # the eval entry is still cached


def test_grad_mode_is_guarded(fresh_terra_dyn):
    w = torch.randn(3, requires_grad=True)

    def f(x):
        return x * w

    fast = terra_dyn.optimize(f, backend="interpreter")
    x = torch.randn(3)
    assert fast(x).requires_grad
    with torch.no_grad():
        out, rep = _run(fast, x)
    assert not out.requires_grad
    assert len(rep.recompiles) == 1


def test_recompile_limit_warns_once_and_runs_eagerly(fresh_terra_dyn, monkeypatch):
    monkeypatch.setattr(terra_dyn.config, "recompile_limit", 3)

    def f(x):
        return x + 1

    fast = terra_dyn.optimize(f, backend="interpreter")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in range(1, 8):  # a new number of dims each call (sizes alone would go symbolic)
            x = torch.randn([2] * n)
            torch.testing.assert_close(fast(x), x + 1)
    limit_warnings = [w for w in caught if "recompile_limit" in str(w.message)]
    assert len(limit_warnings) == 1
    assert "x shape changed" in str(limit_warnings[0].message)  # names the variable that kept changing
    assert len(_C.cache_entries(f.__code__)) == 3


def test_changing_number_becomes_graph_input(fresh_terra_dyn):
    def f(x, step):
        return x * step + step

    fast = terra_dyn.optimize(f, backend="interpreter")
    x = torch.randn(3)
    with report.recording() as rec:
        for step in range(1, 12):
            torch.testing.assert_close(fast(x, step), f(x, step))
    # one recompile makes `step` a graph input; no further translations
    assert len(rec.report().recompiles) == 1


# ----------------------------------------------------------------------------- bound methods
# Reading `Cls.a_classmethod` or `obj.method` makes a new bound-method object each time, so
# the guard is on the function and on what it is bound to, never on the method object.

class _Scale:
    def __init__(self, k):
        self.k = k

    def apply(self, x):
        return x * self.k

    @classmethod
    def unit(cls):
        return cls(1.0)


def test_classmethod_reads_do_not_recompile_and_rebinding_is_seen():
    import types as _types

    holder = _types.SimpleNamespace(fn=_Scale(2.0).apply)

    def f(x):
        return holder.fn(x) + _Scale.unit().apply(x)

    x = torch.randn(3)
    fast = terra_dyn.optimize(f, backend="interpreter")
    with report.recording() as rec:
        assert torch.equal(fast(x), f(x))
        assert torch.equal(fast(x), f(x))
        assert not rec.report().recompiles  # the classmethod read is a new object every call
        holder.fn = _Scale(3.0).apply  # same function, bound to another instance
        assert torch.equal(fast(x), f(x))
        holder.fn = _Scale(3.0).apply.__func__.__get__(_Scale(5.0))
        assert torch.equal(fast(x), f(x))
    terra_dyn.reset()
