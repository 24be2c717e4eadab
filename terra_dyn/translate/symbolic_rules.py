"""Symbolic sizes without FakeTensorMode for the ops a decoder runs on a growing KV cache.

    propagate(state, kind, target, args, kwargs) -> a fake tensor, or None (FakeTensorMode decides)

Under FakeTensorMode each op on a tensor with symbolic sizes costs 5-30 ms of sympy (torch's
refs and decompositions ask the ShapeEnv about every size relation): mistral's symbolic
retranslation spent 500 of its 800 ms in 63 such ops (cat, slicing, expand, reshape, matmul,
broadcasting pointwise ops). Here each of those ops' result sizes and strides are computed
from its inputs' as SymInt arithmetic (no question asked, so no guard), and the result is
built directly (a meta tensor wrapped as a fake one, or an `as_strided` view of the input):
about 1 ms an op.

Exactness first: a rule answers only where every decision it makes is the same for all values
of the symbols (ints equal, expressions identical, or a difference the ShapeEnv's value ranges
bound away from zero); anything else (a size that broadcasting would need equal to a
constant, a slice bound that may count from the end) returns None. Each result is also
checked against the op run on meta tensors at the symbols' current values (dtype, sizes,
strides, offset, view or not, requires grad, leaf or not): a rule that disagrees there is not
used. Rules exact by construction (`t[mask]`, the losses) are in symbolic_exact.
"""
import contextlib
import operator

import torch

from . import symbolic_exact
from .size_decisions import (
    _Fail, _canonical, _compare, _contiguous_strides, _example, _expr, _hint, _is_one, _need, _not_above, _same)
from .values import seen_by_op

# -- rules: (env, fake args, fake kwargs) -> (sizes, strides, offset, base or None) ------


def _broadcast(env, tensors):
    ndim = max(t.dim() for t in tensors)
    out = []
    for d in range(-ndim, 0):
        sizes = [t.shape[d] for t in tensors if t.dim() >= -d]
        sizes = [s for s in sizes if not _is_one(s)]
        if not sizes:
            out.append(1)
            continue
        for s in sizes[1:]:
            _need(_same(env, s, sizes[0]))
        out.append(sizes[0])
    return out


def _pointwise(env, args, kwargs):
    """Broadcasting elementwise ops and shape-keeping ones (softmax, casts): a contiguous
    result of the broadcast sizes, when every tensor argument is contiguous or the result has
    at most one dim."""
    tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
    for a in (*args, *kwargs.values()):
        if isinstance(a, (list, tuple)) and any(isinstance(i, torch.Tensor) for i in a):
            raise _Fail
    sizes = _broadcast(env, tensors)
    if len(sizes) > 1:  # a result of one dim is contiguous whatever its inputs' strides (a box
        # column `boxes[:, 2] - boxes[:, 0]`); of more, it follows its inputs' layout
        for t in tensors:
            _need(_canonical(env, t) or len(tensors) > 1 and _outer_first(env, t))
    return sizes, _contiguous_strides(env, sizes), 0, None


def _outer_first(env, t):
    """t's strides fall strictly from its outer dims to its inner ones, for all values (dims
    of size 1 and stride 0 aside, which TensorIterator's ordering skips when it broadcasts):
    a broadcast over such inputs keeps the dims' order, so its result is contiguous
    (faster_rcnn's `torch.max(b[:, None, :2], anchors[:, :2])` of two column views)."""
    strides = [st for n, st in zip(t.shape, t.stride()) if not _is_one(n) and not (type(st) is int and st == 0)]
    return all(_compare(env, s, 0) == 1 for s in strides) \
        and all(_compare(env, a, b) == 1 for a, b in zip(strides, strides[1:]))


def _cat(env, args, kwargs):
    tensors = args[0] if args else kwargs.get("tensors")
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    if not isinstance(tensors, (list, tuple)) or not tensors or type(dim) is not int \
            or set(kwargs) - {"tensors", "dim"}:
        raise _Fail
    ndim = tensors[0].dim()
    if not ndim or any(t.dim() != ndim for t in tensors) or not -ndim <= dim < ndim:
        raise _Fail
    dim %= ndim
    for t in tensors:
        _need(_canonical(env, t))
        # torch skips a 1-d empty input (of any other dim's count): of the same ndim, a size that
        # may be 0 adds as any other (a sampler's `cat([pos[:k], neg[:m]])`); of more dims, an
        # empty input's memory format is its own question: FakeTensorMode decides
        _need(ndim <= 2 or _compare(env, t.shape[dim], 0) is not None)
    sizes = list(tensors[0].shape)
    for t in tensors[1:]:
        for d in range(ndim):
            if d == dim:
                sizes[d] = sizes[d] + t.shape[d]
            else:
                _need(_same(env, t.shape[d], sizes[d]))
    return sizes, _contiguous_strides(env, sizes), 0, None


def _stack(env, args, kwargs):
    """torch.stack of contiguous tensors of the same sizes, of a result of at most 3 dims: a
    contiguous result with the count inserted at dim."""
    tensors = args[0] if args else kwargs.get("tensors")
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    if not isinstance(tensors, (list, tuple)) or not tensors or type(dim) is not int \
            or set(kwargs) - {"tensors", "dim"} or len(args) > 2:
        raise _Fail
    ndim = tensors[0].dim()
    if ndim > 2 or any(t.dim() != ndim for t in tensors) or not -ndim - 1 <= dim <= ndim:
        raise _Fail
    for t in tensors:
        _need(_canonical(env, t))
        for d in range(ndim):
            _need(_same(env, t.shape[d], tensors[0].shape[d]))
    sizes = list(tensors[0].shape)
    sizes.insert(dim % (ndim + 1), len(tensors))
    return sizes, _contiguous_strides(env, sizes), 0, None


def _two_tensors(env, args, kwargs):
    """torch.max(a, b) / torch.min(a, b) of two tensors (elementwise; with a dim or one tensor
    they reduce: not here)."""
    if kwargs or len(args) != 2 or not all(isinstance(a, torch.Tensor) for a in args):
        raise _Fail
    return _pointwise(env, args, kwargs)


def _getitem(env, args, kwargs):
    """Basic indexing: full slices of symbolic dims, ints, slices of static dims, None,
    Ellipsis; or an integer tensor picking along the first dim of a contiguous tensor
    (`boxes[keep]`)."""
    t, index = args
    items = index if isinstance(index, tuple) else (index,)
    if items and isinstance(items[0], torch.Tensor):
        return _take_rows(env, t, items)
    consuming = sum(1 for i in items if i is not None and i is not Ellipsis)
    if sum(1 for i in items if i is Ellipsis) > 1 or consuming > t.dim():
        raise _Fail
    expanded = []
    for item in items:
        if item is Ellipsis:
            expanded += [slice(None)] * (t.dim() - consuming)
        else:
            expanded.append(item)
    expanded += [slice(None)] * (t.dim() - sum(1 for i in expanded if i is not None))
    sizes, strides = list(t.shape), list(t.stride())
    out_sizes, out_strides, offset, d = [], [], t.storage_offset(), 0
    for item in expanded:
        if item is None:  # unsqueeze at this position of the partial result
            out_sizes.append(1)
            out_strides.append(sizes[d] * strides[d] if d < len(sizes) else 1)
            continue
        size, stride = sizes[d], strides[d]
        d += 1
        if type(item) is int:
            if type(size) is not int or not -size <= item < size:
                raise _Fail
            offset = offset + (item % size) * stride
        elif isinstance(item, slice):
            parts = (item.start, item.stop, item.step)
            if any(p is not None and type(p) is not int and type(p) is not torch.SymInt for p in parts):
                raise _Fail
            if type(size) is not int or any(type(p) is torch.SymInt for p in parts):
                # step 1, bounds clamped as Python's for all values (`positive[:num_pos]`)
                if item.step is not None and not (type(item.step) is int and item.step == 1):
                    raise _Fail
                start = _clamp(env, item.start, size, 0)
                stop = _clamp(env, item.stop, size, size)
                if type(start) is int and start == 0:
                    length = stop  # clamped: never negative
                else:
                    length = stop - start if _not_above(env, start, stop) else _zero_length(env, stop, start)
                out_sizes.append(length)
                out_strides.append(stride)
                offset = offset + start * stride
                continue
            if item.step is not None and item.step <= 0:
                raise _Fail
            start, stop, step = item.indices(size)
            out_sizes.append(max(0, (stop - start + step - 1) // step))
            out_strides.append(stride * step)
            offset = offset + start * stride
        else:
            raise _Fail
    return out_sizes, out_strides, offset, t


def _take_rows(env, t, items):
    """`t[idx]` / `t[idx, :]` for an integer tensor idx: idx's sizes and t's other sizes, a
    contiguous copy when t is contiguous (a bool mask's size depends on data: not here)."""
    idx = items[0]
    if idx.dtype not in (torch.int64, torch.int32) or not t.dim() \
            or any(not (isinstance(i, slice) and i == slice(None)) for i in items[1:]):
        raise _Fail
    _need(_canonical(env, t))
    sizes = [*idx.shape, *t.shape[1:]]
    return sizes, _contiguous_strides(env, sizes), 0, None


def _clamp(env, bound, size, default):
    """A slice bound on a dim of symbolic `size` as Python clamps it. A clamp the value ranges
    leave open is guarded on its outcome now, as FakeTensorMode's slicing does (mistral's
    sliding-window cache `keys[:, :, -4095:]`: `s0 + 1 < 4095`)."""
    if bound is None:
        return default
    if type(bound) is not int:
        return _clamp_symbolic(env, bound, size)
    if bound < 0:
        bound = size + bound
        return bound if _guarded_sign(env, bound, 0) > 0 else 0
    return size if _guarded_sign(env, bound, size) >= 0 else bound


def _clamp_symbolic(env, bound, size):
    """A symbolic bound never negative (`num_pos = min(positive.numel(), 3)`) as Python clamps
    it to the dim's size: itself, the size, or their minimum where that depends on the values
    (no guard). A bound that may be negative counts from the end: FakeTensorMode decides."""
    _need(_not_above(env, 0, bound))
    if _not_above(env, bound, size):
        return bound
    if _not_above(env, size, bound):
        return size
    return torch.sym_min(bound, size)


def _guarded_sign(env, a, b):
    sign = _compare(env, a, b)
    if sign is None:
        ha, hb = _hint(a), _hint(b)
        _need(ha is not None and hb is not None and ha != hb)  # an equality would pin a symbol, a
        # size that depends on data has no value to guard on: FakeTensorMode decides
        before = len(env.guards)
        sign = 1 if bool(a > b) else -1  # guarded; the hints say which way
        # a clamp's outcome (graph_state.check_symbolic): convert_frame runs a call that flips
        # it as written the first time (a window cache's first slice that cuts)
        env.terra_clamps = getattr(env, "terra_clamps", set()) | {g.expr for g in env.guards[before:]}
        _need(sign == (1 if ha > hb else -1))
    return sign


def _zero_length(env, stop, start):
    _need(_compare(env, stop, start) == -1)
    return 0


def _shape_arg(args):
    if len(args) == 1 and isinstance(args[0], (list, tuple, torch.Size)):
        args = tuple(args[0])
    if not all(type(a) is int or isinstance(a, torch.SymInt) for a in args):
        raise _Fail
    return list(args)


def _expand(env, args, kwargs):
    t, target = args[0], _shape_arg(args[1:])
    if kwargs or len(target) < t.dim():
        raise _Fail
    lead = len(target) - t.dim()
    sizes, strides = [], []
    for i, want in enumerate(target):
        if i < lead:
            if type(want) is int and want < 0:
                raise _Fail
            sizes.append(want)
            strides.append(0)
            continue
        size, stride = t.shape[i - lead], t.stride()[i - lead]
        if type(want) is int and want == -1 or _same(env, want, size) is True:
            sizes.append(size)
            strides.append(stride)
        elif _is_one(size) and (type(want) is not int or want >= 0):
            sizes.append(want)
            strides.append(0)
        else:
            raise _Fail
    return sizes, strides, t.storage_offset(), t


def _transpose(env, args, kwargs):
    t = args[0]
    if kwargs or len(args) != 3 or type(args[1]) is not int or type(args[2]) is not int or not t.dim():
        raise _Fail
    a, b = args[1] % t.dim(), args[2] % t.dim()
    sizes, strides = list(t.shape), list(t.stride())
    sizes[a], sizes[b] = sizes[b], sizes[a]
    strides[a], strides[b] = strides[b], strides[a]
    return sizes, strides, t.storage_offset(), t


def _reshape(view):
    def rule(env, args, kwargs):
        t, target = args[0], _shape_arg(args[1:])
        if kwargs:
            raise _Fail
        sizes = _infer_size(env, list(t.shape), target)
        strides = _view_strides(env, list(t.shape), list(t.stride()), sizes)
        if strides is not None:
            return sizes, strides, t.storage_offset(), t
        if view:
            raise _Fail  # eager raises: FakeTensorMode names the error
        return sizes, _contiguous_strides(env, sizes), 0, None  # a copy
    return rule


def _product(items):
    out = 1
    for i in items:
        out = out * i
    return out


def _infer_size(env, old, target):
    """`view(a, -1, b)`'s sizes; the element counts must match for all values."""
    numel = _product(old)
    holes = [i for i, s in enumerate(target) if type(s) is int and s == -1]
    if len(holes) > 1 or any(type(s) is int and s < 0 and s != -1 for s in target):
        raise _Fail
    known = _product(s for s in target if not (type(s) is int and s == -1))
    if not holes:
        _need(_same(env, known, numel))
        return target
    _need(_compare(env, known, 0) == 1)
    if type(numel) is int and type(known) is int:
        missing = numel // known
    else:
        import sympy

        quotient = sympy.cancel(_expr(numel) / _expr(known))
        if quotient.as_numer_denom()[1] != 1:
            raise _Fail
        _need(_hint(numel) is not None and _hint(known) is not None)
        missing = _symint(env, quotient, _hint(numel) // _hint(known))
    _need(_same(env, missing * known, numel))
    out = list(target)
    out[holes[0]] = missing
    return out


def _symint(env, expr, hint):
    return int(expr) if expr.is_Integer else env.create_symintnode(expr, hint=hint)


def _view_strides(env, old, old_strides, new):
    """ATen's computeStride with each comparison decided for all values: the view's strides,
    or None when no view exists (reshape copies)."""
    if not old:
        return [1] * len(new) if all(_is_one(s) for s in new) else None
    if any(_compare(env, s, 0) != 1 for s in old):
        raise _Fail  # empty tensors: ATen's special case
    new_strides = [None] * len(new)
    view_d = len(new) - 1
    chunk_base = old_strides[-1]
    tensor_numel = view_numel = 1
    for d in range(len(old) - 1, -1, -1):
        tensor_numel = tensor_numel * old[d]
        if d == 0 or not _is_one(old[d - 1]) and _differs(env, old_strides[d - 1], tensor_numel * chunk_base):
            while view_d >= 0 and (_less(env, view_numel, tensor_numel) or _is_one(new[view_d])):
                new_strides[view_d] = view_numel * chunk_base
                view_numel = view_numel * new[view_d]
                view_d -= 1
            if _differs(env, view_numel, tensor_numel):
                return None
            if d > 0:
                chunk_base = old_strides[d - 1]
                tensor_numel = view_numel = 1
    if view_d != -1:
        return None
    return new_strides


def _differs(env, a, b):
    same = _same(env, a, b)
    if same is None:
        raise _Fail
    return not same


def _less(env, a, b):
    sign = _compare(env, a, b)
    if sign is None:
        raise _Fail
    return sign < 0


def _matmul(env, args, kwargs):
    """Batched matmul of equal batch sizes (or a 2-D right side): a contiguous result."""
    if kwargs or len(args) != 2:
        raise _Fail
    a, b = args
    if not isinstance(b, torch.Tensor) or a.dim() < 2 or b.dim() < 2 or b.dim() > a.dim() \
            or b.dim() > 2 and a.dim() != b.dim():
        raise _Fail
    _need(_same(env, a.shape[-1], b.shape[-2]))
    if b.dim() > 2:
        for x, y in zip(a.shape[:-2], b.shape[:-2]):
            _need(_same(env, x, y))
    sizes = [*a.shape[:-1], b.shape[-1]]
    return sizes, _contiguous_strides(env, sizes), 0, None


_POINTWISE = ("add", "sub", "mul", "truediv", "div", "gt", "lt", "ge", "le", "eq", "ne", "and_", "or_",
              "xor", "where", "neg", "softmax", "log_softmax", "to", "float", "masked_fill", "exp",
              "tanh", "sigmoid", "silu", "relu", "rsqrt", "pow", "logical_and", "logical_or",
              "logical_not", "bitwise_and", "bitwise_or", "type_as", "__and__", "__or__", "__invert__",
              "invert", "contiguous", "dropout", "clamp", "clamp_min", "clamp_max", "clip", "log", "log2",
              "log1p", "abs", "sqrt", "maximum", "minimum")
_RULES = dict.fromkeys(_POINTWISE, _pointwise)
_RULES.update({"cat": _cat, "concat": _cat, "getitem": _getitem, "expand": _expand, "transpose": _transpose,
               "reshape": _reshape(False), "view": _reshape(True), "matmul": _matmul,
               "stack": _stack, "max": _two_tensors, "min": _two_tensors})
_RULES.update(dict.fromkeys(symbolic_exact.LOSSES, symbolic_exact.loss))


_ON_A_TENSOR = {_getitem, _expand, _transpose, _RULES["reshape"], _RULES["view"]}


def _rule(kind, target):
    if kind == "call_method":
        return _RULES.get(target) if isinstance(target, str) else None
    if target is operator.getitem:
        return _getitem
    if target is operator.matmul:
        return _matmul
    module = getattr(target, "__module__", None) or ""
    if module in ("_operator", "operator") or module.startswith("torch"):
        return _RULES.get(getattr(target, "__name__", None))
    return None


# -- checking against meta tensors at the hints, building the fake result ----------------


def _hinted(env, value, memo):
    """value with symbolic sizes replaced by their current values: fake tensors become meta
    tensors of the same layout, requiring grad as they do."""
    if isinstance(value, torch.Tensor):
        key = id(value)
        if key not in memo:
            sizes = [_example(env, s) for s in value.shape]
            strides = [_example(env, s) for s in value.stride()]
            offset = _example(env, value.storage_offset())
            if offset:
                extent = offset + sum((s - 1) * st for s, st in zip(sizes, strides)) + 1 if all(sizes) else offset
                base = torch.empty(extent, dtype=value.dtype, device="meta")
                meta = base.requires_grad_(value.requires_grad).as_strided(sizes, strides, offset)
            else:
                meta = torch.empty_strided(sizes, strides, dtype=value.dtype, device="meta")
                meta.requires_grad_(value.requires_grad)
            memo[key] = (meta, value)
        return memo[key][0]
    if isinstance(value, torch.SymInt):
        return _example(env, value)
    if isinstance(value, (torch.SymFloat, torch.SymBool)):
        raise _Fail
    if isinstance(value, (list, tuple)) and not isinstance(value, torch.Size):
        return type(value)(_hinted(env, v, memo) for v in value)
    if isinstance(value, slice):
        return slice(*(_hinted(env, p, memo) for p in (value.start, value.stop, value.step)))
    return value


def _fake_tensors(values):
    for v in values:
        if isinstance(v, torch.Tensor):
            yield v
        elif isinstance(v, (list, tuple)) and not isinstance(v, torch.Size):
            yield from _fake_tensors(v)


def _same_device_to(kind, target, args, kwargs):
    if kind != "call_method" or target != "to" or len(args) != 2 or kwargs:
        return False
    device = args[1]
    if isinstance(device, str):
        try:
            device = torch.device(device)
        except RuntimeError:
            return False
    return isinstance(device, torch.device) and device == args[0].device


@contextlib.contextmanager
def _uncached(mode):
    """FakeTensorMode's op cache off: a hit rebuilds a result of symbolic sizes through
    SymInt arithmetic (7 ms for `as_strided` of a (s0, 6) tensor) where running the op
    takes 1.5 ms."""
    before = mode.cache_enabled
    mode.cache_enabled = False
    try:
        yield
    finally:
        mode.cache_enabled = before


def propagate(state, kind, target, args, kwargs):
    """The fake result of one op on symbolic sizes from the rules above, or None."""
    rule = _rule(kind, target)
    if rule is None or rule in _ON_A_TENSOR and not (args and isinstance(seen_by_op(args[0], "fake"), torch.Tensor)):
        return None
    from torch._subclasses.fake_tensor import FakeTensor

    mode = state.fake_mode
    fake_args = [seen_by_op(a, "fake") for a in args]
    fake_kwargs = {k: seen_by_op(v, "fake") for k, v in kwargs.items()}
    tensors = list(_fake_tensors([*fake_args, *fake_kwargs.values()]))
    if not tensors or any(type(t) is not FakeTensor or t.fake_mode is not mode or t.layout is not torch.strided
                          or t.device != tensors[0].device for t in tensors):
        return None
    # a result in autograd's graph: requires grad, no leaf (symbolic_exact.with_grad), as the op
    # on meta tensors requiring grad at the current values says
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    if _same_device_to(kind, target, fake_args, fake_kwargs):
        return fake_args[0]  # `x.to(x.device)`: x itself, as eager's
    memo, env = {}, mode.shape_env
    try:
        if rule is symbolic_exact.loss:
            return symbolic_exact.loss(env, mode, target, fake_args, fake_kwargs)
        if target is torch.where and len(fake_args) == 1:
            return symbolic_exact.where_nonzero(env, mode, fake_args, fake_kwargs)
        if rule is _getitem:
            selected = symbolic_exact.by_mask(env, mode, fake_args)
            if selected is not None:
                return symbolic_exact.with_grad(selected, tensors[:1]) if grad else selected
    except _Fail:
        return None
    try:
        hint_args = [_hinted(env, a, memo) for a in fake_args]
        hint_kwargs = {k: _hinted(env, v, memo) for k, v in fake_kwargs.items()}
        if kind == "call_method":  # in the grad mode of the op (a view made under no_grad of a
            hint = getattr(hint_args[0], target)(*hint_args[1:], **hint_kwargs)  # tensor that
        else:  # requires grad requires grad too, and is a leaf)
            hint = target(*hint_args, **hint_kwargs)
    except Exception:  # _Fail, or an op error FakeTensorMode will name
        return None
    if type(hint) is not torch.Tensor or hint.device.type != "meta":
        return None
    for meta, fake in memo.values():
        if hint is meta:  # `x.to(x.dtype)`, eval-mode dropout, `x.contiguous()`: x itself
            if (target if kind == "call_method" else getattr(target, "__name__", "")) == "contiguous" \
                    and not _canonical(env, fake):
                return None  # contiguous now, not for all values
            return fake
    try:
        sizes, strides, offset, base = rule(env, fake_args, fake_kwargs)
    except _Fail:
        return None
    if [_example(env, s) for s in sizes] != list(hint.shape) or [_example(env, s) for s in strides] != \
            list(hint.stride()) or (base is not None) != hint._is_view() \
            or base is not None and _example(env, offset) != hint.storage_offset() \
            or base is None and hint.storage_offset() != 0:
        return None  # the rule disagrees with the op at the current values: not used
    from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode

    try:
        if base is not None:
            with mode, _uncached(mode):
                out = torch.as_strided(base, sizes, strides, offset)  # a view: needs grad as base does
        else:
            out = FakeTensor(mode, torch.empty_strided(sizes, strides, dtype=hint.dtype, device="meta"),
                             tensors[0].device)
            if hint.requires_grad:
                out = symbolic_exact.with_grad(out, tensors)
    except GuardOnDataDependentSymNode:  # a size that depends on data, asked about: FakeTensorMode decides
        return None
    return out if out.requires_grad == hint.requires_grad and out.is_leaf == hint.is_leaf else None
