"""Line numbers read through frames are the user's (issue 16): `sys._getframe().f_lineno`
in the optimized function, and a helper reading its caller's line (what logging and
warnings do) before and after a break, compared with the plain run, cached calls too."""
import inspect
import io
import sys

import pytest
import torch

import terra_dyn

pytestmark = pytest.mark.usefixtures("fresh_terra_dyn")
SINK = io.StringIO()


def _callers_line():
    return sys._getframe(1).f_lineno


def _callers_line_by_inspect():
    return inspect.currentframe().f_back.f_lineno


def lines_in_one_graph(x):
    y = x + 1
    a = _callers_line()
    y = y * 2
    b = _callers_line_by_inspect()
    c = sys._getframe().f_lineno
    return y, a, b, c


def lines_around_a_break(x):
    y = x + 1
    a = _callers_line()
    print("break", file=SINK)
    b = _callers_line()
    y = y * 2
    return y, a, b


@pytest.mark.parametrize("fn", [lines_in_one_graph, lines_around_a_break], ids=lambda f: f.__name__)
def test_frame_line_numbers_are_the_users(fn):
    x = torch.ones(2)
    plain = fn(x)
    fast = terra_dyn.optimize(fn, backend="interpreter")
    for _ in range(2):
        got = fast(x)
        assert torch.equal(got[0], plain[0]) and got[1:] == plain[1:]
