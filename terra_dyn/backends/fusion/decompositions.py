"""Our own decompositions: composite ATen ops rewritten into the pointwise ops and the few
reductions (sum, amax, amin, argmax, argmin) that ops.py lowers, so that softmax, layer norm,
GELU and variance fuse into one kernel. Used as make_fx's decomposition_table.

    _softmax(x, dim)  ->  e = exp(x - amax(x, dim, keepdim)); e / sum(e, dim, keepdim)

Half-precision inputs are computed in float32 and cast back, as eager's kernels do.
"""
import math

import torch

aten = torch.ops.aten
_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _upcast(x):
    return x.to(torch.float32) if x.dtype in _LOW_PRECISION else x


def _dims(x, dim):
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        return list(range(x.dim()))
    dims = [dim] if isinstance(dim, int) else list(dim)
    return [d % max(x.dim(), 1) for d in dims]


def _count(x, dims):
    n = 1
    for d in dims:
        n *= x.shape[d] if x.dim() else 1
    return n


def softmax(x, dim, half_to_float):
    xf = _upcast(x)
    e = torch.exp(xf - torch.amax(xf, dim, keepdim=True))
    out = e / torch.sum(e, dim, keepdim=True)
    return out if half_to_float else out.to(x.dtype)


def log_softmax(x, dim, half_to_float):
    xf = _upcast(x)
    shifted = xf - torch.amax(xf, dim, keepdim=True)
    out = shifted - torch.log(torch.sum(torch.exp(shifted), dim, keepdim=True))
    return out if half_to_float else out.to(x.dtype)


def row_moments_one_pass(xf, dims, n):
    """(mean, biased variance) over `dims`, keepdim, from one pass over the data (the CPU
    backend's table; the Triton backend keeps two passes):
    - float32: the sum and the sum of squares in float64; float32 values square exactly in
      float64, and var = E[x^2] - mean^2 then loses ~(mean^2 / var) * 1e-16 relatively, far
      below float32's rounding;
    - float64: shifted sums, d = x - k with k each row's first element (a view the CPU
      kernel reads through x's own pointer): var = E[d^2] - E[d]^2. The cancellation costs
      (E[d]^2 / var) * eps relatively, and since k is one of the row's values,
      (k - mean)^2 <= n * var: at most ~n * 1e-16 however large the mean (a plain
      sum of squares lost everything at mean / std = 1e8).
    Other dtypes: None (the caller keeps two passes)."""
    if xf.dtype == torch.float32:
        xd = xf.to(torch.float64)
        mean = torch.sum(xd, dims, keepdim=True) * (1.0 / n)
        var = torch.clamp_min(torch.sum(xd * xd, dims, keepdim=True) * (1.0 / n) - mean * mean, 0.0)
        return mean, var
    if xf.dtype != torch.float64:
        return None
    shift = xf
    for d in dims:
        shift = shift.narrow(d, 0, 1)
    delta = xf - shift
    mean_delta = torch.sum(delta, dims, keepdim=True) * (1.0 / n)
    var = torch.clamp_min(torch.sum(delta * delta, dims, keepdim=True) * (1.0 / n) - mean_delta * mean_delta, 0.0)
    return shift + mean_delta, var


def native_layer_norm(x, normalized_shape, weight, bias, eps, one_pass=False):
    dims = list(range(x.dim() - len(normalized_shape), x.dim()))
    xf = _upcast(x)
    n = _count(x, dims)
    moments = row_moments_one_pass(xf, dims, n) if one_pass else None
    if moments is not None:
        # statistics in one pass, then the output pass: the CPU backend's kernel reads each
        # row once less (its table)
        mean, var = moments
        rstd = torch.rsqrt(var + eps).to(xf.dtype)
        mean = mean.to(xf.dtype)
        out = (xf - mean) * rstd
    else:
        mean = torch.sum(xf, dims, keepdim=True) * (1.0 / n)
        centered = xf - mean
        rstd = torch.rsqrt(torch.sum(centered * centered, dims, keepdim=True) * (1.0 / n) + eps)
        out = centered * rstd
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    # eager CUDA keeps the statistics in float32; the CPU kernel returns the input dtype
    stat_dtype = torch.float32 if x.is_cuda and x.dtype in _LOW_PRECISION else x.dtype
    return out.to(x.dtype), mean.to(stat_dtype), rstd.to(stat_dtype)


def rms_norm(x, normalized_shape, weight=None, eps=None):
    return _fused_rms_norm(x, normalized_shape, weight, eps)[0]


def _fused_rms_norm(x, normalized_shape, weight, eps):
    # torch >= 2.8 routes rms_norm on CUDA to one fused ATen op; rewrite it so it fuses with
    # its neighbours like any other reduction (eps default: the dtype's machine epsilon)
    dims = list(range(x.dim() - len(normalized_shape), x.dim()))
    xf = _upcast(x)
    eps = torch.finfo(xf.dtype).eps if eps is None else eps
    rstd = torch.rsqrt(torch.sum(xf * xf, dims, keepdim=True) * (1.0 / _count(x, dims)) + eps)
    out = xf * rstd
    if weight is not None:
        out = out * weight
    return out.to(x.dtype), rstd


def gelu(x, approximate="none"):
    xf = _upcast(x)
    if approximate == "tanh":
        inner = math.sqrt(2.0 / math.pi) * (xf + 0.044715 * xf * xf * xf)
        out = 0.5 * xf * (1.0 + torch.tanh(inner))
    else:
        out = 0.5 * xf * (1.0 + torch.erf(xf * (1.0 / math.sqrt(2.0))))
    return out.to(x.dtype)


def silu(x):
    xf = _upcast(x)
    return (xf * torch.sigmoid(xf)).to(x.dtype)


def mean_dim(x, dim, keepdim=False, dtype=None):
    dims = _dims(x, dim)
    out_dtype = dtype or x.dtype
    if not (out_dtype.is_floating_point or out_dtype.is_complex):
        raise RuntimeError(f"mean(): could not infer output dtype; got {out_dtype}")
    acc = torch.sum(x, dims, keepdim=keepdim, dtype=torch.float32 if out_dtype in _LOW_PRECISION else out_dtype)
    return (acc * (1.0 / max(_count(x, dims), 1)) if _count(x, dims) else acc / 0.0).to(out_dtype)


def mean_default(x, dtype=None):
    return mean_dim(x, None, False, dtype)


def var_correction(x, dim=None, *, correction=None, keepdim=False):
    dims = _dims(x, dim)
    xf = _upcast(x)
    n = _count(x, dims)
    corr = 1 if correction is None else correction
    mean = torch.sum(xf, dims, keepdim=True) * (1.0 / max(n, 1))
    centered = xf - mean
    denom = max(n - corr, 0)
    ssq = torch.sum(centered * centered, dims, keepdim=keepdim)
    out = ssq * (1.0 / denom) if denom else ssq / 0.0
    return out.to(x.dtype)


def std_correction(x, dim=None, *, correction=None, keepdim=False):
    return torch.sqrt(var_correction(x, dim, correction=correction, keepdim=keepdim))


def logsumexp(x, dim, keepdim=False):
    xf = _upcast(x)
    m = torch.amax(xf, dim, keepdim=True)
    m = torch.where(torch.isinf(m), torch.zeros_like(m), m)
    out = torch.log(torch.sum(torch.exp(xf - m), dim, keepdim=True)) + m
    if not keepdim:
        out = out.squeeze(dim) if isinstance(dim, int) else out.squeeze(tuple(dim))
    return out.to(x.dtype)


def max_dim(x, dim, keepdim=False):
    # one kernel: the values and the positions reduce the same rows (siblings in partition)
    return torch.amax(x, dim, keepdim), torch.argmax(x, dim, keepdim)


def min_dim(x, dim, keepdim=False):
    return torch.amin(x, dim, keepdim), torch.argmin(x, dim, keepdim)


def hardtanh(x, min_val=-1.0, max_val=1.0):
    return torch.clamp(x, min_val, max_val)


def leaky_relu(x, negative_slope=0.01):
    return torch.where(x > 0, x, x * negative_slope)


def softplus(x, beta=1.0, threshold=20.0):
    scaled = x * beta
    return torch.where(scaled > threshold, x, torch.log1p(torch.exp(scaled)) / beta)


def hardsigmoid(x):
    return torch.clamp(x + 3, 0, 6) / 6


def hardswish(x):
    return x * (torch.clamp(x + 3, 0, 6) / 6)


def elu(x, alpha=1.0, scale=1.0, input_scale=1.0):
    # selu and celu reach ATen as elu / celu with these constants; expm1 as eager's kernel
    return torch.where(x > 0, x * scale, torch.expm1(x * input_scale) * (alpha * scale))


def celu(x, alpha=1.0):
    return elu(x, alpha, 1.0, 1.0 / alpha)


def mish(x):
    xf = _upcast(x)
    return (xf * torch.tanh(torch.log1p(torch.exp(xf)))).to(x.dtype)


def frac(x):
    return x - torch.trunc(x)


def rsub(x, other, alpha=1):
    return torch.sub(other, x, alpha=alpha)


# -- backward ops (the VJP graphs of autograd.py) ---------------------------------------

def threshold_backward(grad, x, threshold):
    return torch.where(x <= threshold, torch.zeros_like(grad), grad)


def sigmoid_backward(grad, y):
    return grad * y * (1 - y)


def tanh_backward(grad, y):
    return grad * (1 - y * y)


def softmax_backward_data(grad, y, dim, input_dtype):
    gf, yf = _upcast(grad), _upcast(y)
    out = yf * (gf - torch.sum(gf * yf, dim, keepdim=True))
    return out.to(input_dtype)


def log_softmax_backward_data(grad, y, dim, input_dtype):
    gf, yf = _upcast(grad), _upcast(y)
    out = gf - torch.exp(yf) * torch.sum(gf, dim, keepdim=True)
    return out.to(input_dtype)


def gelu_backward(grad, x, approximate="none"):
    gf, xf = _upcast(grad), _upcast(x)
    if approximate == "tanh":
        k = math.sqrt(2.0 / math.pi)
        inner = k * (xf + 0.044715 * xf * xf * xf)
        t = torch.tanh(inner)
        d_inner = k * (1.0 + 3 * 0.044715 * xf * xf)
        out = gf * (0.5 * (1.0 + t) + 0.5 * xf * (1.0 - t * t) * d_inner)
    else:
        cdf = 0.5 * (1.0 + torch.erf(xf * (1.0 / math.sqrt(2.0))))
        pdf = torch.exp(-0.5 * xf * xf) * (1.0 / math.sqrt(2.0 * math.pi))
        out = gf * (cdf + xf * pdf)
    return out.to(grad.dtype)


def silu_backward(grad, x):
    gf, xf = _upcast(grad), _upcast(x)
    s = torch.sigmoid(xf)
    return (gf * s * (1 + xf * (1 - s))).to(grad.dtype)


def native_layer_norm_backward(grad, x, normalized_shape, mean, rstd, weight, bias, output_mask):
    axis = x.dim() - len(normalized_shape)
    inner = list(range(axis, x.dim()))
    outer = list(range(axis))
    n = _count(x, inner)
    gf, xf = _upcast(grad), _upcast(x)
    x_hat = (xf - mean) * rstd
    g = gf * weight if weight is not None else gf
    grad_x = grad_w = grad_b = None
    if output_mask[0]:
        grad_x = (rstd * (1.0 / n)) * (n * g - torch.sum(g, inner, keepdim=True)
                                       - x_hat * torch.sum(g * x_hat, inner, keepdim=True))
        grad_x = grad_x.to(x.dtype)
    if output_mask[1] and weight is not None:
        grad_w = (torch.sum(gf * x_hat, outer) if outer else gf * x_hat).to(weight.dtype)
    if output_mask[2] and bias is not None:
        grad_b = (torch.sum(gf, outer) if outer else gf.clone()).to(bias.dtype)
    return grad_x, grad_w, grad_b


def table():
    """The decomposition table handed to make_fx."""
    optional = {}
    if hasattr(aten, "_fused_rms_norm"):
        optional[aten._fused_rms_norm.default] = _fused_rms_norm
    return {
        **optional,
        aten._softmax.default: softmax,
        aten._log_softmax.default: log_softmax,
        aten.native_layer_norm.default: native_layer_norm,
        aten.gelu.default: gelu,
        aten.rms_norm.default: rms_norm,
        aten.silu.default: silu,
        aten.mean.dim: mean_dim,
        aten.mean.default: mean_default,
        aten.var.correction: var_correction,
        aten.std.correction: std_correction,
        aten.logsumexp.default: logsumexp,
        aten.max.dim: max_dim,
        aten.min.dim: min_dim,
        aten.hardtanh.default: hardtanh,
        aten.leaky_relu.default: leaky_relu,
        aten.softplus.default: softplus,
        aten.hardsigmoid.default: hardsigmoid,
        aten.hardswish.default: hardswish,
        aten.elu.default: elu,
        aten.celu.default: celu,
        aten.mish.default: mish,
        aten.frac.default: frac,
        aten.rsub.Tensor: rsub,
        aten.rsub.Scalar: rsub,
        aten.threshold_backward.default: threshold_backward,
        aten.sigmoid_backward.default: sigmoid_backward,
        aten.tanh_backward.default: tanh_backward,
        aten._softmax_backward_data.default: softmax_backward_data,
        aten._log_softmax_backward_data.default: log_softmax_backward_data,
        aten.gelu_backward.default: gelu_backward,
        aten.silu_backward.default: silu_backward,
        aten.native_layer_norm_backward.default: native_layer_norm_backward,
    }
