"""Assignment keys with 0-d integer tensors (`x[b[i], mask, gj[i], gi[i]] = 0`), kept in the graph.

Eager reads a 0-d integer tensor in an index as a number (`tensor.item()`, then a select), which
fake tensors cannot do, so the assignment broke (yolov3's build_targets: 2-5 breaks a
translation). Where the key also holds an index tensor of one or more dims, the assignment is
advanced indexing either way, and a 0-d index `t` written as `t.reshape(1)` picks the same
elements: (1,) broadcasts with the other index tensors to their own shape, which lands where
eager puts it (`_region_position`). So the graph assigns through the rewritten key, with no
number read.

    x[t, mask, :, u] = v      eager: x.select(0, t.item())...[mask, :, ...] = v
                              graph: x[t.reshape(1), mask, :, u.reshape(1)] = v

Not inside a loop unrolled over a tensor's rows (setitem_key says why). Declined (None: the
assignment breaks, as before) for keys without an index tensor of one or more dims (eager's
result is a view then, a select), for 0-d bool/uint8 indices, and where the other index
tensors' result dims would move (`x[t, :, idx]`: eager's select leaves one index tensor, whose
dims stay in place; advanced indexing over two separated indices puts them first).
"""
import sys

import torch

from ..eval_frame import disable
from .values import ConstValue, IteratorValue, ScalarValue, SliceValue, TensorValue, TupleValue

_SELECT, _DIM, _ADVANCED, _ZERO_D = "select", "dim", "advanced", "0-d"


def setitem_key(tx, obj, key):
    """The key to assign through in the graph, or None when key has no 0-d integer tensor to
    rewrite or the rewrite would not match eager."""
    items = list(key.items) if isinstance(key, TupleValue) and key.cls is tuple else [key]
    kinds = [_kind(item) for item in items]
    if _ZERO_D not in kinds or None in kinds or _ADVANCED not in kinds:
        return None
    if _in_a_loop_over_rows(tx):
        # yolov3's `for i, anchor_ious in enumerate(ious.t()): noobj_mask[b[i], ...] = 0`:
        # captured, the loop unrolled into the graph at this call's target count, and the frame
        # was translated again for each later count (12 steps: 3.2 s instead of 2.0 s, 18/30/13
        # graphs/breaks/recompiles instead of 15/29/11). Broken here, the loop soon runs as
        # written. Over a symbolic count the loop runs natively (operators.get_iter) and its
        # body, translated on its own, is captured
        return None
    widths = [_width(item, kind) for item, kind in zip(items, kinds)]
    if widths.count(None) > 1:
        return None  # two Ellipses: eager raises
    ellipsis = obj.facts.dim() - sum(w for w in widths if w is not None)
    if ellipsis < 0:
        return None  # too many indices: eager raises
    eager = _region_position(kinds, widths, ellipsis, zero_d=_SELECT)
    if eager != _region_position(kinds, widths, ellipsis, zero_d=_ADVANCED):
        return None
    rewritten, dim = [], 0
    for item, kind, width in zip(items, kinds, widths):
        if kind == _ZERO_D:
            item = tx.ctx.graph.call("call_function", select_index, [item, obj, ConstValue(dim)])
        rewritten.append(item)
        dim += ellipsis if width is None else width
    return TupleValue(rewritten)


def _in_a_loop_over_rows(tx):
    """Is a translator on tx's chain (tx, the frames that inlined it) unrolling a loop over a
    tensor's rows? Its iterator is on the value stack while the body runs."""
    while tx is not None:
        if any(_iterates_rows(v) for v in tx.stack):
            return True
        tx = tx.parent
    return False


def _iterates_rows(value):
    if not isinstance(value, IteratorValue):
        return False
    return value.tensor_rows or any(_iterates_rows(inner) for inner in value.wrapped())


@disable
def select_index(t, x, dim):
    """0-d index `t` as a 1-element index tensor, after eager's select check: an index out of
    range raises IndexError as eager's does, even where the other index tensors pick nothing
    (an all-False mask) and advanced indexing would check no bound. Fake and meta tensors are
    not checked (their values are unknown)."""
    fake = sys.modules.get("torch._subclasses.fake_tensor")  # not imported: no fake tensor exists
    if t.device.type != "meta" and not (fake is not None and isinstance(t, fake.FakeTensor)):
        index, size = int(t), x.size(dim)
        if not -size <= index < size:
            raise IndexError(f"index {index} is out of bounds for dimension {dim} with size {size}")
    return t.reshape(1)


def _kind(item):
    """How eager's indexing treats one key item, or None for items this rewrite leaves alone."""
    if isinstance(item, TensorValue):
        facts = item.facts
        if facts.dtype in (torch.bool, torch.uint8):
            return _ADVANCED if facts.dim() > 0 else None  # a 0-d mask unsqueezes: not handled
        if facts.dtype.is_floating_point or facts.dtype.is_complex:
            return None  # eager raises
        return _ZERO_D if facts.dim() == 0 else _ADVANCED
    if isinstance(item, ScalarValue):
        example = item.example
        return _SELECT if isinstance(example, (int, torch.SymInt)) and not isinstance(example, bool) else None
    if isinstance(item, SliceValue):
        return _DIM
    if isinstance(item, ConstValue):
        v = item.value
        if isinstance(v, bool):
            return None
        if isinstance(v, int):
            return _SELECT
        if v is None or v is Ellipsis or isinstance(v, slice):
            return _DIM
    return None


def _width(item, kind):
    """Dims of the indexed tensor an item consumes; None for an Ellipsis (the rest)."""
    if isinstance(item, ConstValue) and item.value is Ellipsis:
        return None
    if isinstance(item, ConstValue) and item.value is None:
        return 0
    if kind == _ADVANCED and item.facts.dtype in (torch.bool, torch.uint8):
        return item.facts.dim()
    return 1


def _region_position(kinds, widths, ellipsis, zero_d):
    """Where advanced indexing puts the index tensors' broadcast dims among the result's dims:
    after the plain dims before the first index tensor when the index tensors are adjacent
    (selects removed first), else first (0)."""
    seq = []
    for kind, width in zip(kinds, widths):
        kind = zero_d if kind == _ZERO_D else kind
        if kind == _DIM:  # a slice, None (a new dim of its own) or an Ellipsis (the rest)
            seq += [_DIM] * (ellipsis if width is None else max(width, 1))
        elif kind == _ADVANCED:
            seq.append(_ADVANCED)
    first = seq.index(_ADVANCED)
    last = len(seq) - 1 - seq[::-1].index(_ADVANCED)
    return first if _DIM not in seq[first:last] else 0
