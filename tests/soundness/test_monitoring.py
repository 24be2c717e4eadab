"""sys.monitoring tools see an optimized function's call as they see a plain C callable's
(issue 16). Called by a frame's CALL, the optimized callable takes its arguments off the
caller's stack so `del arg` in the body frees them (csrc/callables.c); CPython 3.12+ reads the
first argument from that stack again after the call for the C_RETURN / C_RAISE events, so
those callbacks saw None. The reference is functools.partial(fn): a C callable that leaves
the caller's stack alone, calling the same Python function."""
import functools
import sys

import pytest

import terra_dyn

pytestmark = [
    pytest.mark.usefixtures("fresh_terra_dyn"),
    pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is 3.12+"),
]

SEEN = []


def add(a, b):
    return a + [b]


def fail(a):
    raise ValueError(a)


def scale(a, *, by):
    del a  # the argument-taking path is what this exercises
    return by


def caller(fn, gn, hn):
    r = fn([10], 20)
    try:
        gn((7,))
    except ValueError:
        pass
    return r, hn("x", by=3)


def _recorder(kind):
    def record(code, offset, callable, arg0):
        if code is caller.__code__:  # the caller's own CALLs, not the translator's
            SEEN.append((kind, repr(arg0)))
    return record


def _free_tool():
    for tool in range(1, 6):
        if sys.monitoring.get_tool(tool) is None:
            return tool
    pytest.skip("no free sys.monitoring tool id")


def _events(fns, local):
    m = sys.monitoring
    tool = _free_tool()
    events = m.events.CALL | m.events.C_RETURN | m.events.C_RAISE
    SEEN.clear()
    m.use_tool_id(tool, "terra_dyn test")
    try:
        m.register_callback(tool, m.events.CALL, _recorder("call"))
        m.register_callback(tool, m.events.C_RETURN, _recorder("c_return"))
        m.register_callback(tool, m.events.C_RAISE, _recorder("c_raise"))
        if local:
            m.set_local_events(tool, caller.__code__, events)
        else:
            m.set_events(tool, events)
        result = caller(*fns)
    finally:
        m.set_events(tool, 0)
        m.set_local_events(tool, caller.__code__, 0)
        m.free_tool_id(tool)
    return result, list(SEEN)


@pytest.mark.parametrize("local", [False, True], ids=["set_events", "set_local_events"])
def test_call_return_and_raise_callbacks_see_the_first_argument(local):
    plain = _events([functools.partial(fn) for fn in (add, fail, scale)], local)
    assert ("c_return", "[10]") in plain[1] and ("c_raise", "(7,)") in plain[1]
    fast = [terra_dyn.optimize(fn, backend="interpreter") for fn in (add, fail, scale)]
    assert _events(fast, local) == plain  # before: ('c_return', 'None'), ('c_raise', 'None')
    assert _events(fast, local) == plain  # cached


def _helper(y):
    z = y * 2
    return z - 1


def _body(x, n):
    total = x + 1
    for _ in range(n):
        total = total + _helper(x)
    if total.sum().item() > 0:  # a break
        total = total * 3
    return total


def _lines(fn, local):
    """LINE, BRANCH, PY_START and PY_RETURN events of this file's functions during fn(x, 2)."""
    import torch

    m = sys.monitoring
    tool = _free_tool()
    seen = []

    def keep(kind):
        def record(code, *args):
            if code.co_filename == __file__ and code.co_name in ("_body", "_helper"):
                seen.append((kind, code.co_name, args[0] if kind == "line" else None))
        return record

    events = {"line": m.events.LINE, "branch": m.events.BRANCH, "start": m.events.PY_START,
              "return": m.events.PY_RETURN}
    m.use_tool_id(tool, "terra_dyn test")
    try:
        for kind, event in events.items():
            m.register_callback(tool, event, keep(kind))
        everything = m.events.LINE | m.events.BRANCH | m.events.PY_START | m.events.PY_RETURN
        if local:
            m.set_local_events(tool, _body.__code__, everything)
        else:
            m.set_events(tool, everything)
        result = fn(torch.ones(3), 2)
    finally:
        m.set_events(tool, 0)
        m.set_local_events(tool, _body.__code__, 0)
        m.free_tool_id(tool)
    return result.tolist(), seen


@pytest.mark.parametrize("local", [False, True], ids=["set_events", "set_local_events"])
def test_line_events_are_the_users_lines(local):
    # coverage's sys.monitoring core: before, the cached rewritten frame ran, reporting the
    # def line and one line of the break and never the loop's lines or the inlined helper
    import torch

    fast = terra_dyn.optimize(_body, backend="interpreter")
    fast(torch.ones(3), 2)  # translated and cached before the tool starts
    plain = _lines(_body, local)
    assert ("line", "_helper", _helper.__code__.co_firstlineno + 2) in plain[1] or local
    assert _lines(fast, local) == plain
    assert _lines(fast, local) == plain
