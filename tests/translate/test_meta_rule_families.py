"""meta_rules_reduce and meta_rules_nn give eager's facts (sizes, strides, dtype, requires_grad)
or decline: every generated case is run by eager on real tensors and by the rule on meta
tensors; a rule that answers where eager raises, or answers differently, fails."""
import itertools
import operator
import random
import warnings

import pytest
import torch
import torch.nn.functional as F

from terra_dyn.translate import meta_rules

SHAPES = [(), (5,), (1,), (0,), (4, 8), (1, 8), (4, 1), (3, 0), (2, 3, 5), (2, 1, 5), (1, 1, 1)]
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.bool]


def _tensor(rng, shape, dtype, layout):
    if dtype is torch.bool:
        t = torch.rand(shape) > 0.5
    elif dtype.is_floating_point:
        t = torch.randn(shape).to(dtype)
    else:
        t = torch.randint(-4, 5, shape, dtype=dtype)
    if layout == "transposed" and t.dim() >= 2:
        t = t.transpose(-1, -2).contiguous().transpose(-1, -2)
    if layout == "sliced" and t.dim() >= 1 and t.shape[-1] > 1:
        t = torch.cat([t, t], -1)[..., ::2]
    return t


def _meta(value, grad):
    if isinstance(value, (list, tuple)):
        return type(value)(_meta(v, grad) for v in value)
    if not isinstance(value, torch.Tensor):
        return value
    m = torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device="meta")
    return m.requires_grad_(True) if grad and value.dtype.is_floating_point else m


def _real(value, grad):
    if isinstance(value, (list, tuple)):
        return type(value)(_real(v, grad) for v in value)
    if isinstance(value, torch.Tensor) and grad and value.dtype.is_floating_point:
        return value.detach().requires_grad_(True)  # a clone would lose a slice's strides
    return value


def _facts(t):
    return tuple(t.shape), t.stride(), t.dtype, t.requires_grad


def _check(kind, target, args, kwargs, grad, grad_mode=True):
    """Compare the rule with eager; True when the rule answered."""
    with torch.set_grad_enabled(grad_mode):
        metas = [_meta(a, grad) for a in args]
        out = meta_rules.infer(kind, target, metas, dict(kwargs), torch.device("cpu"))
        if out is None:
            return False
        reals = [_real(a, grad) for a in args]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                eager = getattr(reals[0], target)(*reals[1:], **kwargs) if kind == "call_method" \
                    else target(*reals, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the rule must have declined
                raise AssertionError(f"rule answered {_facts(out)} where eager raises {exc!r}")
    assert _facts(out) == _facts(eager), (target, [getattr(a, "shape", a) for a in args], kwargs)
    if eager is reals[0]:
        assert out is metas[0], target  # eager returned its input itself (dropout off): so does the rule
    return True


def _cases():
    rng = random.Random(0)
    torch.manual_seed(0)
    unary_float = [("call_method", "sum", (-1,), {}), ("call_method", "sum", (), {}),
                   ("call_method", "sum", ((0, -1),), {"keepdim": True}), ("call_function", torch.sum, (0,), {}),
                   ("call_method", "mean", (-1,), {"keepdim": True}), ("call_function", torch.mean, (), {}),
                   ("call_method", "amax", (-1,), {}), ("call_function", torch.amin, (), {}),
                   ("call_method", "argmax", (-1,), {}), ("call_method", "argmax", (), {}),
                   ("call_function", torch.argmin, (0,), {"keepdim": True}),
                   ("call_method", "var", (-1,), {"unbiased": False}), ("call_method", "std", (), {}),
                   ("call_function", torch.var, (0,), {"correction": 0}),
                   ("call_method", "norm", (), {}), ("call_method", "norm", (), {"dim": -1, "keepdim": True}),
                   ("call_function", torch.norm, (2, 0), {}), ("call_function", torch.linalg.vector_norm, (), {"dim": -1}),
                   ("call_function", torch.logsumexp, (-1,), {}), ("call_method", "logsumexp", (0, True), {}),
                   ("call_function", torch.clamp, (-0.5, 0.5), {}), ("call_method", "clamp", (), {"min": 0}),
                   ("call_function", F.log_softmax, (), {"dim": -1}), ("call_method", "log_softmax", (0,), {}),
                   ("call_function", F.dropout, (0.3,), {}), ("call_function", F.dropout, (0.3, False), {}),
                   ("call_function", F.dropout, (0.0,), {}), ("call_method", "any", (), {}), ("call_method", "all", (-1,), {}),
                   ("call_function", torch.logical_not, (), {}), ("call_function", operator.invert, (), {})]
    combos = list(itertools.product(unary_float, SHAPES, DTYPES, ["contiguous", "transposed", "sliced"]))
    for (kind, target, extra, kwargs), shape, dtype, layout in rng.sample(combos, 1500):
        yield kind, target, (_tensor(rng, shape, dtype, layout), *extra), kwargs
    binary = [operator.gt, operator.eq, torch.ne, "le", operator.and_, operator.or_, operator.xor, torch.logical_and]
    pairs = [((4, 8), (8,)), ((4, 1), (1, 8)), ((2, 3, 5), (3, 1)), ((), (3,)), ((4, 8), (5,)), ((4, 8), ())]
    for target, (sa, sb), (da, db) in itertools.product(binary, pairs, [(torch.float32, torch.float32), (torch.float32, torch.int64),
                                                                          (torch.bool, torch.bool), (torch.float16, torch.float64)]):
        a, b = _tensor(rng, sa, da, "contiguous"), _tensor(rng, sb, db, "contiguous")
        kind = "call_method" if isinstance(target, str) else "call_function"
        yield kind, target, (a, b), {}
        yield kind, target, (a, 0 if da is not torch.bool else True), {}
    arithmetic = [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow, torch.add, "mul", "sub"]
    for target, (sa, sb), (da, db) in itertools.product(arithmetic, pairs, [
            (torch.float32, torch.bool), (torch.bool, torch.float16), (torch.int64, torch.float32), (torch.float64, torch.int32),
            (torch.int64, torch.int64), (torch.bool, torch.bool), (torch.float16, torch.float32), (torch.float32, torch.float32)]):
        a, b = _tensor(rng, sa, da, "contiguous"), _tensor(rng, sb, db, "contiguous")
        kind = "call_method" if isinstance(target, str) else "call_function"
        yield kind, target, (a, b), {}
        yield kind, target, (a, 2.5), {}
        yield kind, target, (a[..., :1] if a.dim() else a, 3), {}
    for sc, sa, sb, (da, db) in itertools.product([(4, 8), (8,), (4, 1)], [(4, 8), (1, 8), ()], [(8,), (4, 1), ()],
                                                [(torch.float32, torch.float32), (torch.float16, torch.float32), (torch.int64, torch.float32)]):
        cond = _tensor(rng, sc, torch.bool, "contiguous")
        yield "call_function", torch.where, (cond, _tensor(rng, sa, da, "contiguous"), _tensor(rng, sb, db, "contiguous")), {}
        yield "call_function", torch.where, (cond, _tensor(rng, sa, da, "contiguous"), 0.5), {}
        yield "call_function", torch.where, (cond, 0, _tensor(rng, sb, db, "contiguous")), {}
    for shapes, dim in itertools.product([[(4, 8), (4, 8)], [(3,), (3,), (3,)], [(4, 8), (4, 7)], [()]], [0, 1, -1, 3]):
        yield "call_function", torch.stack, ([_tensor(rng, s, torch.float32, "contiguous") for s in shapes],), {"dim": dim}
    convs = list(itertools.product([1, 2], [1, 3], [9, 4], [4, 6], [1, 3], [1, 2], [0, 1, "same", "valid"], [1, 2],
                                   [1, 3], [False, True]))
    for n, c, size, out, k, stride, padding, dilation, groups, bias in rng.sample(convs, 150):
        for spatial, conv in ((1, torch.conv1d), (2, torch.conv2d)):
            x = torch.randn(n, c, *([size] * spatial))
            w = torch.randn(out, max(c // groups, 1), *([k] * spatial))
            b = torch.randn(out) if bias else None
            yield "call_function", conv, (x, w, b, stride, padding, dilation, groups), {}
        yield "call_function", torch.conv2d, (torch.randn(c, size, size), torch.randn(out, c, k, k)), {}
    for shape in [(4, 8), (8,), (2, 3, 5), (0, 8), ()]:
        for reduction in ["mean", "sum", "none"]:
            a, b = torch.rand(shape), torch.rand(shape)
            for loss in (F.mse_loss, F.l1_loss, F.smooth_l1_loss, F.huber_loss, F.binary_cross_entropy,
                         F.binary_cross_entropy_with_logits):
                yield "call_function", loss, (a, b), {"reduction": reduction}
            yield "call_function", F.mse_loss, (a, torch.rand(shape[-1:] if shape else ())), {"reduction": reduction}
    for scores, target, weight, smoothing in [((4, 8), (4,), False, 0.0), ((8,), (), True, 0.1), ((2, 5, 3), (2, 3), True, 0.0),
                                              ((4, 8), (5,), False, 0.0), ((4, 8), (4, 8), False, 0.0), ((4, 8), (4,), True, 0.2)]:
        for reduction in ["mean", "sum", "none"]:
            x = torch.randn(scores)
            classes = scores[0] if len(scores) == 1 else scores[1]
            t = torch.randint(0, classes, target) if target != scores else torch.rand(target)
            w = torch.rand(classes) if weight else None
            yield "call_function", F.cross_entropy, (x, t), {"weight": w, "reduction": reduction, "label_smoothing": smoothing}
            yield "call_function", F.nll_loss, (x.log_softmax(-1), t), {"weight": w, "reduction": reduction}


CASES = list(_cases())


@pytest.mark.parametrize("grad", [False, True])
def test_rule_families_match_eager_or_decline(grad):
    answered = sum(_check(kind, target, args, kwargs, grad) for kind, target, args, kwargs in CASES)
    assert answered > len(CASES) // 3  # the rules do cover the plain cases


def test_results_do_not_require_grad_without_grad_mode():
    for kind, target, args, kwargs in CASES[:400]:
        _check(kind, target, args, kwargs, grad=True, grad_mode=False)


@pytest.mark.parametrize("kind,target,args,kwargs", [
    ("call_method", "sum", (torch.randn(4, 8), -1), {}),
    ("call_function", torch.conv2d, (torch.randn(2, 3, 9, 9), torch.randn(4, 3, 3, 3), None, 1, 1), {}),
    ("call_function", F.cross_entropy, (torch.randn(4, 8), torch.randint(0, 8, (4,))), {}),
    ("call_function", operator.gt, (torch.randn(4, 8), 0), {}),
    ("call_function", torch.where, (torch.rand(4, 8) > 0.5, torch.randn(4, 8), 0.0), {}),
    ("call_function", F.dropout, (torch.randn(4, 8), 0.1, True), {}),
])
def test_the_plain_cases_are_answered(kind, target, args, kwargs):
    assert _check(kind, target, args, kwargs, grad=True)
