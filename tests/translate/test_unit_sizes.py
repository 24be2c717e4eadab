"""A symbolic size meeting 1: a rare 1 runs as written, a recurring one is translated.

faster_rcnn's box count per image is 1..5. Once an image's count has changed, its entries
hold the count as a symbol that the ShapeEnv assumes to be at least 2 (0/1 specialization:
torch's broadcasting, contiguity and squeeze answer differently for a 1). A call where it is
1 missed every entry and translated a static 1, 2-5 s each for forward and
select_training_samples, at step 12 of 12. Now a miss only on such a size (guard_changes.
unit_size_miss) runs the frame as written, with the hook off for what it calls, unless
another came within config.rare_outcome_calls calls: then it is translated as before.

Each test compares every call's result with plain Python, and counts translations per call.
"""
import pytest
import torch

import terra_dyn
from terra_dyn import report


@pytest.fixture(autouse=True)
def _fresh():
    terra_dyn.reset()
    yield
    terra_dyn.reset()


def _boxes(n, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 32
    return torch.cat([xy, xy + 4 + torch.rand(n, 2, generator=g) * 16], 1)


_ANCHORS = _boxes(24, 99)


def _matching_loss(targets, anchors, weight):
    """box_iou against anchors per image, the best match's IoU as a loss (faster_rcnn's assign)."""
    total = weight.sum() * 0
    for target in targets:
        boxes = target["boxes"]
        area1 = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        area2 = (anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])
        lt = torch.max(boxes[:, None, :2], anchors[:, :2])
        rb = torch.min(boxes[:, None, 2:], anchors[:, 2:])
        wh = (rb - lt).clamp(min=0)
        inter = wh[:, :, 0] * wh[:, :, 1]
        iou = inter / (area1[:, None] + area2 - inter)
        best, which = iou.max(dim=0)
        total = total + (best * weight).sum() + boxes[which].mean() * boxes.shape[0]
    return total


def _run(counts):
    """Per call: (result equal to plain Python, translations made)."""
    weight = torch.linspace(0.5, 1.5, 24)
    fast = terra_dyn.optimize(_matching_loss, backend="interpreter")
    per_call = []
    for step, pair in enumerate(counts):
        targets = [{"boxes": _boxes(n, 7 * step + i)} for i, n in enumerate(pair)]
        with report.recording() as rec:
            got = fast(targets, _ANCHORS, weight)
        want = _matching_loss(targets, _ANCHORS, weight)
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-6), (step, pair, got, want)
        per_call.append(len(rec.report().translations))
    return per_call


def test_a_rare_box_count_of_one_runs_as_written():
    # symbolic for both images from call 3; a single box on image 0 at calls 7 and 13
    counts = [(5, 3), (3, 4), (4, 5), (2, 3), (5, 2), (3, 3), (1, 4), (4, 2), (2, 5), (3, 2), (5, 4), (2, 2),
              (1, 3), (4, 4)]
    per_call = _run(counts)
    assert sum(per_call[3:]) == 0, per_call  # main: a static-1 translation at call 7


def test_a_box_count_of_one_on_a_symbolic_size_needs_no_translation():
    # a size that changed is a symbol that may be 1 whatever it was then: image 0's first 1
    # (call 4) and the ones after it run the symbolic entry (faster_rcnn's step-17 pair: on
    # main, the second 1 within 4 calls was translated as a static 1)
    counts = [(5, 3), (3, 4), (4, 5), (2, 3), (1, 4), (3, 2), (1, 5), (1, 2), (1, 3), (1, 4), (1, 5)]
    per_call = _run(counts)
    assert sum(per_call[2:]) == 0, per_call


def test_a_one_on_a_size_never_symbolic_is_translated_at_once():
    # static sizes (a 1 at the first change) are no symbolic entry's miss: as before
    counts = [(5, 3), (1, 3), (1, 3)]
    per_call = _run(counts)
    assert per_call[1] > 0 and per_call[2] == 0, per_call


# -- a size that changes to 1 is a symbol that may be 1 (translate/unit_sizes.py) ------------

def test_a_box_count_that_changes_to_one_stays_symbolic_with_it():
    # faster_rcnn's counts: image 1 goes 3 -> 1 at call 1, so its size was a static 1 and
    # call 2 (4 boxes) translated forward and select_training_samples again
    counts = [(5, 3), (3, 1), (5, 4), (3, 1), (3, 1), (4, 5), (3, 5), (4, 5), (2, 2), (2, 4)]
    per_call = _run(counts)
    assert sum(per_call[2:]) == 0, per_call  # main: a translation at call 2


def _rows(n, seed):
    return torch.rand(n, 4, generator=torch.Generator().manual_seed(100 * seed + n))


def _column_strides(b):
    c = b[:, 2]  # contiguous for a single row only
    return c.stride(), (c * 2).stride(), (c * 2).sum()


def _transposed_product(b):
    y = b.t() * 2  # (4, n): contiguous for a single row only
    return y.stride(), y.sum(), torch.empty_like(b.t()).stride(), b.t().clone().stride()


def _contiguous_of_transpose(b):
    y = b.t().contiguous()  # a copy, or (one row) b.t() itself
    return y.stride(), y.sum(), b.t().is_contiguous()


def _write_through_reshape(b):
    b = b.clone()
    flat = b.t().reshape(-1)  # a view of b for one row, a copy otherwise
    flat.add_(1)
    return b.sum(), flat.sum()


def _squeeze_and_broadcast(b):
    s = b.squeeze(0)
    return s.dim(), s * 2, (b[:, None, :2] - b[None, :, 2:]).sum(), b.sum(0, keepdim=True).expand(b.shape[0], 4)


def _counts_and_matmul(b):
    n = b.shape[0]
    w = torch.linspace(0.1, 1.2, 12).reshape(4, 3)
    return b.sum() / max(1, n), n > 1, (b @ w).softmax(-1), b.T @ b, b.unsqueeze(1).expand(n, 3, 4).sum(1)


def _equal(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and a.stride() == b.stride() and torch.equal(a, b)
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_equal, a, b))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("fn", [_column_strides, _transposed_product, _contiguous_of_transpose,
                                _write_through_reshape, _squeeze_and_broadcast, _counts_and_matmul])
def test_what_a_size_that_may_be_one_computes_is_eagers(fn):
    # rows 3, then 1 (the first change: a symbol that may be 1), then other counts and 1 again:
    # every result (values, shapes, strides, Python numbers) as plain Python's
    fast = terra_dyn.optimize(fn, backend="interpreter")
    per_call = []
    for call, n in enumerate([3, 1, 4, 1, 2, 1, 5]):
        with report.recording() as rec:
            got = fast(_rows(n, call))
        want = fn(_rows(n, call))
        assert _equal(got, want), (fn.__name__, n, got, want)
        per_call.append(len(rec.report().translations))
    assert sum(per_call[3:]) == 0, per_call
    if fn is _counts_and_matmul:  # nothing here needs the 1: one symbolic entry for every count
        assert sum(per_call[2:]) == 0, per_call  # main: a translation at call 2


def _columns_doubled(x):
    """`contiguous()` of a column slice: a copy for 2 rows or more, the slice itself for one
    row (eager: then `mul_` writes x)."""
    y = x[:, 1:3].contiguous()
    y.mul_(2)
    return x.sum() * 10 + y.sum()


def test_a_layout_read_leaves_a_later_one_to_its_own_translation(monkeypatch):
    # rows 4, then 6: a symbol that may be 1, until `contiguous()` of a slice reads a layout a
    # 1 changes; none is 1 in that call, so the symbol becomes a size of at least 2 (guarded)
    # and the attempt goes on (yolov3's target count: three failed attempts more before)
    from terra_dyn import convert_frame

    pins, pin = [], convert_frame._pin
    monkeypatch.setattr(convert_frame, "_pin", lambda state, exc: pins.append(str(exc)) or pin(state, exc))
    fast = terra_dyn.optimize(_columns_doubled, backend="interpreter")
    per_call = []
    for n in (4, 6, 5, 1, 1, 3, 1, 7):
        x = _rows(n, n)
        want = _columns_doubled(x.clone())
        with report.recording() as rec:
            got = fast(x)
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        per_call.append((len(rec.report().translations), len(pins)))
    terra_dyn.reset()
    assert per_call[:3] == [(1, 0), (1, 0), (0, 0)], per_call  # 4, 6, 5: no attempt failed
    assert sum(t for t, _ in per_call[5:]) == 0, per_call  # 3, 1, 7: the symbolic entry and the 1's
