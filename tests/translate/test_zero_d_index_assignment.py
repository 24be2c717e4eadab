"""Assignments whose key holds 0-d integer tensors beside an index tensor (yolov3's
`noobj_mask[b[i], anchor_ious > thres, gj[i], gi[i]] = 0`), against eager: kept in the graph
(translate/index_keys.py) where the rewrite picks eager's elements,
a graph break (as before) where it would not and inside a loop unrolled over a tensor's rows,
and eager's IndexError for an index out of range.
"""
import pytest
import torch

import terra_dyn
from terra_dyn import report


def _yolo_rows(noobj, b, gj, gi, ious, thres):
    noobj = noobj.clone()
    for i, anchor_ious in enumerate(ious.t()):
        noobj[b[i], anchor_ious > thres, gj[i], gi[i]] = 0
    return noobj


def _run(fn, calls, backend="interpreter", dynamic=True):
    terra_dyn.reset()
    fast = terra_dyn.optimize(fn, backend=backend, dynamic=dynamic)
    with report.recording() as recorder:
        for args in calls:
            expected_args = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
            torch.testing.assert_close(fast(*args), fn(*expected_args), rtol=0, atol=0)
            for a, e in zip(args, expected_args):  # in-place writes to the arguments
                if isinstance(a, torch.Tensor):
                    torch.testing.assert_close(a, e, rtol=0, atol=0)
    terra_dyn.reset()
    return recorder.report()


def _yolo_calls(n, count, seed):
    gen = torch.Generator().manual_seed(seed)
    calls = []
    for _ in range(count):
        b = torch.randint(0, 2, (n,), generator=gen)
        gj, gi = torch.randint(-5, 5, (n,), generator=gen), torch.randint(0, 5, (n,), generator=gen)
        calls.append((torch.ones(2, 3, 5, 5, dtype=torch.bool), b, gj, gi, torch.rand(3, n, generator=gen), 0.5))
    return calls


@pytest.mark.parametrize("backend", ["interpreter", "cpu"])
def test_yolo_mask_rows_match_eager_without_breaks(backend):
    rep = _run(_yolo_rows, _yolo_calls(4, 3, 0), backend)
    # the loop over a symbolic row count runs natively (one break), its body in one graph
    assert [b.reason for b in rep.breaks if "setitem" in b.reason] == [], [str(b) for b in rep.breaks]
    assert not rep.fallbacks  # before: a setitem break per row


def test_inside_a_loop_unrolled_over_rows_it_breaks_and_matches_eager():
    # a static translation unrolls the loop over ious.t(): captured, it would be one graph per
    # target count (index_keys.setitem_key)
    rep = _run(_yolo_rows, _yolo_calls(4, 3, 1), dynamic=None)
    assert not rep.fallbacks
    assert any("setitem" in b.reason for b in rep.breaks), [str(b) for b in rep.breaks]


def test_one_row_in_a_static_translation_is_captured():
    def fn(noobj, b, gj, gi, ious):
        noobj = noobj.clone()
        noobj[b[0], ious[:, 0] > 0.5, gj[0], gi[0]] = 0
        return noobj

    rep = _run(fn, [call[:5] for call in _yolo_calls(4, 3, 2)], dynamic=None)
    assert not rep.breaks and not rep.fallbacks, [str(b) for b in rep.breaks]


# (key builder, value) pairs: each key mixes 0-d tensors `t`, `u` with an index tensor, slices,
# None, Ellipsis and ints; the function assigns, then reads the whole tensor back
def _keys(t, u, mask, idx):
    return {
        "adjacent": (t, mask, u),
        "index tensor first": (idx, t),
        "slice before": (slice(None), t, idx),
        "ellipsis, index dims first either way": (idx, ..., t),
        "int and 0-d": (1, t, mask),
        "none in front": (None, t, idx),
        "separated": (t, slice(None), idx),  # eager's dims stay in place: a break
        "ellipsis of no dims": (t, ..., u, idx[:2]),
        "separated by ellipsis": (t, ..., mask),  # a break
        "only 0-d": (t, u),  # a select in eager: a break
    }


def _assign(name, value_shape):
    def fn(x, t, u, mask, idx, v):
        x = x.clone()
        x[_keys(t, u, mask, idx)[name]] = v if value_shape is not None else 7.0
        return x
    return fn


@pytest.mark.parametrize("name", list(_keys(0, 0, torch.zeros(5), torch.zeros(2))))
def test_keys_with_zero_d_indices_match_eager(name):
    gen = torch.Generator().manual_seed(hash(name) % 1000)
    x = torch.randn(3, 5, 5, generator=gen)
    mask = torch.rand(5, generator=gen) > 0.3
    idx = torch.tensor([0, 2, -1])
    for value_shape in (None, ()):
        fn = _assign(name, value_shape)
        calls = [(x, torch.tensor(t), torch.tensor(u), mask, idx, torch.tensor(2.5)) for t, u in ((1, 2), (-1, 0), (2, -3))]
        rep = _run(fn, calls)
        assert not rep.fallbacks
        assert bool(rep.breaks) == (name in _BREAKS), [str(b) for b in rep.breaks]


_BREAKS = ("separated", "separated by ellipsis", "only 0-d")  # the rewrite would move dims / make no view


def test_value_tensor_broadcasts_as_in_eager():
    def fn(x, t, mask, v):
        x = x.clone()
        x[t, mask, :] = v
        return x

    gen = torch.Generator().manual_seed(1)
    mask = torch.tensor([True, False, True, True])
    calls = [(torch.randn(3, 4, 6, generator=gen), torch.tensor(t), mask, torch.randn(6, generator=gen)) for t in (0, 2, -2)]
    calls.append((calls[0][0], torch.tensor(1), mask, torch.randn(1, 3, 6, generator=gen)))  # a leading 1 dropped
    rep = _run(fn, calls)
    assert not rep.breaks and not rep.fallbacks, [str(b) for b in rep.breaks]


def test_index_out_of_range_raises_as_eager_even_when_nothing_is_picked():
    def fn(x, t, mask):
        x = x.clone()
        x[t, mask] = 0
        return x

    fast = terra_dyn.optimize(fn, backend="interpreter", dynamic=True)
    x = torch.ones(3, 4)
    fast(x, torch.tensor(1), torch.ones(4, dtype=torch.bool))
    for mask in (torch.zeros(4, dtype=torch.bool), torch.ones(4, dtype=torch.bool)):
        with pytest.raises(IndexError) as eager:
            fn(x, torch.tensor(3), mask)
        with pytest.raises(IndexError) as ours:
            fast(x, torch.tensor(3), mask)
        assert str(ours.value) == str(eager.value)
    terra_dyn.reset()


def test_gradients_through_the_assignment_match_eager():
    def fn(x, w, t, mask):
        y = x * w
        y[t, mask] = w[0] * 3
        return y.sum()

    gen = torch.Generator().manual_seed(2)
    x = torch.randn(3, 4, generator=gen)
    mask = torch.tensor([True, False, True, False])
    fast = terra_dyn.optimize(fn, backend="interpreter", dynamic=True)
    for t in (0, 2, 1):
        w1 = torch.randn(4, generator=gen).requires_grad_()
        w2 = w1.detach().clone().requires_grad_()
        fast(x, w1, torch.tensor(t), mask).backward()
        fn(x, w2, torch.tensor(t), mask).backward()
        torch.testing.assert_close(w1.grad, w2.grad, rtol=0, atol=0)
    terra_dyn.reset()


def test_loop_over_the_rows_of_a_changing_count_settles_and_matches_eager():
    # yolov3's build_targets: its loop over `ious.t()` (one row per target) ran unrolled in each
    # translation, which pins the target count: a translation per count until the limit
    calls = [call for n in (4, 5, 6, 3, 7, 8, 2, 9) for call in _yolo_calls(n, 1, n)]
    rep = _run(_yolo_rows, calls)  # symbolic from the first call
    assert not rep.fallbacks
    assert len(rep.recompiles) <= 3, [str(r) for r in rep.recompiles]  # before: one per count
