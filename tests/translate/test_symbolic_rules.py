"""Sizes and strides by rule for ops on symbolic sizes (translate/symbolic_rules.py), against eager.

Each case makes fake inputs whose size-n dims are symbols (as a symbolic retranslation does),
asks the rules for the result, then evaluates its sizes, strides and storage offset at other
values of n and compares them with the op run eagerly on real tensors of that size: a rule
that is right only at the size it was asked at fails here. Cases the rules must leave to
FakeTensorMode (a symbol broadcast against a constant, a step on a symbolic dim, a view that
needs a copy) must answer None.
"""
import operator
import types

import pytest
import torch
import torch.nn.functional as F

import terra_dyn
from terra_dyn import report
from terra_dyn.translate import graph_state, symbolic_rules
from terra_dyn.translate.size_exprs import NumberSource, shape_env

N0 = 6  # the size the rules see; the others they must also be right for
OTHERS = (2, 3, 5, 9, 17)


def _fake(mode, real, name):
    """A fake of `real` with its dims of size N0 symbolic (strides inferred, base static)."""
    from torch.fx.experimental.symbolic_shapes import DimDynamic, StatelessSymbolicContext

    n = real.dim()
    base = None
    if real._is_view():
        base = StatelessSymbolicContext(dynamic_sizes=[DimDynamic.STATIC] * real._base.dim())
    context = StatelessSymbolicContext(
        dynamic_sizes=[DimDynamic.DYNAMIC if s == N0 else DimDynamic.STATIC for s in real.shape],
        dynamic_strides=[DimDynamic.INFER_STRIDE] * n, constraint_sizes=[None] * n, view_base_context=base)
    return mode.from_tensor(real, symbolic_context=context, source=NumberSource(name))


def _at(x, n):
    if isinstance(x, int):
        return x
    expr = x.node.expr
    return int(expr.xreplace({s: n for s in expr.free_symbols}))


def fake_args(mode, make, prepare=lambda args: args):
    """make(n, m)'s arguments with fakes for its tensors (size-N0 dims symbolic) and the symbol
    for the numbers; `prepare` maps the real arguments first."""
    args = prepare(make(N0, N0))
    fakes = [_fake(mode, a, f"a{i}") if isinstance(a, torch.Tensor) else
             [_fake(mode, t, f"a{i}_{j}") for j, t in enumerate(a)] if isinstance(a, list) else a
             for i, a in enumerate(args)]
    tensors = [t for f in fakes for t in (f if isinstance(f, list) else [f]) if isinstance(t, torch.Tensor)]
    size = next((s for t in tensors for s in t.shape if isinstance(s, torch.SymInt)), N0)
    numbers = make(N0, size)
    return [f if isinstance(f, (torch.Tensor, list)) else m for f, m in zip(fakes, numbers)]


def _check(kind, target, make, *, handled=True):
    """make(n, m) -> the op's arguments with real tensors of size n and m where the op takes
    that size as a number (a SymInt for the rules, as the translator passes `x.shape[2]`)."""
    mode = torch._subclasses.fake_tensor.FakeTensorMode(shape_env=shape_env())
    state = types.SimpleNamespace(fake_mode=mode)
    fakes = fake_args(mode, make)
    with torch.no_grad():
        out = symbolic_rules.propagate(state, kind, target, fakes, {})
    if not handled:
        assert out is None
        return
    assert out is not None, "the rules left this op to FakeTensorMode"
    for n in (N0, *OTHERS):
        real_args = make(n, n)
        with torch.no_grad():
            expected = getattr(real_args[0], target)(*real_args[1:]) if kind == "call_method" \
                else target(*real_args)
        assert [_at(s, n) for s in out.shape] == list(expected.shape), n
        assert [_at(s, n) for s in out.stride()] == list(expected.stride()), n
        assert _at(out.storage_offset(), n) == expected.storage_offset(), n
        assert out.dtype == expected.dtype and out._is_view() == expected._is_view()
    return out


def _kv(n):  # a cache of n positions: (batch, heads, n, head_dim)
    return torch.randn(1, 2, n, 4)


def _q(n):
    return torch.randn(1, 2, 1, 4)


HANDLED = {
    "cat_cache": ("call_function", torch.cat, lambda n, m: [[_kv(n), torch.randn(1, 2, 1, 4)], 2]),
    "cat_last_dim": ("call_function", torch.cat, lambda n, m: [[torch.randn(n, 3), torch.randn(n, 5)], -1]),
    "cat_transposed_new": ("call_function", torch.cat,
                           lambda n, m: [[_kv(n), torch.randn(1, 1, 2, 4).transpose(1, 2)], -2]),
    "none_index": ("call_function", operator.getitem,
                   lambda n, m: [_kv(n), (slice(None), slice(None), None, slice(None), slice(None))]),
    "window_slice": ("call_function", operator.getitem,
                     lambda n, m: [_kv(n), (slice(None), slice(None), slice(-40, None))]),
    "slice_from_one": ("call_function", operator.getitem, lambda n, m: [_kv(n), (Ellipsis, slice(1, None), 0)]),
    "int_static_dim": ("call_function", operator.getitem, lambda n, m: [_kv(n), (0, 1)]),
    "static_slice_step": ("call_function", operator.getitem, lambda n, m: [_kv(n), (Ellipsis, slice(None, None, 2))]),
    "mask_rows": ("call_function", operator.getitem, lambda n, m: [torch.arange(n), (None, None, None, slice(None))]),
    "expand_kv": ("call_method", "expand", lambda n, m: [_kv(n)[:, :, None], 1, 2, 3, m, 4]),
    "expand_minus_one": ("call_method", "expand", lambda n, m: [torch.randn(1, 1, 1, n), 1, -1, 5, m]),
    "repeat_kv_reshape": ("call_method", "reshape", lambda n, m: [_kv(n)[:, :, None].expand(1, 2, 3, n, 4), 1, 6, m, 4]),
    "reshape_view": ("call_method", "reshape", lambda n, m: [_kv(n), 2, m * 4]),
    "view_minus_one": ("call_method", "view", lambda n, m: [_kv(n), -1, 4]),
    "view_split": ("call_method", "view", lambda n, m: [torch.randn(1, n, 8), 1, m, 2, 4]),
    "reshape_transposed": ("call_method", "reshape", lambda n, m: [_kv(n).transpose(1, 2), 1, m, 8]),
    "transpose": ("call_method", "transpose", lambda n, m: [_kv(n), 2, 3]),
    "scores": ("call_function", torch.matmul, lambda n, m: [_q(n), _kv(n).transpose(2, 3)]),
    "attend": ("call_function", torch.matmul, lambda n, m: [torch.randn(1, 2, 1, n), _kv(n)]),
    "linear_like": ("call_function", operator.matmul, lambda n, m: [torch.randn(1, n, 8), torch.randn(8, 3)]),
    "mask_add": ("call_function", operator.add, lambda n, m: [torch.randn(1, 2, 1, n), torch.randn(1, 1, 1, n)]),
    "scale": ("call_function", operator.mul, lambda n, m: [torch.randn(1, 2, 1, n), 0.5]),
    "compare": ("call_function", operator.gt, lambda n, m: [torch.arange(n)[None, :], torch.arange(3)[:, None]]),
    "where": ("call_function", torch.where, lambda n, m: [torch.rand(1, n) > 0.5, torch.randn(2, 1), -1.0]),
    "softmax": ("call_method", "softmax", lambda n, m: [torch.randn(1, 2, 1, n), -1]),
    "cast": ("call_method", "to", lambda n, m: [torch.randn(2, n), torch.float64]),
    "dropout_train": ("call_function", F.dropout, lambda n, m: [torch.randn(2, n), 0.0, True]),
}

FALLBACK = {
    "broadcast_against_constant": ("call_function", operator.add, lambda n, m: [torch.randn(2, n), torch.randn(2, 4)]),
    "step_on_symbolic_dim": ("call_function", operator.getitem, lambda n, m: [_kv(n), (Ellipsis, slice(None, None, 2), slice(None))]),
    "int_on_symbolic_dim": ("call_function", operator.getitem, lambda n, m: [_kv(n), (0, 0, 3)]),
    "view_needs_copy": ("call_method", "view", lambda n, m: [_kv(n).transpose(1, 2), 1, m, 8]),
    "matmul_mismatch": ("call_function", torch.matmul, lambda n, m: [torch.randn(1, 2, 1, n), torch.randn(1, 2, 4, 3)]),
    "slice_bound_equal_now": ("call_function", operator.getitem, lambda n, m: [_kv(n), (Ellipsis, slice(-6, None), slice(None))]),
}


@pytest.mark.parametrize("case", sorted(HANDLED))
def test_rule_matches_eager_at_other_sizes(case):
    kind, target, make = HANDLED[case]
    _check(kind, target, make)


@pytest.mark.parametrize("case", sorted(FALLBACK))
def test_open_decisions_are_left_to_fake_tensor_mode(case):
    kind, target, make = FALLBACK[case]
    _check(kind, target, make, handled=False)


def test_identity_results_are_the_input_itself():
    mode = torch._subclasses.fake_tensor.FakeTensorMode(shape_env=shape_env())
    state = types.SimpleNamespace(fake_mode=mode)
    x = _fake(mode, torch.randn(2, N0), "x")
    with torch.no_grad():
        assert symbolic_rules.propagate(state, "call_method", "to", [x, torch.float32], {}) is x
        assert symbolic_rules.propagate(state, "call_method", "contiguous", [x], {}) is x
        assert symbolic_rules.propagate(state, "call_function", F.dropout, [x, 0.1, False], {}) is x
        assert symbolic_rules.propagate(state, "call_method", "to", [x, "cpu"], {}) is x
        t = _fake(mode, torch.randn(N0, 3).t(), "t")
        assert symbolic_rules.propagate(state, "call_method", "contiguous", [t], {}) is None


def _attention(q, keys, values, k, v, mask):
    """A decoder step on a growing cache: cat, repeat_kv, scores, mask, softmax, attend."""
    keys = torch.cat([keys, k], dim=-2)
    values = torch.cat([values, v], dim=-2)
    n = keys.shape[2]
    keys = keys[:, :, None, :, :].expand(1, 2, 2, n, 4).reshape(1, 4, n, 4)
    values = values[:, :, None, :, :].expand(1, 2, 2, n, 4).reshape(1, 4, n, 4)
    window = keys[:, :, -40:]
    scores = torch.matmul(q, window.transpose(2, 3)) * 0.5
    scores = scores + mask[:, None, None, :]
    probs = F.softmax(scores, dim=-1).to(q.dtype)
    out = torch.matmul(probs, values[:, :, -40:])
    return out.transpose(1, 2).reshape(1, 1, 16), keys.stride(), n


def test_a_decoder_step_on_a_growing_cache_matches_eager_with_few_fake_ops(monkeypatch):
    fake_ops = []
    propagate = graph_state.GraphState._propagate_fake

    def counting(self, kind, target, args, kwargs):
        if self._symbolic and target not in ("size", "stride") \
                and symbolic_rules.propagate(self, kind, target, args, kwargs) is None:
            fake_ops.append(getattr(target, "__name__", target))
        return propagate(self, kind, target, args, kwargs)

    monkeypatch.setattr(graph_state.GraphState, "_propagate_fake", counting)
    gen = torch.Generator().manual_seed(0)
    terra_dyn.reset()
    fast = terra_dyn.optimize(_attention, backend="interpreter")
    with report.recording() as rec, torch.no_grad():
        for n in (3, 4, 5, 8, 13):
            args = (torch.randn(1, 4, 1, 4, generator=gen), torch.randn(1, 2, n, 4, generator=gen),
                    torch.randn(1, 2, n, 4, generator=gen), torch.randn(1, 2, 1, 4, generator=gen),
                    torch.randn(1, 2, 1, 4, generator=gen), torch.randn(1, n + 1, generator=gen))
            got, expected = fast(*args), _attention(*args)
            torch.testing.assert_close(got[0], expected[0], rtol=0, atol=0)
            assert got[1:] == expected[1:]
    terra_dyn.reset()
    assert len(rec.report().translations) == 2 and not rec.report().fallbacks
    assert len(fake_ops) <= 2, fake_ops


class _WindowLayer:
    """A window cache layer's shape: its keys beside the count of positions it has seen."""

    def __init__(self):
        self.keys = torch.zeros(0, 4)
        self.count = 0


def _cache_step(layer, x):
    keys = torch.cat([layer.keys, x])
    positions = torch.arange(layer.count + 1)
    out = keys.sum(-1) + positions  # the counter meets the keys' length
    layer.keys = keys
    layer.count += 1
    return out


def test_a_cache_counter_at_one_stays_constant_instead_of_failing_an_attempt(monkeypatch):
    from terra_dyn import convert_frame

    attempts = []
    translate = convert_frame.translate_frame

    def counting(frame, options):
        try:
            return translate(frame, options)
        except Exception as exc:
            attempts.append(sorted(getattr(exc, "exprs", ())))
            raise

    monkeypatch.setattr(convert_frame, "translate_frame", counting)
    eager, layer = _WindowLayer(), _WindowLayer()
    terra_dyn.reset()
    fast = terra_dyn.optimize(_cache_step, backend="interpreter")
    per_call = []
    with torch.no_grad():
        for i in range(8):
            x = torch.randn(1, 4, generator=torch.Generator().manual_seed(i))
            with report.recording() as rec:
                got = fast(layer, x)
            torch.testing.assert_close(got, _cache_step(eager, x), rtol=0, atol=0)
            assert layer.count == eager.count and torch.equal(layer.keys, eager.keys)
            per_call.append(len(rec.report().translations))
    terra_dyn.reset()
    # call 0 static, call 1 symbolic: the counter at 1 grows with the keys' length, which
    # changed 0 -> 1, both symbols that may be 1 (guard_changes._growing_with; before: the
    # counter constant at 1, call 2 symbolic; before that, made symbolic at 1, the counter was
    # pinned by the keys' static length 2, then static for good)
    assert per_call == [1, 1, 0, 0, 0, 0, 0, 0], per_call
    assert not any("a0.count" in failed for failed in attempts), attempts  # no attempt failed on it
