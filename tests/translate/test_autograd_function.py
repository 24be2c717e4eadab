"""A torch.autograd.Function applied in translated code (transformers' BloomGelu calls
GeLUFunction.apply on every forward): with grad mode off its forward is inlined, one graph;
with grad mode on it runs natively. Each against eager."""
import torch

import terra_dyn
from terra_dyn import report


class Gelu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return torch.tanh(x) * scale

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (1 - torch.tanh(x) ** 2) * ctx.scale, None


class Same(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x

    @staticmethod
    def backward(ctx, grad):
        return grad


def f(x):
    return Gelu.apply(x + 1, 2.0) * 3


def test_apply_with_grad_off_is_one_graph(fresh_terra_dyn):
    x = torch.randn(4, 3)
    fast = terra_dyn.optimize(f, backend="interpreter")
    with torch.no_grad(), report.recording() as rec:
        got = fast(x)
    torch.testing.assert_close(got, f(x))
    assert (rec.report().graph_count, rec.report().break_count) == (1, 0)


def test_apply_with_grad_on_keeps_its_backward(fresh_terra_dyn):
    x = torch.randn(4, 3, requires_grad=True)
    fast = terra_dyn.optimize(f, backend="interpreter")
    fast(x).sum().backward()
    ours, x.grad = x.grad, None
    f(x).sum().backward()
    torch.testing.assert_close(ours, x.grad)
    with torch.no_grad():  # the other grad mode gets its own translation
        torch.testing.assert_close(fast(x), f(x))


def test_input_returned_as_it_is_comes_back_as_a_view(fresh_terra_dyn):
    def g(x):
        y = Same.apply(x)
        return y is x, y + 1

    x = torch.randn(3)
    with torch.no_grad():
        ours = terra_dyn.optimize(g, backend="interpreter")(x)
        expected = g(x)
    assert ours[0] == expected[0]
    torch.testing.assert_close(ours[1], expected[1])


CALLS = []


class Logged(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        CALLS.append("forward")  # a Python effect: the apply cannot be a node
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        return grad * 2


class Doubles(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.mul_(2)  # in place on its input

    @staticmethod
    def backward(ctx, grad):
        return grad * 2


def _grads_against_eager(fn, backend="interpreter"):
    """fn's outputs and input gradients optimized against eager, and the run's report."""
    x = torch.randn(4, 3, requires_grad=True)
    fast = terra_dyn.optimize(fn, backend=backend)
    with report.recording() as rec:
        ours = fast(x)
        ours.sum().backward()
    ours_grad, x.grad = x.grad, None
    expected = fn(x)
    expected.sum().backward()
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(ours_grad, x.grad)
    assert ours.requires_grad and ours.grad_fn is not None
    return rec.report()


def test_apply_with_grad_on_is_one_node_of_the_graph(fresh_terra_dyn):
    """Grad mode on (a training step): the graph calls the real apply, so autograd records
    Gelu's node and its own backward runs."""
    rep = _grads_against_eager(lambda x: Gelu.apply(x.sin() + 1, 2.0).cos() * 3)
    assert (rep.graph_count, rep.break_count) == (1, 0)


def test_apply_node_under_the_cpu_backend(fresh_terra_dyn):
    _grads_against_eager(lambda x: Gelu.apply(x.sin() + 1, 2.0).cos() * 3, backend="cpu")


def test_a_forward_with_a_python_effect_still_runs_natively(fresh_terra_dyn):
    CALLS.clear()
    rep = _grads_against_eager(lambda x: Logged.apply(x + 1) * 3)
    assert CALLS == ["forward", "forward"]  # once optimized, once eager: no translation-time run
    assert rep.break_count >= 1


def test_a_forward_changing_its_input_in_place_still_runs_natively(fresh_terra_dyn):
    rep = _grads_against_eager(lambda x: Doubles.apply(x + 1) * 3)
    assert rep.break_count >= 1
