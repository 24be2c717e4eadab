"""Tensor facts propagate on meta tensors with the device tracked beside them; a few ops go
through FakeTensorMode instead (device changes, data-dependent results, odd layouts).

Each test runs a function eagerly and optimized on fresh copies of the same inputs and
compares everything observable (harness.compare_outcomes); some also check which path the
translator took, because a wrong choice there is a wrong fact (a device, a requires_grad)
that only a later op would reveal.
"""
import copy

import pytest
import torch

import terra_dyn
from terra_dyn import report
from terra_dyn.translate import graph_state

from .harness import call, compare_outcomes, optimize


def check(fn, *args, graphs=None, breaks=None, make_args=None):
    """make_args: a function building fresh arguments (for tensors deepcopy refuses)."""
    fast = optimize(fn)
    for _ in range(2):  # the translation, then the cached code
        if make_args is not None:
            eager_args, fast_args = make_args(), make_args()
        else:
            eager_args, fast_args = copy.deepcopy(args), copy.deepcopy(args)
        eager = call(fn, eager_args, {})
        with report.recording() as rec:
            ours = call(fast, fast_args, {})
        problems = compare_outcomes(eager, ours)
        assert not problems, "; ".join(problems)
        if graphs is not None and rec.report().graphs:
            assert len(rec.report().graphs) == graphs
        if breaks is not None and rec.report().graphs:
            assert len(rec.report().breaks) == breaks
    terra_dyn.reset()
    return eager


@pytest.fixture
def fake_calls(monkeypatch):
    """How many ops propagated under FakeTensorMode."""
    calls = []
    original = graph_state.GraphState._propagate_fake

    def counting(self, kind, target, args, kwargs):
        calls.append(getattr(target, "__name__", target))
        return original(self, kind, target, args, kwargs)

    monkeypatch.setattr(graph_state.GraphState, "_propagate_fake", counting)
    return calls


def test_plain_ops_never_use_fake_mode(fake_calls):
    def f(x, w):
        h = torch.nn.functional.linear(x, w).relu()
        return (h.softmax(-1) * 2).sum(0), h.shape[1]

    check(f, torch.randn(4, 5), torch.randn(3, 5), graphs=1)
    assert fake_calls == []


def test_factory_with_device_of_an_input(fake_calls):
    def f(x):
        return x + torch.arange(x.shape[-1], device=x.device, dtype=x.dtype), torch.ones(2, 2, dtype=torch.bool)

    check(f, torch.randn(3, 4), graphs=1)
    assert fake_calls == []


def test_device_attributes_are_the_inputs_device():
    def f(x):
        y = x * 2
        return y.device, y.is_cpu, y.is_cuda, y.is_meta, str(y.device), y.get_device()

    out = check(f, torch.randn(3))
    assert out.value[0] == torch.device("cpu")


def test_to_dtype_stays_on_meta_and_cpu_goes_through_fake_mode_both_captured(fake_calls):
    def f(x):
        return x.to(torch.float64).cpu() * 3, x.double().dtype

    check(f, torch.randn(3), graphs=1, breaks=0)
    assert "to" not in fake_calls and "cpu" in fake_calls  # a dtype cast keeps the device


def test_cpu_scalar_tensor_mixes_with_any_tensor(fake_calls):
    def f(x, s):
        return x * s + torch.tensor(1.5)

    check(f, torch.randn(2, 3), torch.tensor(2.0), graphs=1)
    assert fake_calls == []


def test_requires_grad_and_leafness_follow_eager():
    w = torch.randn(3, requires_grad=True)

    def f(x, h):
        y = x * w
        return y.requires_grad, y.is_leaf, h.is_leaf, h.requires_grad, (x + 1).requires_grad

    x, v = torch.randn(3), torch.randn(3, requires_grad=True)
    check(f, make_args=lambda: (x.clone(), v * 2))


def test_in_place_on_a_non_leaf_input_that_requires_grad():
    w = torch.randn(4, requires_grad=True)

    def f(h):
        h.mul_(3)
        return (h + 1).sum()

    for _ in range(2):
        h_eager, h_ours = w * 2, w * 2
        eager = f(h_eager)
        ours = optimize(f)(h_ours)
        assert torch.equal(eager, ours) and torch.equal(h_eager, h_ours)
        g_eager, = torch.autograd.grad(eager, w)
        g_ours, = torch.autograd.grad(ours, w)
        assert torch.equal(g_eager, g_ours)
    terra_dyn.reset()


def test_in_place_on_a_leaf_that_requires_grad_raises_as_eager():
    def f(p):
        p.add_(1)
        return p

    check(f, torch.randn(3, requires_grad=True))


def test_input_views_with_offsets_and_strides():
    base = torch.randn(6, 8)

    def f(a, b):
        return a.view(-1), b.t().contiguous().view(-1), a.storage_offset()

    check(f, base[2:4], base[:, 1:5])  # the second .view raises in eager: non-contiguous

    def g(a):
        return a.reshape(-1) * 2, a.stride(), a.is_contiguous()

    check(g, base[1:, 2:], graphs=1)


def test_data_dependent_shapes_break_and_match_eager():
    def f(x):
        y = x * 2
        idx = torch.nonzero(y > 0)
        return idx.shape[0], y[y > 0].sum()

    check(f, torch.randn(10))


def test_shape_mismatch_raises_the_eager_exception():
    def f(x, y):
        return torch.matmul(x, y) + 1

    eager = check(f, torch.randn(2, 3), torch.randn(4, 5))
    assert isinstance(eager.error, RuntimeError)


def test_sparse_input_uses_fake_mode():
    def f(s, d):
        return torch.sparse.mm(s, d) * 2

    dense = torch.randn(3, 3)
    dense[dense < 0] = 0
    check(f, dense.to_sparse(), torch.randn(3, 2))


def test_integer_and_bool_tensor_ops():
    def f(i, m):
        return (i * 3) // 2, i.float().mean(), m & (i > 2), torch.where(m, i, -i)

    check(f, torch.arange(6), torch.tensor([True, False] * 3), graphs=1)
