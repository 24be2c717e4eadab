"""More rules on sizes that depend on data (translate/symbolic_rules.py): slices with symbolic
bounds (`positive[:num_pos]`), cat of 1-d/2-d sizes that may be 0, stack, elementwise
max/min/clamp/log, and `t[mask]` for a bool mask of t's sizes; against eager.

faster_rcnn's sampler and yolov3's masked losses ran each of these through FakeTensorMode at
every symbolic retranslation (10-40 ms of sympy an op: most of faster_rcnn's step 1). Each
result is compared with eager at several values of its symbols, 0 and 1 included; the cases a
rule must not take (a bound that may be negative, a symbolic step, a 3-d cat of a may-be-0
size, max/min that reduce, a mask over leading dims only) must answer None.
"""
import operator
import types

import pytest
import torch

import terra_dyn
from terra_dyn.translate import graph_state, symbolic_rules
from terra_dyn.translate.size_exprs import shape_env
from terra_dyn.translate.values import seen_by_op

from .test_symbolic_rules_unbacked import _at, _unbacked

VALUES = (0, 1, 2, 3, 5, 40)


def _env():
    env = shape_env()
    return env, torch._subclasses.fake_tensor.FakeTensorMode(shape_env=env)


# name: (kind, target, make(u, m, empty) -> args); `empty(*sizes)` makes a float tensor,
# u and m are two sizes that depend on data (ints when real)
CASES = {
    "slice to a min of the size": ("call_function", operator.getitem,
                                   lambda u, m, e: [e(u), slice(None, torch.sym_min(u, 3) if isinstance(u, torch.SymInt)
                                                                 else min(u, 3))]),
    "slice to another size": ("call_function", operator.getitem, lambda u, m, e: [e(u, 2), (slice(None, m), slice(None))]),
    "slice from another size": ("call_function", operator.getitem, lambda u, m, e: [e(u), slice(m, None)]),
    "slice of a static dim to a size": ("call_function", operator.getitem, lambda u, m, e: [e(7), slice(None, m)]),
    "slice to a size plus one": ("call_function", operator.getitem, lambda u, m, e: [e(u), slice(None, m + 1)]),
    "cat of may-be-empty": ("call_function", torch.cat, lambda u, m, e: [[e(u), e(m)]]),
    "cat of may-be-empty rows": ("call_function", torch.cat, lambda u, m, e: [[e(u, 4), e(m, 4)], 0]),
    "cat of may-be-empty columns": ("call_function", torch.cat, lambda u, m, e: [[e(3, u), e(3, m)], 1]),
    "stack of columns": ("call_function", torch.stack, lambda u, m, e: [[e(u), e(u), e(u)], 1]),
    "stack of rows": ("call_function", torch.stack, lambda u, m, e: [[e(u, 2), e(u, 2)]]),
    "max of boxes": ("call_function", torch.max, lambda u, m, e: [e(u, 1, 2), e(m, 2)]),
    "min of boxes": ("call_function", torch.min, lambda u, m, e: [e(u, 1, 2), e(3, 2)]),
    "max of box column views": ("call_function", torch.max,
                                lambda u, m, e: [e(u, 4)[:, None, :2], e(m, 4)[:, :2]]),
    "min of box column views": ("call_function", torch.min,
                                lambda u, m, e: [e(u, 4)[:, None, 2:], e(5, 4)[:, 2:]]),
    "sub of a column view and a row": ("call_function", operator.sub, lambda u, m, e: [e(u, 6)[:, 1:4], e(3)]),
    "clamp": ("call_method", "clamp", lambda u, m, e: [e(u, 4), 0.5, 2.0]),
    "clamp min": ("call_function", torch.clamp, lambda u, m, e: [e(u)]),
    "log": ("call_function", torch.log, lambda u, m, e: [e(u)]),
}
CASE_KWARGS = {"clamp min": {"min": 1.0}}

NOT_BY_RULE = {
    "slice to a bound that may be negative": ("call_function", operator.getitem, lambda u, m, e: [e(u), slice(None, m - 2)]),
    "slice with a symbolic step": ("call_function", operator.getitem, lambda u, m, e: [e(u), slice(None, None, m + 1)]),
    "cat of may-be-empty 3-d": ("call_function", torch.cat, lambda u, m, e: [[e(u, 2, 2), e(m, 2, 2)]]),
    "max reduces": ("call_function", torch.max, lambda u, m, e: [e(u, 2), 1]),
    "max of one": ("call_function", torch.max, lambda u, m, e: [e(u, 2)]),
    "stack of two sizes": ("call_function", torch.stack, lambda u, m, e: [[e(u), e(m)]]),
    "max of a transposed view": ("call_function", torch.max, lambda u, m, e: [e(u, 3).t(), e(3, 1)]),
    "add of a transposed view": ("call_function", operator.add, lambda u, m, e: [e(4, u).t(), e(4)]),
}


def _propagate(case, cases):
    kind, target, make = cases[case]
    env, mode = _env()
    u, m = _unbacked(mode, env), _unbacked(mode, env)

    def empty(*sizes):
        with mode:
            return torch.empty(*sizes)

    args = make(u, m, empty)
    state = types.SimpleNamespace(fake_mode=mode)
    before = len(env.guards)
    with torch.no_grad():
        out = symbolic_rules.propagate(state, kind, target, args, CASE_KWARGS.get(case, {}))
    assert len(env.guards) == before, "a rule guarded a size that depends on data"
    return out, u, m


@pytest.mark.parametrize("case", sorted(CASES))
def test_rule_on_sizes_that_depend_on_data_matches_eager(case):
    out, u, m = _propagate(case, CASES)
    assert out is not None, "the rules left this op to FakeTensorMode"
    kind, target, make = CASES[case]
    for n in VALUES:
        for k in VALUES:
            real_args = make(n, k, lambda *sizes: torch.rand(*sizes) + 0.5)
            kwargs = CASE_KWARGS.get(case, {})
            expected = getattr(real_args[0], target)(*real_args[1:], **kwargs) if kind == "call_method" \
                else target(*real_args, **kwargs)
            values = {u.node.expr: n, m.node.expr: k}
            assert [_at(s, values) for s in out.shape] == list(expected.shape), (n, k)
            if expected.numel():
                assert [_at(s, values) for s in out.stride()] == list(expected.stride()), (n, k)
            assert _at(out.storage_offset(), values) == expected.storage_offset(), (n, k)
            assert out.dtype == expected.dtype


@pytest.mark.parametrize("case", sorted(NOT_BY_RULE))
def test_rules_leave_open_cases_to_fake_tensor_mode(case):
    assert _propagate(case, NOT_BY_RULE)[0] is None


def test_a_mask_gives_one_count_for_every_selection_by_it():
    """`px[mask]` and `tx[mask]` have the same size (mse_loss compares them): one symbol per
    mask, another for another mask; a mask over leading dims only or of other sizes: None."""
    env, mode = _env()
    u = _unbacked(mode, env)
    with mode:
        px, tx = torch.empty(2, u), torch.empty(2, u)
        mask, other = torch.empty(2, u) > 0, torch.empty(2, u) < 0
        rows = torch.empty(2) > 0
    state = types.SimpleNamespace(fake_mode=mode)
    get = operator.getitem
    with torch.no_grad():
        a = symbolic_rules.propagate(state, "call_function", get, [px, mask], {})
        b = symbolic_rules.propagate(state, "call_function", get, [tx, mask], {})
        c = symbolic_rules.propagate(state, "call_function", get, [px, other], {})
        assert symbolic_rules.propagate(state, "call_function", get, [px, rows], {}) is None
        assert symbolic_rules.propagate(state, "call_function", get, [torch.empty(2, 3, device="meta"), mask], {}) is None
    assert a.dim() == b.dim() == c.dim() == 1 and a.stride() == (1,)
    assert a.shape[0].node.expr == b.shape[0].node.expr != c.shape[0].node.expr
    assert a.shape[0].node.expr not in (u.node.expr,)


def _sample(labels, boxes, anchors):
    """faster_rcnn's sampler and box encoding on sizes from torch.where."""
    positive = torch.where(labels >= 1)[0]
    negative = torch.where(labels == 0)[0]
    num_pos = min(positive.numel(), 3)
    num_neg = min(negative.numel(), 8 - num_pos)
    pos, neg = positive[:num_pos], negative[:num_neg]
    idx = torch.cat([pos, neg])
    b = boxes[pos]
    lt = torch.max(b[:, None, :2], anchors[:, :2])
    rb = torch.min(b[:, None, 2:], anchors[:, 2:])
    inter = (rb - lt).clamp(min=0)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    enc = torch.stack([torch.log(w + 1), torch.log(h + 1), w, h], dim=1)
    return idx, inter, enc


def _masked(x):
    px, tx, conf = x[0], x[1], x[2]
    mask = conf > 0.5
    return torch.nn.functional.mse_loss(px[mask], tx[mask]), px[~mask].sum(), tx[mask].numel()


def _fake_ops(monkeypatch, names):
    to_fake = []
    propagate = graph_state.GraphState._propagate_fake

    def counting(self, kind, target, args, kwargs):
        name = target if isinstance(target, str) else getattr(target, "__name__", target)
        on_tensors = any(isinstance(seen_by_op(a, "fake"), torch.Tensor) for a in args)
        if self._symbolic and on_tensors and name in names \
                and symbolic_rules.propagate(self, kind, target, args, kwargs) is None:
            to_fake.append(name)
        return propagate(self, kind, target, args, kwargs)

    monkeypatch.setattr(graph_state.GraphState, "_propagate_fake", counting)
    return to_fake


def test_a_sampler_with_slices_cat_stack_and_box_ops_matches_eager_by_rule(monkeypatch):
    # (max/min of the box views `b[:, None, :2]` stay with FakeTensorMode: a broadcast of
    # non-contiguous inputs, whose result layout follows theirs)
    to_fake = _fake_ops(monkeypatch, ("getitem", "cat", "stack", "clamp", "log"))
    terra_dyn.reset()
    fast = terra_dyn.optimize(_sample, backend="interpreter")
    gen = torch.Generator().manual_seed(0)
    anchors = torch.rand(5, 4, generator=gen) * 10
    with torch.no_grad():
        for n in (12, 16, 9, 20, 14, 11, 3, 30):
            labels = torch.randint(-1, 3, (n,), generator=gen)
            if n == 3:
                labels = torch.full((n,), -1)  # no positive, no negative: empty slices
            boxes = torch.rand(n, 4, generator=gen) * 10
            boxes[:, 2:] += boxes[:, :2]
            got, expected = fast(labels, boxes, anchors), _sample(labels, boxes, anchors)
            for g, e in zip(got, expected):
                torch.testing.assert_close(g, e, rtol=0, atol=0)
                assert g.shape == e.shape and (not e.numel() or g.stride() == e.stride())
    terra_dyn.reset()
    assert not to_fake, to_fake  # before: the slices, cat, stack, max/min, clamp and log went to FakeTensorMode


def test_masked_losses_match_eager_by_rule(monkeypatch):
    to_fake = _fake_ops(monkeypatch, ("getitem",))
    terra_dyn.reset()
    fast = terra_dyn.optimize(_masked, backend="interpreter")
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n in (6, 8, 5, 9, 7, 1):
            x = torch.rand(3, 2, n, generator=gen)
            got, expected = fast(x), _masked(x)
            torch.testing.assert_close(got[0], expected[0], rtol=0, atol=0)
            torch.testing.assert_close(got[1], expected[1], rtol=0, atol=0)
            assert got[2] == expected[2]
    terra_dyn.reset()
    assert not to_fake, to_fake


def test_where_of_one_tensor_matches_eager():
    """`torch.where(cond)`: one int64 view per dim of cond, of its count of nonzero entries,
    at offsets 0, count, ... of one tensor; by rule (it went to FakeTensorMode: 10-14 ms)."""
    env, mode = _env()
    u = _unbacked(mode, env)
    state = types.SimpleNamespace(fake_mode=mode)
    for dims in ((u,), (u, 3), (2, u, 2)):
        with mode:
            cond = torch.empty(*dims) > 0.5
        with torch.no_grad():
            out = symbolic_rules.propagate(state, "call_function", torch.where, [cond], {})
        assert isinstance(out, tuple) and len(out) == len(dims)
        count = out[0].shape[0]
        for n in VALUES:
            real = torch.rand(*[n if d is u else d for d in dims]) > 0.5
            expected = torch.where(real)
            values = {u.node.expr: n, count.node.expr: int(real.count_nonzero())}
            for o, e in zip(out, expected):
                assert [_at(s, values) for s in o.shape] == list(e.shape)
                assert [_at(s, values) for s in o.stride()] == list(e.stride())
                assert _at(o.storage_offset(), values) == e.storage_offset()
                assert o.dtype == e.dtype and o._is_view() == e._is_view() and not o.requires_grad
