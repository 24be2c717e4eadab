"""ATen steps between kernels put back together (cpu/composite_steps.py): a decomposed linear
layer or batched matmul runs as one `linear` / `matmul` call with the same bits as eager's;
steps that read no graph input (a causal mask) run once, unless their value reaches the
caller, who may change it."""
import pytest
import torch
import torch.nn.functional as F

from terra_dyn.backends.cpu import compile_graph

from ..support import trace
from .support import check


def _forward_code(compiled):
    return next(iter(compiled.programs.values())).gm.code


@pytest.mark.parametrize("shape,bias", [
    ((2, 8, 64), True), ((2, 8, 64), False), ((16, 64), True), ((16, 64), False), ((2, 3, 4, 64), False),
], ids=["3d_bias", "3d", "2d_bias", "2d", "4d"])
def test_a_linear_layer_is_one_call_with_eagers_bits(shape, bias):
    torch.manual_seed(0)
    x, w, b = torch.randn(*shape), torch.randn(32, 64), torch.randn(32)

    def fn(x, w, b):
        y = F.linear(x, w, b if bias else None)
        return y, torch.tanh(y) * 2 + 1  # a kernel after it: the graph is lowered

    compiled = check(fn, x, w, b, expect_kernels=1)
    code = _forward_code(compiled)
    assert "linear(" in code and "mm(" not in code and ".t(" not in code and "torch.t(" not in code, code
    assert torch.equal(compiled(x, w, b)[0], fn(x, w, b)[0])


def test_a_bias_on_a_4d_input_keeps_eagers_matmul_and_add():
    x, w, b = torch.randn(2, 3, 4, 64), torch.randn(32, 64), torch.randn(32)

    def fn(x, w, b):
        y = F.linear(x, w, b)
        return y, torch.tanh(y) * 2 + 1

    compiled = check(fn, x, w, b)
    assert torch.equal(compiled(x, w, b)[0], fn(x, w, b)[0])


@pytest.mark.parametrize("a_shape,b_shape,transpose", [
    ((2, 4, 8, 16), (2, 4, 16, 8), False),
    ((2, 4, 8, 16), (2, 4, 8, 16), True),   # a transposed operand: matmul copies it
    ((2, 1, 8, 16), (1, 3, 16, 8), False),  # broadcast batch dims
    ((3, 8, 16), (3, 16, 5), False),
], ids=["4d", "transposed", "broadcast", "3d"])
def test_a_batched_matmul_is_one_call_with_eagers_bits(a_shape, b_shape, transpose, monkeypatch):
    import terra_dyn.config as config
    monkeypatch.setattr(config, "cpu_min_elements", 1)  # matmul's copies stay single ATen ops
    torch.manual_seed(0)
    a, b = torch.randn(*a_shape), torch.randn(*b_shape)

    def fn(a, b):
        y = a @ (b.transpose(-2, -1) if transpose else b)
        return y, torch.tanh(y) * 2 + 1

    compiled = check(fn, a, b, expect_kernels=1)
    code = _forward_code(compiled)
    assert "matmul(" in code and "bmm(" not in code and "expand" not in code, code
    assert torch.equal(compiled(a, b)[0], fn(a, b)[0])


def _causal_softmax(x):
    n = x.shape[-1]
    mask = torch.where(torch.arange(n)[:, None] >= torch.arange(n)[None, :], 0.0, float("-inf"))
    return torch.softmax(x + mask.expand(x.shape), -1)


def test_a_mask_built_from_no_input_is_made_once():
    x = torch.randn(2, 8, 8)
    compiled = check(_causal_softmax, x, expect_kernels=1)
    code = _forward_code(compiled)
    assert "arange" not in code and "_terra_constant" in code, code
    for _ in range(2):
        torch.testing.assert_close(compiled(x), _causal_softmax(x))


def test_a_constant_that_reaches_the_caller_is_made_per_call():
    x = torch.randn(4, 8)

    def fn(x):
        steps = torch.arange(x.shape[1]) * 2  # returned: the caller may change it
        return torch.tanh(x) * 2 + 1, steps, (steps + 1).view(2, 4)

    compiled = check(fn, x)
    first = compiled(x)
    first[1].add_(100)
    first[2].add_(100)
    for got, want in zip(compiled(x), fn(x)):
        torch.testing.assert_close(got, want)


def test_a_graph_writing_in_place_folds_nothing():
    x = torch.randn(4, 8)

    def fn(x):
        c = torch.zeros(8)
        c.add_(1)  # an in-place step: folding `zeros` would keep the written value
        return torch.tanh(x + c) * 2 + 1

    compiled = check(fn, x)
    for _ in range(2):
        torch.testing.assert_close(compiled(x), fn(x))


def test_random_numbers_are_drawn_on_every_call():
    x = torch.randn(4, 8)

    def fn(x):
        return torch.tanh(x + torch.rand(x.shape[1])) * 2 + 1

    compiled = compile_graph(trace(fn, 1), [x])
    assert compiled.kernels
    assert not torch.equal(compiled(x), compiled(x))
