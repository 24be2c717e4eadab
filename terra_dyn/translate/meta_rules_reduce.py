"""Shape rules (see meta_rules) for reductions, comparisons, `where`, `clamp` and `stack`.

    meta_rules.infer("call_method", "sum", [x_meta, -1], {}, cpu)   # a meta tensor, or None

torch's meta kernels for these are Python (torch._prims' reduction meta, torch._refs'
elementwise wrappers): each call costs 0.3-3 ms, and the first one in a process imports
sympy and torch._dynamo (1-2 s). These rules give the same facts from C++ ops only for the
plain cases: contiguous strided inputs, plain int dims, no `dtype=` / `out=`. Anything else
returns None, and the meta kernel (or FakeTensorMode) decides and raises eager's error.

Example: `x.sum(-1, keepdim=True)` with x (2, 8, 64) float32 gives an empty meta tensor
(2, 8, 1), contiguous, requiring grad when x does and grad mode is on.
"""
import operator

import torch

from .meta_rules import _broadcast, _floats, _fresh, _strided


def _plain(*tensors):
    """Contiguous strided meta tensors of real (not complex) dtypes."""
    return _strided(*tensors) and all(t.is_contiguous() and not t.dtype.is_complex for t in tensors)


def _dims(x, dim):
    """`dim` (an int or a tuple/list of ints) as a sorted tuple of distinct dims of x, all
    of them for None; None when eager would reject it or reduce in an unusual way."""
    if dim is None:
        return tuple(range(x.dim()))
    dims = (dim,) if type(dim) is int else tuple(dim) if isinstance(dim, (tuple, list)) else None
    if not dims or not all(type(d) is int for d in dims):
        return None  # an empty dim list reduces everything in some ops, nothing in others
    rank = max(x.dim(), 1)
    if not all(-rank <= d < rank for d in dims):
        return None
    normal = [d % rank for d in dims]
    if len(set(normal)) != len(normal):
        return None  # eager: "dim appears multiple times"
    return tuple(sorted(normal)) if x.dim() else ()


def _reduced(x, dim, keepdim, dtype, differentiable=True):
    if type(keepdim) is not bool:
        return None
    dims = _dims(x, dim)
    if dims is None or any(x.shape[d] == 0 for d in dims) and not differentiable:
        return None  # argmax/amax of an empty dim raises
    shape = [1 if d in dims else n for d, n in enumerate(x.shape)] if keepdim else \
        [n for d, n in enumerate(x.shape) if d not in dims]
    return _fresh(shape, dtype, (x,) if differentiable else ())


def _sum(x, dim=None, keepdim=False, *, dtype=None):
    if dtype is not None or not _plain(x):
        return None
    out = x.dtype if x.dtype.is_floating_point else torch.int64
    return _reduced(x, dim, keepdim, out, differentiable=x.dtype.is_floating_point)


def _mean(x, dim=None, keepdim=False, *, dtype=None):
    if dtype is not None or not _plain(x) or not _floats(x):
        return None
    return _reduced(x, dim, keepdim, x.dtype)


def _extreme(x, dim=None, keepdim=False):
    """amax / amin: dim=None or omitted reduces every dim."""
    if not _plain(x) or not _floats(x) or x.numel() == 0:
        return None
    return _reduced(x, dim, keepdim, x.dtype)


def _arg_extreme(x, dim=None, keepdim=False):
    if not _plain(x) or x.dtype is torch.bool or x.numel() == 0 or dim is None and keepdim:
        return None
    return _reduced(x, dim, keepdim, torch.int64, differentiable=False)


def _any_all(x, dim=None, keepdim=False):
    if not _plain(x) or x.dtype is not torch.bool or dim is not None and type(dim) is not int:
        return None
    return _reduced(x, dim, keepdim, torch.bool, differentiable=False)


def _var(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    if not _plain(x) or not _floats(x) or type(unbiased) not in (bool, type(None)) \
            or correction is not None and (type(correction) not in (int, float) or unbiased is not None):
        return None
    return _reduced(x, dim, keepdim, x.dtype)


def _norm(x, p="fro", dim=None, keepdim=False, dtype=None):
    """Tensor.norm / torch.norm with a number p (or the default) over given dims."""
    if dtype is not None or not _plain(x) or not _floats(x) \
            or not (p in (None, "fro") or type(p) in (int, float)) or p == "fro" and dim is not None and type(dim) is not int:
        return None
    return _reduced(x, dim, keepdim, x.dtype)


def _vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    if type(ord) not in (int, float):
        return None
    return _norm(x, ord, dim, keepdim, dtype)


def _logsumexp(x, dim, keepdim=False):
    if not _plain(x) or not _floats(x):
        return None
    return _reduced(x, dim, keepdim, x.dtype)


def _number(n):
    return type(n) in (int, float, bool)


def _compare(a, b):
    """a < b and friends: a bool tensor of the broadcast shape."""
    tensors = [t for t in (a, b) if isinstance(t, torch.Tensor)]
    if not tensors or not _plain(*tensors) or not all(_number(n) for n in (a, b) if not isinstance(n, torch.Tensor)):
        return None
    shape = _broadcast(*(t.shape for t in tensors))
    return None if shape is None else _fresh(shape, torch.bool, ())


def _logical(a, b=None):
    """&, |, ^ and ~ of bool tensors (bitwise on integers: the meta kernel decides)."""
    operands = (a,) if b is None else (a, b)
    tensors = [t for t in operands if isinstance(t, torch.Tensor)]
    if not tensors or not _plain(*tensors) or any(t.dtype is not torch.bool for t in tensors) \
            or any(type(n) is not bool for n in operands if not isinstance(n, torch.Tensor)):
        return None
    shape = _broadcast(*(t.shape for t in tensors))
    return None if shape is None else _fresh(shape, torch.bool, ())


def _logical_tensors(a, b=None):
    """torch.logical_and / or / not: tensors only (a Python bool raises)."""
    if not isinstance(a, torch.Tensor) or b is not None and not isinstance(b, torch.Tensor):
        return None
    return _logical(a, b)


def _where(condition, a=None, b=None):
    """The three-argument form, values promoted as a binary op promotes them."""
    if a is None or b is None or not isinstance(condition, torch.Tensor) or condition.dtype is not torch.bool:
        return None
    values = [t for t in (a, b) if isinstance(t, torch.Tensor)]
    numbers = [n for n in (a, b) if not isinstance(n, torch.Tensor)]
    if not values or not _plain(condition, *values) or not all(type(n) in (int, float) for n in numbers):
        return None
    shape = _broadcast(condition.shape, *(t.shape for t in values))
    if shape is None:
        return None
    dtype = torch.result_type(a, b)
    return _fresh(shape, dtype, values if dtype.is_floating_point else ())


def _clamp(x, min=None, max=None):
    if not _plain(x) or not _floats(x) or min is None and max is None \
            or not all(type(n) in (int, float, type(None)) for n in (min, max)):
        return None
    return _fresh(x.shape, x.dtype, (x,))


def _stack(tensors, dim=0):
    tensors = list(tensors) if isinstance(tensors, (tuple, list)) else None
    if not tensors or type(dim) is not int or not _plain(*tensors) or not _floats(*tensors) \
            or any(t.shape != tensors[0].shape for t in tensors):
        return None
    rank = tensors[0].dim() + 1
    if not -rank <= dim < rank:
        return None
    shape = list(tensors[0].shape)
    shape.insert(dim % rank, len(tensors))
    return _fresh(shape, tensors[0].dtype, tensors)


_COMPARISONS = ("eq", "ne", "lt", "le", "gt", "ge")
RULES = {
    **{getattr(operator, n): _compare for n in _COMPARISONS},
    **{getattr(torch, n): _compare for n in _COMPARISONS},
    operator.and_: _logical, operator.or_: _logical, operator.xor: _logical, operator.invert: _logical,
    torch.logical_and: _logical_tensors, torch.logical_or: _logical_tensors, torch.logical_not: _logical_tensors,
    torch.sum: _sum, torch.mean: _mean, torch.amax: _extreme, torch.amin: _extreme,
    torch.argmax: _arg_extreme, torch.argmin: _arg_extreme, torch.any: _any_all, torch.all: _any_all,
    torch.var: _var, torch.std: _var, torch.norm: _norm, torch.linalg.vector_norm: _vector_norm,
    torch.logsumexp: _logsumexp, torch.where: _where, torch.clamp: _clamp, torch.stack: _stack,
}
METHOD_RULES = {
    **{n: _compare for n in _COMPARISONS},
    "logical_and": _logical_tensors, "logical_or": _logical_tensors, "logical_not": _logical_tensors,
    "sum": _sum, "mean": _mean, "amax": _extreme, "amin": _extreme, "argmax": _arg_extreme,
    "argmin": _arg_extreme, "any": _any_all, "all": _any_all, "var": _var, "std": _var,
    "norm": _norm, "logsumexp": _logsumexp, "clamp": _clamp,
}
