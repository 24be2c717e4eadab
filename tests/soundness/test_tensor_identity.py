"""`a is b` between tensors where one is made in the graph: an op may hand back its input
itself (`x.contiguous()` of a contiguous x, `x.float()` of a float x, `x.to(x.dtype)`, dropout
when not training, in-place ops), and eager Python then says True. terra_dyn said False for
every such pair (operators.is_same compared FX nodes only): a silent difference for code that
checks `if y is x` to skip a copy. Now the op's example (meta or fake tensor) says, as the op
on real tensors does; examples of different kinds make it unknown (the frame runs natively).
"""
import pytest
import torch
import torch.nn.functional as F

import terra_dyn


@pytest.fixture(autouse=True)
def _fresh():
    terra_dyn.reset()
    yield
    terra_dyn.reset()


def _identities(x):
    a = x + 1
    b = x + 1
    c, d = torch.zeros(3), torch.zeros(3)
    e, g = x.float(), x.float()
    return (a is b, c is d, x.detach() is x, x.view(x.shape) is x, x[:] is x, x.clone() is x, e is g, e is x,
            x.to(torch.float64) is x, x.to(torch.float32) is x, x.reshape(x.shape) is x, x.flatten() is x,
            x.sum(0).flatten() is x.sum(0), x.t().contiguous() is x.t(), x.cpu() is x, x.type_as(x) is x,
            torch.atleast_1d(x) is x, F.dropout(x, 0.3, False) is x, x.expand_as(x) is x, x.t().t() is x,
            x.contiguous() is x, x.contiguous() is not x)


def _in_place(x):
    return x.add_(1) is x, x.relu_() is x, x.mul_(2) is not x


def _made_here(x):
    y = x * 2
    return y.contiguous() is y, y.float() is y, y.t() is y, y.t().contiguous() is y, y.sum(0) is y


@pytest.mark.parametrize("fn", [_identities, _in_place, _made_here])
def test_identity_of_a_tensor_an_op_hands_back_is_eager_s(fn):
    fast = terra_dyn.optimize(fn, backend="interpreter")
    torch.manual_seed(0)
    base = torch.randn(4, 3)
    for x in (torch.randn(3, 4), base.t(), torch.randn(3, 4)):  # contiguous, not, contiguous again
        expected = fn(x.clone())
        assert fast(x.clone()) == expected
    assert any(expected) and not all(expected)


def test_identity_after_sizes_turned_symbolic_is_eager_s():
    def f(x):
        y = x * 2
        return x.contiguous() is x, (x + 1) is x, x.float() is x, y.contiguous() is y, \
            y.t().contiguous() is y, x.sum(0) is x, y

    fast = terra_dyn.optimize(f, backend="interpreter")
    for n in (3, 5, 7, 9):
        for x in (torch.randn(n, 4), torch.randn(4, n).t()):
            expected, got = f(x), fast(x)
            assert got[:-1] == expected[:-1]
            torch.testing.assert_close(got[-1], expected[-1], rtol=0, atol=0)


def test_a_returned_input_stays_the_input():
    def f(x):
        return x.contiguous()

    fast = terra_dyn.optimize(f, backend="interpreter")
    x = torch.randn(3, 4)
    assert fast(x) is x and fast(x) is x
    xt = x.t()
    assert fast(xt) is not xt and torch.equal(fast(xt), xt)


def test_identity_of_a_meta_value_an_op_on_fakes_hands_back():
    """With symbolic sizes, an op mixing a meta-propagated value (int sizes) and a symbolic one
    runs under FakeTensorMode; its result (the first's own fake, handed back) was wrapped as a
    fresh meta tensor, so `s.type_as(x) is s` was False (eager: True)."""
    def f(x, w):
        s = w * 2
        t = s.type_as(x)
        u = x.sum(0)
        v = u.type_as(x)
        return t is s, v is u, s.to(x.dtype) is s, u.to(x) is u, s.double() is s, (t + x).sum()

    fast = terra_dyn.optimize(f, backend="interpreter")
    w = torch.randn(4)
    for n in (3, 5, 7, 9):
        x = torch.randn(n, 4)
        expected, got = f(x, w), fast(x, w)
        assert got[:-1] == expected[:-1]
        torch.testing.assert_close(got[-1], expected[-1], rtol=0, atol=0)
