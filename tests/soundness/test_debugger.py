"""pdb.set_trace() inside an optimized function (issue 16): the debugger stops at the user's
line, sees the user's names, and `where` lists the frames plain Python has."""
import io
import pdb
import sys

import pytest
import torch

import terra_dyn


def _session(commands, wrap, body):
    """Output of a pdb session (the commands, then continue) stopped inside body."""
    out = io.StringIO()
    debugger = pdb.Pdb(stdin=io.StringIO("\n".join(commands + ["c"]) + "\n"), stdout=out, nosigint=True)
    old = sys.gettrace()
    try:
        result = wrap(body(debugger))(torch.ones(2))
    finally:
        sys.settrace(old)
    return result, out.getvalue()


def _stops_in_the_function(debugger):
    def f(x):
        y = x + 1
        debugger.set_trace()
        z = y * 3
        return z
    return f


def _stops_in_a_callee_after_a_break(debugger):
    def g(v):
        debugger.set_trace()
        return v * 2

    def f(x):
        y = x + 1
        print("break")
        z = g(y)
        return z + 1
    return f


@pytest.fixture(autouse=True)
def _fresh():
    terra_dyn.reset()
    yield
    terra_dyn.reset()


@pytest.mark.parametrize("body", [_stops_in_the_function, _stops_in_a_callee_after_a_break])
def test_pdb_set_trace_sees_the_users_frames_and_names(body, capsys):
    commands = ["p x" if body is _stops_in_the_function else "p v", "p sorted(locals())", "where"]
    plain, optimized = [_session(commands, wrap, body)
                        for wrap in (lambda f: f, lambda f: terra_dyn.optimize(f, backend="interpreter"))]
    assert torch.equal(plain[0], optimized[0])
    assert optimized[1] == plain[1]
    assert "Error" not in plain[1]
