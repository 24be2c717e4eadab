"""A cache hit whose rewritten code only calls its graph runs the graph from C (direct_call.c):
results, errors, tracebacks and profiler events are plain Python's."""
import sys
import traceback

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import terra_dyn
from terra_dyn import _C


@pytest.fixture(autouse=True)
def _fresh():
    terra_dyn.reset()
    yield
    terra_dyn.reset()


def _entry(fn):
    entries = _C.cache_entries(fn.__code__)
    assert entries and len(entries) == 1
    return entries[0]


def add(x, y):
    return x + y


def lookup(w, idx):
    return F.embedding(idx, w)


def bump_then_lookup(a, w, idx):
    a.add_(1)
    return F.embedding(idx, w)


def test_a_graph_call_is_direct_and_right():
    f = terra_dyn.optimize(add, backend="interpreter")
    x, y = torch.randn(8), torch.randn(8)
    for _ in range(3):
        assert torch.equal(f(x, y), x + y)
    assert _entry(add).direct is not None
    x2 = torch.randn(3, 2)
    assert torch.equal(f(x2, x2), x2 + x2)  # a second entry, direct too


def test_a_module_forward_with_parameters_is_direct():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    m = terra_dyn.optimize(model, backend="interpreter")
    x = torch.randn(3, 4)
    with torch.no_grad():
        for _ in range(3):
            assert torch.equal(m(x), model(x))
        entry = _C.cache_entries(type(model).forward.__code__)[0]
        assert entry.direct is not None and entry.direct[2] is not None  # the parameters, weakly
        model[0].weight.mul_(2)  # in place: the same parameter objects, new values
        assert torch.equal(m(x), model(x))


def test_effects_or_closures_keep_the_rewritten_frame():
    seen = []

    def effect(x):
        seen.append(1)
        return x * 2

    k = torch.ones(2)

    def closure(x):
        return x * k

    x = torch.randn(2)
    for fn in (effect, closure):
        opt = terra_dyn.optimize(fn, backend="interpreter")
        assert torch.equal(opt(x), fn(x))
        assert _entry(fn).direct is None
    assert len(seen) == 2


def _frames(exc):
    return [(fs.name, fs.lineno) for fs in traceback.extract_tb(exc.__traceback__) if fs.filename == __file__]


def _raise(fn, *args):
    with pytest.raises(Exception) as info:
        fn(*args)
    return info.value


def test_a_graph_error_reruns_the_frame_natively():
    f = terra_dyn.optimize(lookup, backend="interpreter")
    w = torch.randn(5, 3)
    ok = torch.tensor([1, 2])
    assert torch.equal(f(w, ok), lookup(w, ok))
    bad = torch.tensor([1, 9])
    eager, ours = _raise(lookup, w, bad), _raise(f, w, bad)
    assert type(ours) is type(eager) and str(ours) == str(eager)
    assert _frames(ours)[1:] == _frames(eager)[1:]  # the test's own line differs
    assert _entry(lookup).direct is not None
    assert torch.equal(f(w, ok), lookup(w, ok))  # still cached and right afterwards


def test_a_graph_error_after_an_effect_propagates_once_with_the_function_in_the_traceback():
    f = terra_dyn.optimize(bump_then_lookup, backend="interpreter")
    w = torch.randn(5, 3)
    a_eager, a_ours = torch.zeros(2), torch.zeros(2)
    ok = torch.tensor([0])
    assert torch.equal(f(a_ours, w, ok), bump_then_lookup(a_eager, w, ok))
    assert _entry(bump_then_lookup).direct is not None
    bad = torch.tensor([7])
    eager, ours = _raise(bump_then_lookup, a_eager, w, bad), _raise(f, a_ours, w, bad)
    assert type(ours) is type(eager)
    assert torch.equal(a_ours, a_eager)  # the in-place add ran once, as in eager
    assert "bump_then_lookup" in [name for name, _ in _frames(ours)]


def test_a_profiler_sees_the_function_called():
    f = terra_dyn.optimize(add, backend="interpreter")
    x = torch.randn(4)
    f(x, x)
    f(x, x)
    calls = []

    def profile(frame, event, arg):
        if event == "call":
            calls.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        out = f(x, x)
    finally:
        sys.setprofile(None)
    assert torch.equal(out, x + x)
    assert "add" in calls


def _direct_run(graph, allowed):
    """plain(x, y) with a hand-made entry whose direct spec calls `graph`."""
    def plain(x, y):
        return x + y

    code = plain.__code__.replace(co_name="plain")  # its own code object: the entry's
    _C.set_direct_call(code, (graph, (0, 1), None, 0, allowed))
    entry = _C.CacheEntry(_C.Guard([]), code)
    assert entry.direct is not None
    return _C.OptimizedCallable(plain, lambda frame: entry if frame.f_code is plain.__code__ else None)


def test_a_keyboard_interrupt_in_the_graph_propagates_unasked():
    asked = []

    def graph(a, b):
        raise KeyboardInterrupt

    run = _direct_run(graph, lambda exc: asked.append(exc) or True)
    with pytest.raises(KeyboardInterrupt):
        run(1, 2)
    assert asked == []


@pytest.mark.parametrize("allow", [True, False])
def test_a_graph_error_asks_allowed(allow):
    asked = []

    def graph(a, b):
        raise ValueError("graph")

    run = _direct_run(graph, lambda exc: asked.append(exc) or allow)
    if allow:
        assert run(1, 2) == 3  # the original frame ran natively
    else:
        with pytest.raises(ValueError, match="graph") as info:
            run(1, 2)
        assert "plain" in [fs.name for fs in traceback.extract_tb(info.value.__traceback__)]
    assert len(asked) == 1 and isinstance(asked[0], ValueError) and asked[0].__traceback__ is not None


def test_the_graph_output_item_is_returned():
    run = _direct_run(lambda a, b: (a, a * b, b), lambda exc: False)
    code = run.fn.__code__
    assert run(2, 5) == 2  # k = 0
    _C.set_direct_call(code, (lambda a, b: [a, a * b], (1, 0), None, 1, lambda exc: False))
    assert _C.CacheEntry(_C.Guard([]), code).direct[1] == (1, 0)


def test_a_malformed_spec_is_refused():
    code = add.__code__.replace()
    for spec in [(len,), (len, (5,), None, 0, len), (len, (0,), (1,), 0, len), (len, ("a",), None, 0, len)]:
        with pytest.raises((TypeError, ValueError)):
            _C.set_direct_call(code, spec)


class _Raises(nn.Module):
    def forward(self, x, scale=1.0):
        if x.sum() > 1e9:
            return x
        raise ValueError("no")


def test_a_module_view_calls_its_module_without_a_wrapper_frame():
    model = nn.Sequential(nn.Linear(3, 3))
    view = terra_dyn.optimize(model, backend="interpreter")
    assert type(view).__call__.drop_self and type(view).__call__.fn is model
    x = torch.randn(2, 3)
    with torch.no_grad():
        assert torch.equal(view(x), model(x))
        assert torch.equal(view(input=x), model(input=x))
    raising = _Raises()
    names = []
    for m in (raising, terra_dyn.optimize(raising, backend="interpreter")):
        with pytest.raises(ValueError) as info:
            m(torch.zeros(2), scale=2.0)
        names.append([fs.name for fs in traceback.extract_tb(info.value.__traceback__)][1:])
    assert names[1] == names[0]
