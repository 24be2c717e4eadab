"""Rules for ops on sizes that depend on data (unbacked symbols: `torch.where(mask)[0]`'s
length), against eager (translate/symbolic_rules.py, size_decisions._example).

faster_rcnn's sampler and box code run on such sizes at every symbolic retranslation; the
rules declined every op on them (their meta check needs a value for each size, and an
unbacked symbol has none), so each went to FakeTensorMode (~5 ms of sympy an op). Now the
meta check runs at one value in the symbol's range; no decision is guarded on it (an
equality of two such sizes, a clamp, stays with FakeTensorMode). Each result is compared
with eager at several values of the symbol, 0 and 1 included.
"""
import operator
import types

import pytest
import torch

import terra_dyn
from terra_dyn.translate import graph_state, symbolic_rules
from terra_dyn.translate.size_exprs import shape_env
from terra_dyn.translate.values import seen_by_op

VALUES = (0, 1, 2, 3, 7, 20)


def _unbacked(mode, env):
    with mode:
        u = env.create_unbacked_symint()
        torch._check(u >= 0)
    return u


def _at(x, values):
    return x if isinstance(x, int) else int(x.node.expr.xreplace(values))


def _rows(n, cols, dtype=torch.float32):
    return torch.arange(n * cols, dtype=dtype).reshape(n, cols) if cols else torch.arange(n, dtype=dtype)


CASES = {
    # name: (op as (kind, target), make(fake or real rows-tensor maker) -> args)
    "column difference": (("call_function", operator.sub), lambda t, i: [t[:, 2], t[:, 0]]),
    "column times half": (("call_function", operator.mul), lambda t, i: [t[:, 1], 0.5]),
    "column over column": (("call_method", "div"), lambda t, i: [t[:, 3], t[:, 1] + 1]),
    "rows by index": (("call_function", operator.getitem), lambda t, i: [t, i]),
    "rows by index, full slice": (("call_function", operator.getitem), lambda t, i: [t, (i, slice(None))]),
    "index of an index": (("call_function", operator.getitem), lambda t, i: [i, i]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rule_on_a_size_that_depends_on_data_matches_eager(case):
    (kind, target), make = CASES[case]
    env = shape_env()
    mode = torch._subclasses.fake_tensor.FakeTensorMode(shape_env=env)
    u, m = _unbacked(mode, env), _unbacked(mode, env)
    with mode:
        t = torch.empty(u, 4)
        idx = torch.empty(m, dtype=torch.int64)
    args = make(t, idx)
    with torch.no_grad(), mode:  # the columns / sums the case makes are fakes too
        args = make(t, idx)
    state = types.SimpleNamespace(fake_mode=mode)
    with torch.no_grad():
        out = symbolic_rules.propagate(state, kind, target, args, {})
    assert out is not None, "the rules left this op to FakeTensorMode"
    su, sm = u.node.expr, m.node.expr
    for n in VALUES:
        for k in VALUES:
            if case.startswith("index of") and k > 0 and k > n:
                continue
            real_t = _rows(n, 4)
            real_i = torch.arange(k, dtype=torch.int64) % max(n, 1) if n else torch.zeros(0, dtype=torch.int64)
            if not n:
                k = 0
                real_i = torch.zeros(0, dtype=torch.int64)
            real_args = make(real_t, real_i)
            expected = getattr(real_args[0], target)(*real_args[1:]) if kind == "call_method" else target(*real_args)
            values = {su: n, sm: k}
            assert [_at(s, values) for s in out.shape] == list(expected.shape), (n, k)
            assert [_at(s, values) for s in out.stride()] == list(expected.stride()), (n, k)
            assert _at(out.storage_offset(), values) == expected.storage_offset()
            assert out.dtype == expected.dtype


def test_two_sizes_that_depend_on_data_are_never_guarded_equal():
    """(u0,) + (u1,): equal or not depends on data; a rule must not guard it (the translation
    would assume it for every call): FakeTensorMode decides."""
    env = shape_env()
    mode = torch._subclasses.fake_tensor.FakeTensorMode(shape_env=env)
    u, m = _unbacked(mode, env), _unbacked(mode, env)
    with mode:
        a, b = torch.empty(u), torch.empty(m)
    state = types.SimpleNamespace(fake_mode=mode)
    before = len(env.guards)
    with torch.no_grad():
        assert symbolic_rules.propagate(state, "call_function", operator.add, [a, b], {}) is None
        with mode:
            mask = torch.empty(u, 4) > 0
            t = torch.empty(u, 4)
        # `t[mask]`: a count of its own (FakeTensorMode's nonzero), never guarded equal to u
        selected = symbolic_rules.propagate(state, "call_function", operator.getitem, [t, mask], {})
        assert selected is not None and selected.shape[0].node.expr != u.node.expr
    assert len(env.guards) == before


def _sample(labels, boxes):
    """faster_rcnn's sampler and box arithmetic: sizes from torch.where, sliced and gathered."""
    positive = torch.where(labels >= 1)[0]
    negative = torch.where(labels == 0)[0]
    num_pos = min(positive.numel(), 3)
    num_neg = min(negative.numel(), 8 - num_pos)
    idx = torch.cat([positive[:num_pos], negative[:num_neg]])
    b = boxes[idx]
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    centre = b[:, 0] + 0.5 * w
    return idx, b, w * h, centre / (h + 1), labels[idx]


def test_a_sampler_on_sizes_that_depend_on_data_matches_eager_with_its_box_ops_by_rule(monkeypatch):
    to_fake = []
    propagate = graph_state.GraphState._propagate_fake

    def counting(self, kind, target, args, kwargs):
        name = getattr(target, "__name__", target)
        on_tensors = any(isinstance(seen_by_op(a, "fake"), torch.Tensor) for a in args)
        if self._symbolic and on_tensors and name in ("sub", "mul", "truediv", "add", "getitem") \
                and symbolic_rules.propagate(self, kind, target, args, kwargs) is None:
            to_fake.append(name)
        return propagate(self, kind, target, args, kwargs)

    monkeypatch.setattr(graph_state.GraphState, "_propagate_fake", counting)
    terra_dyn.reset()
    fast = terra_dyn.optimize(_sample, backend="interpreter")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for n in (12, 16, 9, 20, 14, 11):
            labels = torch.randint(-1, 3, (n,), generator=gen)
            boxes = torch.rand(n, 4, generator=gen) * 10
            got, expected = fast(labels, boxes), _sample(labels, boxes)
            for g, e in zip(got, expected):
                torch.testing.assert_close(g, e, rtol=0, atol=0)
                assert g.stride() == e.stride()
    terra_dyn.reset()
    # the box arithmetic and the gathers by index are by rule (before: all to FakeTensorMode)
    assert to_fake.count("sub") == 0 and to_fake.count("mul") == 0 and to_fake.count("truediv") == 0, to_fake
