"""Shape rules (see meta_rules) for convolutions, dropout, log_softmax and the common losses.

    meta_rules.infer("call_function", torch.conv2d, [x, w, b, 1, 1], {}, cpu)

Their meta kernels are Python decompositions: a convolution's costs ~0.4 ms a call (yolov3
and resnet50 translate hundreds), cross_entropy's several milliseconds, and the first of
them in a process imports sympy and torch._dynamo. As in meta_rules, each rule covers the
plain case (contiguous float inputs of one dtype, default options) and returns None for
anything else, so eager's error still comes from the real kernel.

Example: `torch.conv2d(x, w, None, 1, 1)` with x (8, 3, 32, 32) and w (16, 3, 3, 3) gives an
empty meta tensor (8, 16, 32, 32).
"""
import torch
import torch.nn.functional as F

from .meta_rules import _floats, _fresh, _softmax


def _ints(value, n):
    """A conv option (int or sequence) as n ints, or None."""
    if type(value) is int:
        return (value,) * n
    if isinstance(value, (tuple, list)) and len(value) == n and all(type(v) is int for v in value):
        return tuple(value)
    return None


def _convolution(spatial):
    def rule(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        operands = (x, weight) if bias is None else (x, weight, bias)
        if not _floats(*operands) or weight.dim() != spatial + 2 or x.dim() not in (spatial + 1, spatial + 2) \
                or type(groups) is not int or groups < 1:
            return None
        if not all(t.is_contiguous() for t in operands) or any(t.dim() == 4 and t.is_contiguous(
                memory_format=torch.channels_last) for t in (x, weight)):
            return None  # a layout that is also channels-last: eager may pick either for the output
        batched = x.dim() == spatial + 2
        channels, sizes = x.shape[-spatial - 1], x.shape[-spatial:]
        out_channels, kernel = weight.shape[0], weight.shape[2:]
        stride, dilation = _ints(stride, spatial), _ints(dilation, spatial)
        if padding == "valid":
            padding = 0
        pad = _ints(padding, spatial) if padding != "same" else None
        if stride is None or dilation is None or pad is None and padding != "same" \
                or channels != weight.shape[1] * groups or out_channels % groups \
                or bias is not None and tuple(bias.shape) != (out_channels,) \
                or min(stride) < 1 or min(dilation) < 1 or pad is not None and min(pad) < 0:
            return None
        if pad is None:  # "same": stride 1 only, output the input's size
            if max(stride) != 1:
                return None
            out = list(sizes)
        else:
            out = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, p, d, k, s in zip(sizes, pad, dilation, kernel, stride)]
        if min(out, default=1) < 1 or min(sizes, default=1) < 1:
            return None
        shape = ((x.shape[0],) if batched else ()) + (out_channels, *out)
        return _fresh(shape, x.dtype, operands)
    return rule


def _dropout(x, p=0.5, training=True, inplace=False):
    if inplace is not False or type(training) is not bool or type(p) not in (int, float) or not 0 <= p <= 1 \
            or not _floats(x):
        return None
    if not training or p == 0 or x.numel() == 0:
        return x  # eager returns its input itself
    return _fresh(x.shape, x.dtype, (x,)) if x.is_contiguous() else None


def _log_softmax(x, dim=None, _stacklevel=3, dtype=None):
    return _softmax(x, dim, _stacklevel, dtype)


def _reduction(shape, reduction, dtype, inputs):
    if reduction == "none":
        return _fresh(shape, dtype, inputs)
    return _fresh((), dtype, inputs) if reduction in ("mean", "sum") else None


def _pairwise_loss(input, target, size_average=None, reduce=None, reduction="mean", **options):
    """mse / l1 / smooth_l1 / huber / binary_cross_entropy(_with_logits): same-shape float
    inputs, default weights (a broadcast target warns and a weight changes the schema)."""
    if size_average is not None or reduce is not None or any(v is not None for k, v in options.items()
                                                              if k in ("weight", "pos_weight")) \
            or any(type(v) not in (int, float) for k, v in options.items() if k in ("beta", "delta")) \
            or set(options) - {"weight", "pos_weight", "beta", "delta"}:
        return None
    if not _floats(input, target) or input.shape != target.shape or not input.is_contiguous() or not target.is_contiguous():
        return None
    return _reduction(input.shape, reduction, input.dtype, (input, target))


def _class_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                reduction="mean", label_smoothing=0.0):
    """cross_entropy / nll_loss with class-index targets: (C,) or (N, C, d1, ...) scores."""
    if size_average is not None or reduce is not None or type(ignore_index) is not int \
            or type(label_smoothing) not in (int, float) or not 0 <= label_smoothing <= 1:
        return None
    params = (input,) if weight is None else (input, weight)
    if not _floats(*params) or not input.is_contiguous() or target.dtype is not torch.int64 \
            or target.device.type != "meta" or not target.is_contiguous() or input.dim() < 1:
        return None
    classes = input.shape[0] if input.dim() == 1 else input.shape[1]
    expected = () if input.dim() == 1 else (input.shape[0], *input.shape[2:])
    if tuple(target.shape) != expected or weight is not None and tuple(weight.shape) != (classes,) or classes == 0:
        return None
    return _reduction(expected, reduction, input.dtype, params)


def _nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    return _class_loss(input, target, weight, size_average, ignore_index, reduce, reduction)


RULES = {
    torch.conv1d: _convolution(1), torch.conv2d: _convolution(2), F.dropout: _dropout,
    F.log_softmax: _log_softmax, F.mse_loss: _pairwise_loss, F.l1_loss: _pairwise_loss,
    F.smooth_l1_loss: _pairwise_loss, F.huber_loss: _pairwise_loss,
    F.binary_cross_entropy: _pairwise_loss, F.binary_cross_entropy_with_logits: _pairwise_loss,
    F.cross_entropy: _class_loss, F.nll_loss: _nll_loss,
}
METHOD_RULES = {"log_softmax": _log_softmax}
