"""Shape rules for the common ops whose meta kernels torch writes in Python.

    result = infer(kind, target, meta_args, meta_kwargs, device)   # a meta tensor, or None

torch registers Python meta kernels (torch/_meta_registrations.py, decompositions, refs) for
many aten ops: addmm, the pointwise ops, layer_norm, cat, embedding, arange, the CPU flash
attention. Running one imports sympy (type promotion, `torch._check`) and torch._dynamo (the
`_disable_dynamo` wrapper on every type-promoting ref) -- about a second in a fresh process,
ten times the whole translation of a small model (issue 11, part 4). These rules give the
same facts for the plain cases of those ops from C++ kernels only (`torch.empty`, `clone`,
`result_type`); anything outside a rule's plain case returns None and propagates as before.

Each rule checks what eager would reject (mismatched sizes, mixed dtypes) and declines then,
so eager's error still comes from the real kernel. Results are contiguous (what eager's
kernels return for contiguous inputs; rules that would depend on input strides decline on
non-contiguous inputs), and require grad as autograd would mark them (a non-leaf).

Example: `F.linear(x, w, b)` with x (2, 8, 64), w (32, 64), b (32,) gives an empty meta
tensor (2, 8, 32) without entering Python dispatch.
"""
import operator

import torch
import torch.nn.functional as F


def infer(kind, target, args, kwargs, device=None):
    """The meta result of `target(*args, **kwargs)` by a rule, or None when no rule fits;
    `device` is the device the real op runs on (None: no tensor argument)."""
    rule = _METHOD_RULES.get(target) if kind == "call_method" else _RULES.get(target)
    if rule is None or (rule in _CPU_ONLY and getattr(device, "type", None) != "cpu"):
        return None
    try:
        return rule(*args, **kwargs)
    except TypeError:  # an argument form the rule does not know: the meta kernel decides
        return None


def _floats(*tensors):
    """All are strided meta tensors of one floating dtype."""
    first = tensors[0]
    return all(isinstance(t, torch.Tensor) and t.device.type == "meta" and t.layout is torch.strided
               and t.dtype == first.dtype for t in tensors) and first.dtype.is_floating_point


def _strided(*tensors):
    return all(isinstance(t, torch.Tensor) and t.device.type == "meta" and t.layout is torch.strided
               for t in tensors)


def _fresh(shape, dtype, inputs, like=None):
    """A new meta tensor as an op on `inputs` returns it: contiguous (or `like`'s strides),
    and a non-leaf requiring grad when autograd would record the op."""
    out = _empty_like(like) if like is not None else torch.empty(shape, dtype=dtype, device="meta")
    if out is None:
        return None
    if torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in inputs):
        out = out.requires_grad_(True).clone()
    return out


def _broadcast(*shapes):
    """The broadcast of `shapes` as a tuple, or None when they do not broadcast
    (torch.broadcast_shapes runs a Python ref that imports sympy)."""
    out = []
    for sizes in zip(*(((1,) * (max(map(len, shapes)) - len(s))) + tuple(s) for s in shapes)):
        wide = {n for n in sizes if n != 1}
        if len(wide) > 1:
            return None
        out.append(wide.pop() if wide else 1)
    return tuple(out)


def _empty_like(t):
    """torch.empty_like(t) for a strided t (dims kept in t's order of strides), in C++ ops:
    torch's empty_like on a non-dense meta tensor runs a Python ref. None when strides tie."""
    stride = t.stride()
    if len(set(stride)) != len(stride):
        return None
    order = sorted(range(t.dim()), key=lambda d: -stride[d])  # outermost first
    physical = torch.empty([t.shape[d] for d in order], dtype=t.dtype, device="meta")
    return physical.permute([order.index(d) for d in range(t.dim())])


def _unary(x, *rest, **kwargs):
    if kwargs.pop("inplace", False) is not False:
        return None
    if rest or set(kwargs) - {"approximate"} or not _floats(x) or not x.is_contiguous():
        return None
    return _fresh(x.shape, x.dtype, (x,))


def _binary(a, b, **kwargs):
    if kwargs:  # alpha=, out=
        return None
    tensors = [t for t in (a, b) if isinstance(t, torch.Tensor)]
    numbers = [n for n in (a, b) if not isinstance(n, torch.Tensor)]
    if not tensors or not _strided(*tensors) or not all(t.is_contiguous() for t in tensors) \
            or not all(type(n) in (int, float) for n in numbers):
        return None
    shape = _broadcast(*(t.shape for t in tensors))
    if shape is None:
        return None
    dtype = torch.result_type(a, b)
    if not dtype.is_floating_point or any(t.dtype.is_complex for t in tensors):
        return None  # integer results: true division and bool subtraction differ (meta kernel)
    return _fresh(shape, dtype, tensors)  # a float scaled by a mask: `loss * (labels == 0)`


def _subtract(a, b, **kwargs):
    if any(isinstance(t, torch.Tensor) and t.dtype is torch.bool for t in (a, b)):
        return None  # eager rejects `-` with a bool tensor
    return _binary(a, b, **kwargs)


def _linear(x, weight, bias=None):
    operands = (x, weight) if bias is None else (x, weight, bias)
    if not _floats(*operands) or x.dim() < 1 or weight.dim() != 2 or x.shape[-1] != weight.shape[1] \
            or (bias is not None and tuple(bias.shape) != (weight.shape[0],)) or not x.is_contiguous():
        return None
    return _fresh((*x.shape[:-1], weight.shape[0]), x.dtype, operands)


def _addmm(bias, a, b, **kwargs):
    if kwargs or not _floats(bias, a, b) or a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0]:
        return None
    shape = (a.shape[0], b.shape[1])
    if _broadcast(bias.shape, shape) != shape:
        return None
    return _fresh(shape, a.dtype, (bias, a, b))


def _layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    ns = tuple(normalized_shape)
    params = [p for p in (weight, bias) if p is not None]
    if not _floats(x, *params) or not x.is_contiguous() or tuple(x.shape[x.dim() - len(ns):]) != ns \
            or len(ns) > x.dim() or any(tuple(p.shape) != ns for p in params):
        return None
    return _fresh(x.shape, x.dtype, (x, *params))


def _attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """The fused CPU path's result: laid out like the query (`empty_like(query)`, which is
    what eager's CPU kernel returns, also for the strided slices a split of qkv gives)."""
    if attn_mask is not None or dropout_p or enable_gqa or not _floats(q, k, v) \
            or not all(t.dim() == 4 for t in (q, k, v)) or k.shape != v.shape \
            or q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        return None
    return _fresh(q.shape, q.dtype, (q, k, v), like=q)


def _batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """F.batch_norm's result (its meta kernel is a Python decomposition: 5-15 ms a call, 66
    calls in each of yolov3's translations). The running statistics' in-place update is the
    real kernel's: meta tensors hold no data. Declines where eager raises (one value per
    channel in training, statistics missing in evaluation, sizes that differ)."""
    stats = [t for t in (running_mean, running_var) if t is not None]
    params = [t for t in (weight, bias) if t is not None]
    if type(training) is not bool or not _floats(x, *stats, *params) or x.dim() < 2 or not x.is_contiguous() \
            or len(stats) == 1 or not training and not stats or any(tuple(t.shape) != (x.shape[1],) for t in stats + params):
        return None
    if training and (x.numel() == x.shape[1] or torch.is_grad_enabled() and any(t.requires_grad for t in stats)):
        return None  # eager raises (one value per channel; an in-place update of a leaf needing grad)
    return _fresh(x.shape, x.dtype, (x, *params))


def _leaky_relu(x, negative_slope=0.01, inplace=False):
    if inplace is not False or type(negative_slope) not in (int, float):
        return None
    return _unary(x)


def _embedding(ids, weight, padding_idx=None, max_norm=None, *rest, **kwargs):
    if max_norm is not None or not _floats(weight) or weight.dim() != 2 \
            or ids.dtype not in (torch.int64, torch.int32) or ids.device.type != "meta":
        return None  # max_norm renormalises the weight in place: the meta kernel decides
    return _fresh((*ids.shape, weight.shape[1]), weight.dtype, (weight,))


def _arange(*bounds, device=None, dtype=None):
    """Integer bounds only (float bounds round by torch's own formula)."""
    if device != "meta" or dtype not in (None, torch.int64) or not 1 <= len(bounds) <= 3 \
            or not all(type(b) is int for b in bounds):
        return None
    start, end, step = (0, bounds[0], 1) if len(bounds) == 1 else (*bounds, 1)[:3]
    if step == 0:
        return None
    return torch.empty(max(0, -((start - end) // step)), dtype=torch.int64, device="meta")


def _matmul(a, b):
    if not _floats(a, b) or a.dim() < 2 or b.dim() < 2 or a.shape[-1] != b.shape[-2]:
        return None  # 1-d operands squeeze dims: the meta kernel decides
    batch = _broadcast(a.shape[:-2], b.shape[:-2])
    if batch is None:
        return None
    return _fresh((*batch, a.shape[-2], b.shape[-1]), a.dtype, (a, b))


def _softmax(x, dim=None, _stacklevel=3, dtype=None):
    if dim is None or dtype is not None or not _floats(x) or not x.is_contiguous():
        return None
    return _fresh(x.shape, x.dtype, (x,))


def _masked_fill(x, mask, value):
    if not _strided(x, mask) or mask.dtype is not torch.bool or not x.is_contiguous() \
            or type(value) not in (int, float, bool) or _broadcast(x.shape, mask.shape) != tuple(x.shape):
        return None
    return _fresh(x.shape, x.dtype, (x,))


def _triu(x, diagonal=0):
    if not _strided(x) or x.dim() < 2 or not x.is_contiguous() or type(diagonal) is not int:
        return None
    return _fresh(x.shape, x.dtype, (x,))


def _filled(*size, dtype=None, device=None):
    """torch.ones / zeros / empty on the meta device: plain sizes and dtype only."""
    if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)):
        size = tuple(size[0])
    if device != "meta" or not all(type(n) is int and n >= 0 for n in size):
        return None
    return torch.empty(size, dtype=dtype or torch.get_default_dtype(), device="meta")


def _reshape(x, *shape):
    """A reshape that must copy (a view is not possible): a contiguous tensor of the new
    shape. A reshape that can be a view is one: the meta kernel (C++) keeps the aliasing."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)):
        shape = tuple(shape[0])
    if not _strided(x) or x.is_contiguous() or not all(type(n) is int for n in shape) \
            or sum(n == -1 for n in shape) > 1:
        return None
    try:
        x.view(shape)
        return None
    except RuntimeError:
        pass
    known = 1
    for n in shape:
        known *= n if n != -1 else 1
    if -1 in shape:
        if known == 0 or x.numel() % known:
            return None
        shape = tuple(x.numel() // known if n == -1 else n for n in shape)
    if _numel(shape) != x.numel():
        return None
    return _fresh(shape, x.dtype, (x,))


def _numel(shape):
    total = 1
    for n in shape:
        total *= n
    return total


def _contiguous(x, memory_format=torch.contiguous_format):
    if memory_format is not torch.contiguous_format or not _floats(x) or x.is_contiguous():
        return None  # already contiguous: eager returns x itself, which the meta call keeps
    return _fresh(x.shape, x.dtype, (x,))


def _cat(tensors, dim=0):
    tensors = list(tensors)
    if not tensors or not _floats(*tensors) or not all(t.is_contiguous() for t in tensors):
        return None
    first = tensors[0]
    if first.dim() == 0 or not all(t.dim() == first.dim() for t in tensors):
        return None
    d = dim % first.dim() if -first.dim() <= dim < first.dim() else None
    if d is None or any(t.shape[:d] != first.shape[:d] or t.shape[d + 1:] != first.shape[d + 1:] for t in tensors):
        return None
    shape = list(first.shape)
    shape[d] = sum(t.shape[d] for t in tensors)
    return _fresh(shape, first.dtype, tensors)


_UNARY = (torch.relu, F.relu, torch.tanh, torch.sigmoid, F.gelu, F.silu, torch.exp, torch.neg)
_BINARY = (operator.add, operator.mul, operator.sub, operator.truediv, torch.add, torch.mul,
           torch.sub, torch.pow, operator.pow)
_RULES = {**{f: _unary for f in _UNARY}, **{f: _binary for f in _BINARY}, operator.sub: _subtract, torch.sub: _subtract,
          F.linear: _linear, torch.addmm: _addmm, F.layer_norm: _layer_norm, torch.cat: _cat,
          F.scaled_dot_product_attention: _attention,
          F.embedding: _embedding, torch.arange: _arange, operator.matmul: _matmul,
          torch.matmul: _matmul, F.softmax: _softmax, torch.triu: _triu, torch.ones: _filled,
          torch.zeros: _filled, torch.empty: _filled, F.batch_norm: _batch_norm, F.leaky_relu: _leaky_relu}
_CPU_ONLY = (_attention,)  # other devices pick other kernels, with other output layouts
_METHOD_RULES = {"relu": _unary, "tanh": _unary, "sigmoid": _unary, "exp": _unary,
                 "add": _binary, "mul": _binary, "sub": _subtract, "pow": _binary,
                 "contiguous": _contiguous, "masked_fill": _masked_fill, "reshape": _reshape,
                 "matmul": _matmul, "softmax": _softmax, "triu": _triu}


def _add_rule_families():
    """Reductions, comparisons, convolutions and losses live in their own modules."""
    from . import meta_rules_nn, meta_rules_reduce
    for family in (meta_rules_nn, meta_rules_reduce):
        _RULES.update(family.RULES)
        _METHOD_RULES.update(family.METHOD_RULES)


_add_rule_families()
