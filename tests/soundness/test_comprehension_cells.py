"""Comprehension variables captured by lambdas (PEP 709 inlines comprehensions on 3.12+:
LOAD_FAST_AND_CLEAR of a cell slot saves the frame's cell, MAKE_CELL gives the
comprehension its own, STORE_FAST puts the saved one back). Each function is compared with
itself run plainly; on 3.12 and 3.13, five of them returned wrong values before
(the comprehension wrote into the frame's cell: a parameter it shadows read the loop's last
value, two comprehensions' lambdas shared one cell)."""
import pytest
import torch

import terra_dyn


def _brk():
    print("", end="")


def shadows_a_parameter(x):
    return [lambda: x for x in range(x)], x


def two_comprehensions_same_name():
    fs = [lambda: i for i in range(3)]
    gs = [lambda: i for i in range(5)]
    return [h() for h in fs], [h() for h in gs]


def with_a_tensor_and_a_break_between(t):
    fs = [lambda: i * t for i in range(3)]
    _brk()
    gs = [lambda: i * t for i in range(5)]
    return [h() for h in fs], [h() for h in gs]


def break_inside_the_comprehension(t):
    fs = [(_brk(), lambda: i * t)[1] for i in range(3)]
    return [h() for h in fs]


def parameter_also_captured_outside(i, t):
    g = lambda: i + 100  # noqa: E731
    fs = [lambda: i * t for i in range(3)]
    return [h() for h in fs], g(), i * t, (lambda: i)()


def set_and_dict_comprehensions(k, t):
    s = {(lambda: k * t) for k in range(2)}
    d = {k: (lambda: k * t) for k in range(3)}
    return sorted(f().item() for f in s), [f() for f in d.values()], k


def nested_comprehensions(n):
    rows = [[lambda: (i, j) for j in range(i)] for i in range(n)]
    return [[f() for f in row] for row in rows], n


def _plain(value):
    if isinstance(value, torch.Tensor):
        return ("tensor", value.tolist())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


CASES = [
    (shadows_a_parameter, lambda: (2,), lambda out: [[f() for f in out[0]], out[1]]),
    (two_comprehensions_same_name, lambda: (), None),
    (with_a_tensor_and_a_break_between, lambda: (torch.tensor(2.0),), None),
    (break_inside_the_comprehension, lambda: (torch.tensor(3.0),), None),
    (parameter_also_captured_outside, lambda: (7, torch.tensor(2.0)), None),
    (set_and_dict_comprehensions, lambda: (9, torch.tensor(2.0)), None),
    (nested_comprehensions, lambda: (4,), None),
]


@pytest.mark.parametrize("fn,make_args,finish", CASES, ids=[c[0].__name__ for c in CASES])
def test_comprehension_cells_match_plain_python(fresh_terra_dyn, fn, make_args, finish):
    finish = finish or (lambda out: out)
    expected = _plain(finish(fn(*make_args())))
    fast = terra_dyn.optimize(fn)
    for _ in range(2):  # the translating call and the cached one
        assert _plain(finish(fast(*make_args()))) == expected
