"""Layer norm's forward on CPU in one pass over each row for its statistics, then the output
pass (the CPU backend's decomposition table, decompositions.row_moments_one_pass): float32
sums the values and their squares in float64; float64 sums them shifted by each row's first
element, read through x's own pointer (no view step). Values, dtypes and shapes of (out,
mean, rstd) equal eager's on 1 and 2 threads, also where the mean is far larger than the
spread (a plain sum of squares loses the variance there), for rows of one element, bf16,
multi-dim normalized shapes."""
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


def test_bfloat16_layer_norm_equals_eager():
    x = torch.randn(6, 64)
    w, b = torch.rand(64) + 0.5, torch.randn(64)
    check(_ln((64,)), x.bfloat16(), w.bfloat16(), b.bfloat16(), atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("shape, normalized", [((4, 1024), (1024,)), ((3, 5, 16), (5, 16)), ((2, 3, 300), (300,))])
@pytest.mark.parametrize("affine", [True, False])
def test_float64_layer_norm_is_one_statistics_pass_and_equals_eager(shape, normalized, affine):
    x = torch.randn(shape, dtype=torch.float64) * 3 + 1
    w, b = torch.rand(normalized, dtype=torch.float64) + 0.5, torch.randn(normalized, dtype=torch.float64)
    compiled = check(_ln(normalized, affine), x, w, b, expect_kernels=1)
    assert _row_loops(compiled) == 2, compiled.kernels[0].text  # statistics, output (3 before)
    program = next(iter(compiled.programs.values()))
    # the shift is read through x's pointer: the graph is the kernel alone, no view step
    assert "slice" not in program.gm.code and "in0[x * " in compiled.kernels[0].text


@pytest.mark.parametrize("offset", [1e6, 1e8, -3e9])
def test_float64_a_large_mean_keeps_float64_accuracy(offset):
    # E[x^2] - mean^2 without the shift: at 1e8 the squares' rounding (1e16 * 1e-16) is four
    # times the variance (0.25): rstd and every output come out wrong
    x = torch.randn(8, 512, dtype=torch.float64) * 0.5 + offset
    w, b = torch.ones(512, dtype=torch.float64), torch.zeros(512, dtype=torch.float64)
    ulp_out = torch.finfo(torch.float64).eps * abs(offset) / 0.5
    check(_ln((512,)), x, w, b, atol=max(4 * ulp_out, 1e-7), rtol=1e-7)


def test_float64_a_first_element_far_from_the_mean_keeps_accuracy():
    # the shift is each row's first value: the worst case is an outlier there, which the
    # bound (k - mean)^2 <= n * var keeps to ~n * eps relatively
    x = torch.randn(4, 1000, dtype=torch.float64) * 1e-3 + 1e6
    x[:, 0] = torch.tensor([1e6 + 1e3, 1e6 - 1e4, 0.0, 3e9], dtype=torch.float64)
    w, b = torch.ones(1000, dtype=torch.float64), torch.zeros(1000, dtype=torch.float64)
    check(_ln((1000,)), x, w, b)


def test_a_nan_row_gives_eagers_nan():
    # (an inf row: eager's mean is nan, ours inf, in the two-pass form before too)
    x = torch.randn(4, 32)
    x[2, 5] = float("nan")
    w, b = torch.ones(32), torch.zeros(32)
    check(_ln((32,)), x, w, b, atol=1e-5, rtol=1e-5)
