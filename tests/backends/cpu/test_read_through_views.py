"""A kernel input that is a view of another input of the same kernel (x[:, :1], x[1:],
x[2], x.t()) is read through that input's pointer at the view's strides and offset: the
rewritten graph has no view step for it (cpu/read_through.py). Values equal eager's
on 1 and 2 threads; a view also used elsewhere stays a step; the group's ATen rerun (an
integer division by zero) still computes the view and raises eager's error."""
import pytest
import torch

from terra_dyn.backends.cpu import compile_graph

from ..support import trace
from .support import check

aten = torch.ops.aten


def _forward_code(compiled):
    return next(iter(compiled.programs.values())).gm.code


@pytest.mark.parametrize("fn", [
    lambda x: (x - x[:, :1]) * 2,
    lambda x: torch.tanh(x[:, 2:3] * x + x[1:2]),
    lambda x: x * x[2] + 1,
    lambda x: (x + x.t()) * 0.5,
    lambda x: torch.sum(x - x[:, 3:4], 1) + x[:, 5] * 2,
], ids=["first_column", "offset_slices", "select", "transpose", "reduction"])
def test_views_of_an_input_are_read_through_it(fn):
    x = torch.randn(8, 8)
    compiled = check(fn, x, expect_kernels=1)
    code = _forward_code(compiled)
    assert "slice" not in code and "select" not in code and ".t(" not in code and "permute" not in code, code
    assert compiled.kernels[0].text.count("const float* __restrict") == 1  # one pointer: x's


def test_a_view_used_outside_the_kernel_stays_a_step():
    x = torch.randn(6, 5)
    compiled = check(lambda x: ((x - x[:, :1]) * 2, x[:, :1].clone()), x)
    assert compiled.kernels


def test_a_view_of_an_aten_result_is_read_through_it():
    x, w = torch.randn(6, 5), torch.randn(5, 5)
    compiled = check(lambda x, w: (lambda y: torch.tanh(y - y[:, :1]))(x @ w), x, w, atol=1e-5, rtol=1e-5)
    assert "slice" not in _forward_code(compiled)


def test_integer_division_by_zero_reruns_with_the_view_and_raises_eagers_error():
    a = torch.tensor([[4, 5, 6], [7, 8, 9]], dtype=torch.int64)
    b = torch.tensor([[1, 0, 2], [1, 1, 1]], dtype=torch.int64)
    fn = lambda a, b: torch.div(a - a[:, :1] + 1, b, rounding_mode="floor") * 2  # noqa: E731
    with pytest.raises(RuntimeError) as eager_error:
        fn(a, b)
    compiled = compile_graph(trace(fn, 2), [a, b])
    assert compiled.kernels and "slice" not in _forward_code(compiled)
    with pytest.raises(RuntimeError) as ours:
        compiled(a, b)
    assert str(ours.value) == str(eager_error.value)
    ok = torch.ones(2, 3, dtype=torch.int64) * 2
    assert torch.equal(compiled(a, ok), fn(a, ok))
