"""Wrong results terra_dyn once gave, each reduced to the smallest user function that showed it.

Every test runs its function eagerly and optimized (interpreter backend, caches cleared) on
fresh copies of identical inputs, for a sequence of calls: the first call translates, later
calls with the same types run the cached code (its guards must notice what changed), and
the values, the arguments after the call and any Python side effects must match eager.

    check(fn, [(x, arr_a), (x, arr_a), (x, arr_b)])   # first, cached, guarded-only-by-type

Runtime: a few seconds.
"""
import copy

import numpy as np
import pytest
import torch

import terra_dyn

from .harness import call, compare_outcomes, optimize


def check(fn, calls, with_log=False):
    """Call fn eagerly and optimized once per argument tuple in `calls`, in order. with_log:
    a fresh list is passed as the last argument and compared after each call."""
    fast = optimize(fn)
    for n, args in enumerate(calls):
        eager_log, fast_log = [], []
        eager_args, fast_args = _copy(args), _copy(args)
        if with_log:
            eager_args, fast_args = eager_args + (eager_log,), fast_args + (fast_log,)
        eager = call(fn, eager_args, {}, snapshot=lambda: eager_log)
        ours = call(fast, fast_args, {}, snapshot=lambda: fast_log)
        problems = compare_outcomes(eager, ours)
        assert not problems, f"call {n} of {fn.__name__}{_describe(args)}: " + "; ".join(problems)
    terra_dyn.reset()


def _copy(args):
    # deep: lists of tensors are mutated too; one memo: an argument passed twice stays one
    # object (aliasing is part of the input)
    return copy.deepcopy(args)


def _describe(args):
    return "(" + ", ".join(f"{type(a).__name__}{tuple(a.shape) if hasattr(a, 'shape') else a!r}"
                           for a in args) + ")"


# ----------------------------------------------------------------------------- numpy values
# Numpy arrays and scalars are guarded only by their type. Their value must never be read at
# translate time (folded, tested, indexed, baked into a graph or a LOAD_CONST): the cached
# code would reuse the first call's value for the next array of the same type.

def greedy_nms(boxes, scores, thresh):
    """The shape of benchmarks/programs/boxes.py:nms_numpy (Faster R-CNN) that once raised
    IndexError under terra_dyn: `order` and `i` came from the first call's arrays."""
    x1, x2 = boxes[:, 0], boxes[:, 1]
    lengths = x2 - x1
    order = scores.argsort(kind="stable")[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        inter = np.maximum(0.0, np.minimum(x2[i], x2[order[1:]]) - np.maximum(x1[i], x1[order[1:]]))
        ovr = inter / (lengths[i] + lengths[order[1:]] - inter)
        order = order[np.where(ovr <= thresh)[0] + 1]
    return torch.tensor(keep, dtype=torch.int64)


def _intervals(seed, n):
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 50, n).astype(np.float32)
    return np.stack([start, start + rng.uniform(5, 20, n).astype(np.float32)], axis=1), \
        rng.uniform(size=n).astype(np.float32)


def test_numpy_nms_matches_eager_on_new_arrays():
    (b1, s1), (b2, s2) = _intervals(0, 12), _intervals(1, 9)
    check(greedy_nms, [(b1, s1, 0.3), (b1, s1, 0.3), (b2, s2, 0.3), (b1, s1, 0.3)])


def numpy_len_and_index(x, arr):
    return x * len(arr) + float(arr[0])


def test_numpy_len_and_item_are_not_constants():
    x = torch.ones(3)
    check(numpy_len_and_index, [(x, np.arange(4.0)), (x, np.arange(4.0)), (x, np.arange(7.0) + 2)])


def numpy_float_arithmetic(x, p):
    """dropblock's `gamma = drop_prob / block_size ** 2` with drop_prob a numpy float64 (a
    float subclass): it was folded at translate time and baked into the graph, first as a
    stale constant, then as `np.float64(...)` text that the FX code could not even run."""
    return x * (p / 9)


def test_numpy_float_is_not_folded_into_the_graph():
    x = torch.ones(3)
    check(numpy_float_arithmetic, [(x, np.float64(0.5)), (x, np.float64(0.5)), (x, np.float64(0.25)),
                                   (x, np.float64(0.0))])


class Drop:
    def __init__(self):
        self.drop_prob = np.float64(0.0)


def numpy_attribute_branch(x, block):
    if block.drop_prob == 0.0:  # a numpy bool on the stack across a graph break
        return x
    gamma = block.drop_prob / 9
    return x * gamma


@pytest.mark.parametrize("order", [(0.0, 0.5, 0.25), (0.5, 0.0, 0.25)])
def test_numpy_attribute_branch_follows_the_value(order):
    fast = optimize(numpy_attribute_branch)
    block = Drop()
    for p in order:
        block.drop_prob = np.float64(p)
        x = torch.ones(3)
        torch.testing.assert_close(fast(x.clone(), block), numpy_attribute_branch(x.clone(), block))
    terra_dyn.reset()


# ----------------------------------------------------------------------------- loops with breaks

def loop_with_item(y, n, values):
    """`.item()` breaks the graph inside the loop: every iteration's append must survive
    (the first one was once lost: 5 values for n=6)."""
    for i in range(n):
        y = y * 0.5 + i
        values.append(y.sum().item())
    return y


def test_loop_with_item_keeps_every_append():
    y = torch.linspace(-1, 1, 4)
    check(loop_with_item, [(y, 6), (y, 6), (y, 3)], with_log=True)


# ----------------------------------------------------------------------------- fresh mutable objects
# A mutable object the function builds itself must be new on every call. Built once at
# translate time and baked into the code as a constant, it collected every call's changes.

def set_add_after_break(x):
    s = set()
    s.add(int(x.sum().item() > 0))  # the break: `s.add` runs natively, on the baked-in set
    return sorted(s)


def set_display_add_after_break(x):
    s = {1, 2}
    t = s
    print(x.sum().item())
    t.add(int(x.sum().item() > 0) + 5)
    return sorted(s), t is s


def split_list_append_after_break(x):
    parts = "a,b".split(",")  # computed at translate time: the list must still be a new one
    parts.append(str(int(x.sum().item() > 0)))
    return parts


@pytest.mark.parametrize("fn", [set_add_after_break, set_display_add_after_break,
                                split_list_append_after_break])
def test_fresh_mutable_is_not_shared_between_calls(fn, capsys):
    neg, pos = -torch.ones(3), torch.ones(3)
    check(fn, [(neg,), (pos,), (pos,), (neg,)])


# ----------------------------------------------------------------------------- aliasing and iterators

def add_twice(a, b):
    return a + b * 2


def test_tensor_passed_twice_then_two_tensors():
    """f(x, x) gave the graph one placeholder for both: f(x, y) then read x for b."""
    x, y = torch.ones(3), torch.zeros(3)
    check(add_twice, [(x, x), (x, x), (x, y)])


def zip_with_reversed(x, xs):
    """The shape the alias bug first showed in: pairs (xs[1], xs[1]) then (xs[2], xs[0])."""
    for a, b in zip(xs, reversed(xs)):
        x = x + a * b.sum().item()
    return x


def test_zip_with_reversed_across_breaks():
    xs = [torch.tensor([1.0, 2.0]), torch.tensor([-3.0, 0.5]), torch.tensor([0.25, 4.0])]
    check(zip_with_reversed, [(torch.ones(2), xs), (torch.ones(2), xs)])


def next_inside_for(x):
    """The loop's iterator and `it` are one object: rebuilt twice after a break, the
    `next(it)` advanced a copy (wrong sum, or StopIteration out of a loop that ends)."""
    s = 0
    it = iter([1, 2, 3, 4, 5])
    for i in it:
        s += i
        if x[i - 1].item() > 0:
            next(it, None)
    return s


def test_next_inside_for_advances_the_loop_iterator():
    check(next_inside_for, [(torch.tensor([1.0, -1, 1, -1, 1]),), (torch.tensor([1.0, -1, 1, -1, 1]),),
                            (-torch.ones(5),)])


def append_while_iterating(x, xs):
    """A list iterator sees the list as it is at each step (a snapshot missed the appends)."""
    out = []
    for v in xs:
        out.append(v.sum().item())  # a break inside the loop, too
        if len(xs) < 4:
            xs.append(v * 2)
    return x * len(out), out


def assign_ahead_while_enumerating(x, xs):
    for i, v in enumerate(xs):
        xs[i] = v * 2
        if i == 0:
            xs[1] = xs[1] * 100  # enumerate reads xs[1] after this
    return xs


def test_list_iterators_are_live():
    check(append_while_iterating, [(torch.ones(2), [torch.tensor([1.0, 2.0])])] * 2)
    ones = [torch.ones(1), torch.ones(1), torch.ones(1)]
    check(assign_ahead_while_enumerating, [(torch.ones(1), ones)] * 2)


class History:
    def __init__(self):
        self.hist = []

    def __eq__(self, other):  # compared after the call (harness.compare_values)
        return type(other) is History and self.hist == other.hist


def append_then_len_through_attribute(x, obj):
    """Each `obj.hist` read made a new list value: the second one missed the first's append."""
    obj.hist.append(x.sum().item() > 0)
    return x * len(obj.hist)


def append_after_break_on_local_object(x):
    acc = History()
    print(x.sum().item())
    acc.hist.append(1)
    acc.hist.append(2)
    return len(acc.hist)


def append_through_two_names(x, a, b):
    a.append(1)
    return x * len(b)


def test_one_list_value_per_list(capsys):
    x = torch.ones(2)
    check(append_then_len_through_attribute, [(x, History()), (x, History())])
    check(append_after_break_on_local_object, [(x,), (x,)])
    xs = [0]
    check(append_through_two_names, [(x, xs, xs), (x, xs, xs), (x, [0], [0])])


class Holder:
    def __init__(self):
        self.items = [1]

    def __eq__(self, other):
        return type(other) is Holder and self.items == other.items


def keep_old_list_then_rebind(x, h):
    """`old` is reached through the path `h.items`: after `h.items = [5]` that path names
    the new list (the write-back and the values after a break went there)."""
    old = h.items
    h.items = [5]
    old.append(2)
    return old, h.items


def append_then_rebind_attribute(x, h):
    h.items.append(1)
    h.items = h.items + [3]
    h.items.append(4)
    return h.items


def test_attribute_rebinding_keeps_the_old_object():
    check(keep_old_list_then_rebind, [(torch.ones(1), Holder()), (torch.ones(1), Holder())])
    check(append_then_rebind_attribute, [(torch.ones(1), Holder()), (torch.ones(1), Holder())])
