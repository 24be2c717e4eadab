"""Soundness: `a is b` between values reached from the frame's inputs follows each call.

Two inputs that were different objects on the first call may be one object on the next
(`f(t, u)`, then `f(t, t)`), and a tuple reached by two names (`ex = exc_info`) is one
object. Each case calls in both orders and compares with the same code run plainly.
"""
from collections import deque

import pytest
import torch

import terra_dyn


@pytest.fixture(autouse=True)
def _fresh():
    terra_dyn.reset()
    yield
    terra_dyn.reset()


def same(a, b):
    return a is b


def same_with_op(a, b):
    return a is b, a + 1


@pytest.mark.parametrize("make", [
    lambda: [1],
    lambda: tuple([1, 2]),
    lambda: {"k": 1},
    lambda: torch.ones(2),
], ids=["list", "tuple", "dict", "tensor"])
@pytest.mark.parametrize("first_aliased", [False, True])
def test_is_between_two_inputs_follows_each_call(make, first_aliased):
    opt = terra_dyn.optimize(same, backend="interpreter")
    x = make()
    calls = [(x, x), (x, make())] if first_aliased else [(x, make()), (x, x)]
    for a, b in calls + calls:
        assert opt(a, b) is same(a, b)


def test_is_between_tensor_inputs_beside_graph_ops():
    opt = terra_dyn.optimize(same_with_op, backend="interpreter")
    x = torch.ones(2)
    for a, b in [(x, torch.ones(2)), (x, x), (x, torch.ones(2))]:
        got, want = opt(a, b), same_with_op(a, b)
        assert got[0] is want[0]
        assert torch.equal(got[1], want[1])


def _never(*args):
    print("a native call")  # replayed, not a break
    return False


def exit_like(*exc_info):
    """contextlib-style nested __exit__: `ex is not exc_info` after a loop that breaks."""
    ex = exc_info
    for _ in deque([1]):  # iterating a deque breaks; the rest runs in a resume function
        if _never(*ex):
            ex = (None, None, None)
    return ex is not exc_info


def test_one_tuple_under_two_names_stays_one_object_through_a_break(capsys):
    want = exit_like(None, None, None)
    assert terra_dyn.optimize(exit_like, backend="interpreter")(None, None, None) is want
    assert want is False


def returns_one_tuple_twice(x):
    t = (x, 1)
    print("a side effect")
    return t, t


def test_a_tuple_made_in_the_frame_is_one_object_wherever_it_is_returned(capsys):
    want = returns_one_tuple_twice(torch.ones(1))
    got = terra_dyn.optimize(returns_one_tuple_twice, backend="interpreter")(torch.ones(1))
    assert (got[0] is got[1]) is (want[0] is want[1]) is True
