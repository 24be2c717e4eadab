"""Rules whose results are exact by construction, with no check against the op run on meta
tensors at the symbols' values (symbolic_rules.propagate uses them):

    by_mask(env, mode, fake_args)  -> `t[mask]`'s fake result, or None when not that case

Meta tensors have no `nonzero`, so a selection by a bool mask cannot be checked there.
"""
import torch

from .size_decisions import _Fail, _canonical, _contiguous_strides, _need, _same


def by_mask(env, mode, args):
    """`t[mask]` for a bool mask of all of t's sizes (yolov3's `px[obj_mask]`): a 1-d result of
    the mask's count of True, the count from FakeTensorMode's nonzero (memoized on the mask:
    the same mask, unchanged, gives the same count, so `mse_loss(px[m], tx[m])` compares equal
    sizes). Meta tensors have no nonzero, so no meta check: None when not this case."""
    if len(args) != 2 or not isinstance(args[1], torch.Tensor):
        return None
    t, mask = args
    if mask.dtype is not torch.bool:
        return None
    if not t.dim() or mask.dim() != t.dim():
        raise _Fail  # indexes leading dims (a copy of t's layout) or a 0-d mask
    for a, b in zip(t.shape, mask.shape):
        _need(_same(env, a, b))
    with mode:
        count = torch.ops.aten.nonzero.default(mask).shape[0]
    from torch._subclasses.fake_tensor import FakeTensor

    return FakeTensor(mode, torch.empty_strided((count,), (1,), dtype=t.dtype, device="meta"), t.device)


# -- results that need grad ------------------------------------------------------------


class _Box:
    __slots__ = ("result",)


class _Attach(torch.autograd.Function):
    """Puts a result built by a rule into autograd's graph of the op's inputs, as the op would
    have: it requires grad and is no leaf (an in-place op on it is allowed; on a leaf it
    raises). forward hands back the result from a box: a tensor argument returned as it is
    would come back as a view of itself. Its backward never runs (a translation's fake
    tensors are only facts: `backward()` breaks)."""

    @staticmethod
    def forward(ctx, box, *inputs):
        return box.result

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError("terra_dyn: a fake result of a translation has no backward")


def with_grad(result, tensors):
    """A fresh (non-view) fake result as an op on `tensors` gives it under grad mode: requiring
    grad and no leaf when one of them requires grad and its dtype can (a bool or int result
    of such an op stays a leaf that needs no grad, as eager's does). ~0.1 ms, where running
    the op under FakeTensorMode costs 3-60 ms on symbolic sizes."""
    box = _Box()
    box.result = result
    return _Attach.apply(box, *(t for t in tensors if t.requires_grad))


# -- losses ---------------------------------------------------------------------------

LOSSES = ("mse_loss", "l1_loss", "smooth_l1_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits")
_UNSET_OPTIONS = ("weight", "pos_weight", "size_average", "reduce")  # allowed when None
_loss_facts = {}  # (op, options, dtypes, dim, requires_grad flags, grad mode) -> (dtype, requires_grad) or None


def loss(env, mode, target, args, kwargs):
    """F.mse_loss(input, target) and its kin (l1, smooth_l1, binary cross entropy with or
    without logits) of two tensors whose sizes are the same for all values (no broadcast: no
    size warning or error) and of one dtype, without weights: a 0-d result (reduction "mean"
    or "sum") or input's sizes, contiguous ("none"; contiguous inputs when of 2 dims or more).
    Its dtype and whether it needs grad do not depend on the sizes: they come from the op run
    once on meta tensors of size 2 per (op, options, dtype, dims, which need grad, grad mode)."""
    import torch.nn.functional as F

    name = getattr(target, "__name__", None)
    if name not in LOSSES or getattr(F, name) is not target or len(args) != 2:
        raise _Fail
    options = dict(kwargs)
    for key in _UNSET_OPTIONS:
        if key in options and options.pop(key) is not None:
            raise _Fail
    reduction = options.pop("reduction", "mean")
    beta = options.pop("beta", 1.0)
    if options or reduction not in ("mean", "sum", "none") or type(beta) not in (int, float) \
            or "beta" in kwargs and name != "smooth_l1_loss":
        raise _Fail
    x, y = args
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or x.dtype != y.dtype \
            or x.dim() != y.dim():
        raise _Fail
    for a, b in zip(x.shape, y.shape):
        _need(_same(env, a, b))
    if reduction == "none" and x.dim() > 1:
        _need(_canonical(env, x) and _canonical(env, y))
    grad = torch.is_grad_enabled()
    key = (name, tuple(sorted(kwargs.items())), x.dtype, x.dim(), x.requires_grad, y.requires_grad, grad)
    if key not in _loss_facts:
        _loss_facts[key] = _loss_check(target, x, y, kwargs, reduction)
    facts = _loss_facts[key]
    _need(facts is not None)
    dtype, requires_grad = facts
    sizes = [] if reduction != "none" else list(x.shape)
    from torch._subclasses.fake_tensor import FakeTensor

    out = FakeTensor(mode, torch.empty_strided(sizes, _contiguous_strides(env, sizes), dtype=dtype, device="meta"),
                     x.device)
    if requires_grad:
        out = with_grad(out, (x, y))
        _need(out.requires_grad)
    return out


def _loss_check(target, x, y, kwargs, reduction):
    """(dtype, requires_grad) of the op on meta tensors of size 2 in every dim, or None when it
    fails there or gives another layout than the rule's."""
    metas = [torch.empty([2] * t.dim(), dtype=t.dtype, device="meta").requires_grad_(t.requires_grad) for t in (x, y)]
    try:
        out = target(*metas, **kwargs)
    except Exception:
        return None
    dims = x.dim() if reduction == "none" else 0
    if type(out) is not torch.Tensor or out.dim() != dims or not out.is_contiguous() or out._is_view():
        return None
    return out.dtype, out.requires_grad


def where_nonzero(env, mode, args, kwargs):
    """torch.where(cond) of one tensor: cond.dim() int64 tensors of its count of nonzero
    entries, views of one contiguous (dims, count) tensor (stride 1, offset i * count), as
    eager's nonzero_numpy returns them. The count from FakeTensorMode's nonzero, memoized on
    cond; the views by as_strided (FakeTensorMode ran nonzero, a transpose, a copy and unbind
    through its dispatch: 10-14 ms a call, ten in a faster_rcnn step)."""
    if len(args) != 1 or kwargs or not isinstance(args[0], torch.Tensor) or not args[0].dim():
        raise _Fail
    cond = args[0]
    with mode:
        count = torch.ops.aten.nonzero.default(cond).shape[0]
    from torch._subclasses.fake_tensor import FakeTensor

    dims = cond.dim()
    base = FakeTensor(mode, torch.empty_strided((dims, count), _contiguous_strides(env, [dims, count]),
                                                dtype=torch.int64, device="meta"), cond.device)
    with mode:
        return tuple(torch.as_strided(base, (count,), (1,), i * count) for i in range(dims))
