"""Rules on symbolic sizes for results that need grad (translate/symbolic_rules.py,
symbolic_exact.py), against eager.

A training step's ops on symbolic sizes mostly take tensors that require grad; the rules
declined all of them (each went to FakeTensorMode: 3-60 ms of sympy an op; faster_rcnn's and
yolov3's step 1 spent 0.4-0.5 s there, mostly `px[obj_mask]`, `deltas[pos]` and the losses).
Each result here is compared with eager's at several values of its symbols: sizes, strides,
offset, dtype, view or not, and what autograd makes of it (requires grad, leaf or not: an
in-place op on a leaf that requires grad raises, on a non-leaf it does not).
"""
import operator
import types

import pytest
import torch
import torch.nn.functional as F

import terra_dyn
from terra_dyn.translate import symbolic_rules
from terra_dyn.translate.size_exprs import shape_env

from .test_symbolic_rules import HANDLED, N0, OTHERS, _at, _fake, fake_args
from .test_symbolic_rules_data_sizes import _fake_ops
from .test_symbolic_rules_unbacked import _at as _at_values, _unbacked


def _needing_grad(t):
    """t, requiring grad if it can: a leaf, or for a view a view of a leaf that does."""
    if not isinstance(t, torch.Tensor) or not t.dtype.is_floating_point:
        return t
    if t._is_view():
        base = t._base.detach().clone().requires_grad_()
        return base.as_strided(t.size(), t.stride(), t.storage_offset())
    return t.detach().clone().requires_grad_()


def _with_grad(args):
    return [[_needing_grad(t) for t in a] if isinstance(a, list) else _needing_grad(a) for a in args]


def _assert_like(out, expected, at):
    assert [at(s) for s in out.shape] == list(expected.shape)
    assert [at(s) for s in out.stride()] == list(expected.stride())
    assert at(out.storage_offset()) == expected.storage_offset()
    assert out.dtype == expected.dtype and out._is_view() == expected._is_view()
    assert (out.requires_grad, out.is_leaf) == (expected.requires_grad, expected.is_leaf)


GRAD_CASES = sorted(c for c in HANDLED if c not in ("compare", "mask_rows"))  # no float input


@pytest.mark.parametrize("case", GRAD_CASES)
def test_rule_with_inputs_that_need_grad_matches_eager(case):
    kind, target, make = HANDLED[case]
    mode = torch._subclasses.fake_tensor.FakeTensorMode(shape_env=shape_env())
    state = types.SimpleNamespace(fake_mode=mode)
    fakes = fake_args(mode, make, _with_grad)
    with torch.enable_grad():
        out = symbolic_rules.propagate(state, kind, target, fakes, {})
    assert out is not None, "the rules left this op to FakeTensorMode"
    for n in (N0, *OTHERS):
        real = _with_grad(make(n, n))
        with torch.enable_grad():
            expected = getattr(real[0], target)(*real[1:]) if kind == "call_method" else target(*real)
        _assert_like(out, expected, lambda x: _at(x, n))


def test_no_grad_mode_gives_results_that_need_no_grad():
    mode = torch._subclasses.fake_tensor.FakeTensorMode(shape_env=shape_env())
    state = types.SimpleNamespace(fake_mode=mode)
    x = _fake(mode, torch.randn(2, N0, requires_grad=True), "x")
    with torch.no_grad():
        out = symbolic_rules.propagate(state, "call_function", operator.mul, [x, 2.0], {})
        view = symbolic_rules.propagate(state, "call_method", "transpose", [x, 0, 1], {})
        eager_view = torch.randn(2, 3, requires_grad=True).transpose(0, 1)
    assert not out.requires_grad and out.is_leaf
    assert (view.requires_grad, view.is_leaf) == (eager_view.requires_grad, eager_view.is_leaf) == (True, True)
    with torch.enable_grad():
        out = symbolic_rules.propagate(state, "call_function", operator.mul, [x, 2.0], {})
        flags = symbolic_rules.propagate(state, "call_function", operator.gt, [x, 0.0], {})
        cast = symbolic_rules.propagate(state, "call_method", "to", [x, torch.int64], {})
    assert out.requires_grad and not out.is_leaf
    assert (flags.requires_grad, flags.is_leaf, cast.requires_grad, cast.is_leaf) == (False, True, False, True)
    with mode, torch.enable_grad():
        out.add_(1)  # a non-leaf: an in-place op is allowed, as on eager's result
        with pytest.raises(RuntimeError):
            x.add_(1)


def _masked_env():
    env = shape_env()
    mode = torch._subclasses.fake_tensor.FakeTensorMode(shape_env=env)
    return env, mode, types.SimpleNamespace(fake_mode=mode)


def test_selection_by_a_mask_of_a_tensor_that_needs_grad():
    env, mode, state = _masked_env()
    u = _unbacked(mode, env)
    with mode:
        px = torch.empty(2, u).requires_grad_()
        tx = torch.empty(2, u)
        mask = torch.empty(2, u) > 0
    with torch.enable_grad():
        a = symbolic_rules.propagate(state, "call_function", operator.getitem, [px, mask], {})
        b = symbolic_rules.propagate(state, "call_function", operator.getitem, [tx, mask], {})
    with torch.no_grad():
        c = symbolic_rules.propagate(state, "call_function", operator.getitem, [px, mask], {})
    assert (a.requires_grad, a.is_leaf) == (True, False)
    assert (b.requires_grad, b.is_leaf, c.requires_grad) == (False, True, False)
    assert a.shape[0].node.expr == b.shape[0].node.expr == c.shape[0].node.expr


LOSSES = {
    "mse": (F.mse_loss, {}), "l1": (F.l1_loss, {}), "smooth_l1": (F.smooth_l1_loss, {"beta": 1 / 9}),
    "bce": (F.binary_cross_entropy, {}), "bce_logits": (F.binary_cross_entropy_with_logits, {}),
}
VALUES = (0, 1, 2, 5, 40)


@pytest.mark.parametrize("reduction", ("mean", "sum", "none"))
@pytest.mark.parametrize("grads", ((True, False), (False, True), (False, False)))
@pytest.mark.parametrize("dims", (1, 2))
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_loss_of_a_selection_matches_eager(loss, dims, grads, reduction):
    fn, kwargs = LOSSES[loss]
    kwargs = dict(kwargs, reduction=reduction)
    env, mode, state = _masked_env()
    u = _unbacked(mode, env)
    sizes = (u,) if dims == 1 else (u, 3)
    with mode:
        x, y = torch.empty(*sizes).requires_grad_(grads[0]), torch.empty(*sizes).requires_grad_(grads[1])
    with torch.enable_grad():
        out = symbolic_rules.propagate(state, "call_function", fn, [x, y], kwargs)
    assert out is not None, "the rules left this loss to FakeTensorMode"
    for n in VALUES:
        shape = (n,) if dims == 1 else (n, 3)
        real = [torch.rand(*shape).requires_grad_(g) for g in grads]
        with torch.enable_grad():
            expected = fn(*real, **kwargs)
        _assert_like(out, expected, lambda s: _at_values(s, {u.node.expr: n}))


def test_losses_the_rule_leaves_to_fake_tensor_mode():
    env, mode, state = _masked_env()
    u, m = _unbacked(mode, env), _unbacked(mode, env)
    with mode:
        x, y, z = torch.empty(u).requires_grad_(), torch.empty(u), torch.empty(m)
        d, w = torch.empty(u, dtype=torch.float64), torch.empty(u)
    cases = [
        (F.mse_loss, [x, z], {}),  # sizes that may differ: eager warns and broadcasts
        (F.binary_cross_entropy, [x, z], {}),  # eager raises unless they are equal
        (F.mse_loss, [x, d], {}),  # two dtypes
        (F.binary_cross_entropy, [x, y], {"weight": w}),
        (F.mse_loss, [x, y], {"size_average": False}),
        (F.mse_loss, [x, y], {"beta": 0.5}),  # eager raises: not a keyword of mse_loss
        (F.mse_loss, [x, y], {"reduction": "max"}),
    ]
    with torch.enable_grad():
        for fn, args, kwargs in cases:
            assert symbolic_rules.propagate(state, "call_function", fn, args, kwargs) is None, (fn, kwargs)


def _masked_step(x, w):
    px, tx, conf = x[0] * w, x[1], x[2]
    mask = conf > 0.5
    boxes = (px[mask] + 1).clamp(min=0)
    loss = F.mse_loss(px[mask], tx[mask]) + F.smooth_l1_loss(boxes, tx[mask], beta=1 / 9, reduction="sum")
    loss = loss + F.binary_cross_entropy(torch.sigmoid(px[mask]), conf[mask])
    return loss, boxes.requires_grad, boxes.is_leaf


def test_a_masked_training_loss_matches_eager_by_rule(monkeypatch):
    to_fake = _fake_ops(monkeypatch, ("getitem", "mse_loss", "smooth_l1_loss", "binary_cross_entropy", "add",
                                      "clamp", "sigmoid", "mul"))
    terra_dyn.reset()
    fast = terra_dyn.optimize(_masked_step, backend="interpreter")
    gen = torch.Generator().manual_seed(2)
    for n in (6, 8, 5, 9, 7, 12):
        x = torch.rand(3, 2, n, generator=gen)
        w = torch.rand(n, generator=gen)
        w1, w2 = w.clone().requires_grad_(), w.clone().requires_grad_()
        got, expected = fast(x, w1), _masked_step(x, w2)
        torch.testing.assert_close(got[0], expected[0], rtol=0, atol=0)
        assert got[1:] == expected[1:]
        got[0].backward()
        expected[0].backward()
        torch.testing.assert_close(w1.grad, w2.grad, rtol=0, atol=0)
    terra_dyn.reset()
    assert not to_fake, to_fake  # before: every op here on px (needs grad) went to FakeTensorMode
