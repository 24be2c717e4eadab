"""Layer norm's forward on CPU in one pass over each row for its statistics (float32: sum and
sum of squares in float64, the CPU backend's decomposition table), then the output pass:
values, dtypes and shapes of (out, mean, rstd) equal eager's on 1 and 2 threads, also where
the mean is far larger than the spread (var = E[x^2] - mean^2 in float64) and for rows of
one element, bf16, multi-dim normalized shapes; float64 keeps the two-pass form."""
import pytest
import torch

from .support import check

aten = torch.ops.aten


def _row_loops(compiled):
    return sum(k.text.count("for (int64_t r ") for k in compiled.kernels)


def _ln(normalized, affine=True):
    def fn(x, w, b):
        return aten.native_layer_norm(x, list(normalized), w if affine else None, b if affine else None, 1e-5)
    return fn


@pytest.mark.parametrize("shape, normalized", [((4, 1024), (1024,)), ((3, 5, 16), (5, 16)), ((2, 3, 300), (300,))])
@pytest.mark.parametrize("affine", [True, False])
def test_float32_layer_norm_is_one_statistics_pass_and_equals_eager(shape, normalized, affine):
    x = torch.randn(shape) * 3 + 1
    w, b = torch.rand(normalized) + 0.5, torch.randn(normalized)
    compiled = check(_ln(normalized, affine), x, w, b, atol=1e-5, rtol=1.3e-6, expect_kernels=1)
    assert _row_loops(compiled) == 2, compiled.kernels[0].text  # statistics, output (3 before)


@pytest.mark.parametrize("offset", [1e3, 1e4, -3e4])
def test_a_large_mean_keeps_float32_accuracy(offset):
    x = torch.randn(8, 512) * 0.5 + offset
    w, b = torch.ones(512), torch.zeros(512)
    # float32 holds x to ~eps * |offset|; a mean one ulp apart moves every output by ulp / std
    ulp_out = torch.finfo(torch.float32).eps * abs(offset) / 0.5
    compiled = check(_ln((512,)), x, w, b, atol=4 * ulp_out, rtol=1e-5)
    exact = aten.native_layer_norm(x.double(), [512], None, None, 1e-5)
    ours = compiled(x, w, b)
    # as close to the float64 result as eager's float32 kernel is (within 2x + float32 rounding)
    for o, e, ref in zip(ours, aten.native_layer_norm(x, [512], w, b, 1e-5), exact):
        assert (o.double() - ref).abs().max() <= 2 * (e.double() - ref).abs().max() + 1e-5 * ref.abs().max()


def test_rows_of_one_element_equal_eager():
    x = torch.randn(7, 1) * 3
    check(_ln((1,)), x, torch.rand(1) + 0.5, torch.randn(1), atol=1e-5, rtol=1e-5)


def test_bfloat16_and_float64_layer_norm_equal_eager():
    x = torch.randn(6, 64)
    w, b = torch.rand(64) + 0.5, torch.randn(64)
    check(_ln((64,)), x.bfloat16(), w.bfloat16(), b.bfloat16(), atol=2e-2, rtol=2e-2)
    compiled = check(_ln((64,)), x.double(), w.double(), b.double())
    assert _row_loops(compiled) == 3  # float64: the two-pass form (mean, then centered squares)


def test_a_nan_row_gives_eagers_nan():
    # (an inf row: eager's mean is nan, ours inf, in the two-pass form before too)
    x = torch.randn(4, 32)
    x[2, 5] = float("nan")
    w, b = torch.ones(32), torch.zeros(32)
    check(_ln((32,)), x, w, b, atol=1e-5, rtol=1e-5)
