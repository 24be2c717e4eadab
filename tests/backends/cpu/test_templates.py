"""Hand-written kernels for single ops (backends/cpu/templates.py): layer norm's backward is
one kernel whose three gradients equal eager's native_layer_norm_backward on 1 and 2 threads,
for every output mask, with and without weight and bias, f32 and f64; layouts it does not
handle run eager's op."""
import pytest
import torch

from .support import check

aten = torch.ops.aten


def _inputs(shape, normalized, dtype=torch.float32, weight=True, bias=True):
    x = torch.randn(shape, dtype=dtype) * 3 + 1
    w = torch.rand(normalized, dtype=dtype) + 0.5 if weight else None
    b = torch.randn(normalized, dtype=dtype) if bias else None
    _, mean, rstd = aten.native_layer_norm(x, list(normalized), w, b, 1e-5)
    return torch.randn(shape, dtype=dtype), x, mean, rstd, w, b


def _backward(normalized, mask, weight=True, bias=True):
    def fn(g, x, mean, rstd, *wb):
        w = wb[0] if weight else None
        b = wb[-1] if bias else None
        return aten.native_layer_norm_backward(g, x, list(normalized), mean, rstd, w, b, list(mask))
    return fn


def _template_kernels(compiled):
    return [k for k in compiled.kernels if k.name.startswith("layer_norm_backward")]


@pytest.mark.parametrize("shape, normalized", [((1, 8), (8,)), ((6, 40), (40,)), ((3, 5, 16), (5, 16)),
                                               ((64, 300), (300,))])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_layer_norm_backward_kernel_equals_eager(shape, normalized, dtype):
    g, x, mean, rstd, w, b = _inputs(shape, normalized, dtype)
    compiled = check(_backward(normalized, (True, True, True)), g, x, mean, rstd, w, b,
                     atol=1e-4 if dtype == torch.float32 else None, rtol=1e-4 if dtype == torch.float32 else None)
    assert len(_template_kernels(compiled)) == 1, compiled.describe()


@pytest.mark.parametrize("mask", [(True, False, False), (False, True, True), (False, True, False),
                                  (False, False, True), (True, True, False), (True, False, True)])
def test_layer_norm_backward_kernel_output_masks(mask):
    g, x, mean, rstd, w, b = _inputs((7, 33), (33,))
    compiled = check(_backward((33,), mask), g, x, mean, rstd, w, b, atol=1e-4, rtol=1e-4, what=str(mask))
    assert len(_template_kernels(compiled)) == 1, compiled.describe()


@pytest.mark.parametrize("weight, bias", [(False, False), (False, True), (True, False)])
def test_layer_norm_backward_kernel_without_weight_or_bias(weight, bias):
    g, x, mean, rstd, w, b = _inputs((5, 24), (24,), weight=weight, bias=bias)
    mask = (True, weight, bias)
    args = [g, x, mean, rstd] + [t for t in (w, b) if t is not None]
    compiled = check(_backward((24,), mask, weight, bias), *args, atol=1e-4, rtol=1e-4)
    assert len(_template_kernels(compiled)) == 1, compiled.describe()


def test_layer_norm_backward_strided_grad_runs_eagers_op():
    g, x, mean, rstd, w, b = _inputs((12, 20), (20,))
    g = torch.randn(20, 12).t()  # a transposed gradient: no kernel, eager's op (same values)
    compiled = check(_backward((20,), (True, True, True)), g, x, mean, rstd, w, b)
    assert not _template_kernels(compiled), compiled.describe()


def test_layer_norm_backward_half_precision_runs_eagers_op():
    g, x, mean, rstd, w, b = _inputs((4, 16), (16,), dtype=torch.bfloat16)
    compiled = check(_backward((16,), (True, True, True)), g, x, mean, rstd, w, b)
    assert not _template_kernels(compiled), compiled.describe()
