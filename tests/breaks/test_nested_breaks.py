"""A break inside inlined callees stays inside them (translate/nested_breaks.py).

forward -> a module's forward -> a helper whose `.item()` breaks: the callers are not split
at their calls. The rewritten top frame runs one graph up to the break, the breaking
instruction natively, then one chain resume function holding the rest of every frame
(codegen/resume_chain.py): 1 break and 2 graphs, where splitting each caller at its call
gave 3 breaks and 6 graphs. Where the chain does not qualify (a try or with block around a
call, a callee with cells, a constructor), the break goes to the top frame's call as before.

Every test compares with eager on fresh inputs: values, exceptions, LOG (the order of
Python side effects) and CALLS (how often user code ran); graph and break counts show the
callers stay whole.
"""
import functools
import logging
import warnings
from collections import Counter

import pytest
import torch

import terra_dyn
from terra_dyn import config

from .against_eager import run_both

LOG = []
CALLS = Counter()


def _run(fn, make_args, calls=3):
    """Run `fn` optimized then eagerly, `calls` times each on fresh inputs, compare
    everything, and return the reports of the optimized calls."""
    terra_dyn.reset()  # every frame translated in this test (its counts in the reports)
    return run_both(fn, make_args, LOG, CALLS, calls)


def _x(*shape):
    def make(i):
        return (torch.randn(*shape, generator=torch.Generator().manual_seed(i)),)
    return make


def _counts(rep):
    return len(rep.graphs), len(rep.breaks)


def helper(x):
    CALLS["helper"] += 1
    LOG.append("helper before")
    s = x.sum().item()
    LOG.append(("helper after", round(s, 4)))
    return x * 2 + s


class Inner(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x):
        CALLS["inner"] += 1
        y = self.lin(x).relu()
        z = helper(y)
        LOG.append("inner after")
        return z - 1


class Outer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.pre = torch.nn.Linear(4, 4)
        self.inner = Inner()
        self.post = torch.nn.Linear(4, 4)

    def forward(self, x):
        a = self.pre(x).tanh()
        b = self.inner(a)
        LOG.append("outer after")
        return self.post(b).sigmoid()


def test_item_in_a_library_helper_keeps_every_caller_whole():
    reps = _run(Outer(), _x(3, 4))
    assert _counts(reps[0]) == (2, 1)
    # the .item() value changes every call: taken as a number input, never retranslated
    assert [_counts(r) for r in reps[1:]] == [(0, 0), (0, 0)]


def test_without_nested_breaks_each_caller_splits(monkeypatch):
    monkeypatch.setattr(config, "nested_breaks", False)
    reps = _run(Outer(), _x(3, 4), calls=1)
    assert _counts(reps[0]) == (6, 3)


def _two_items(x):
    a = x.sum().item()
    y = x * a
    b = y.max().item()
    LOG.append((round(a, 3), round(b, 3)))
    return y - b


def _calls_two_items(x):
    h = x.cos()
    out = _two_items(h) + 1
    LOG.append("caller")
    return out.sin()


def test_two_breaks_in_one_callee():
    reps = _run(_calls_two_items, _x(5))
    assert _counts(reps[0]) == (3, 2)


def _branch_on_value(x):
    if x.sum() > 0:
        LOG.append("positive")
        return x + 1
    LOG.append("negative")
    return x - 1


def _calls_branch(x):
    y = x * 3
    return torch.cat([y, _branch_on_value(y)]).exp()


def test_data_dependent_branch_in_a_callee_with_nulls_and_items_below_the_call():
    reps = _run(_calls_branch, _x(4), calls=6)
    assert _counts(reps[0]) == (2, 1)


def _loop_helper(x, i):
    CALLS["loop_helper"] += 1
    s = x.mean().item()
    return x * 0.5 + s * i


def _loop_caller(x):
    for i in range(40):
        x = _loop_helper(x, i).tanh()
    return x


def test_a_callee_breaking_in_every_iteration():
    reps = _run(_loop_caller, _x(3), calls=3)
    assert len(reps[0].breaks) >= 1 and [_counts(r) for r in reps[1:]] == [(0, 0), (0, 0)]


def _raises_after(x):
    s = x.sum().item()
    if s > 0:
        raise ValueError(f"positive {s:.3f}")
    return x


def _catches_outside(x):
    y = x + 1
    return _raises_after(y) * 2


def test_an_exception_after_the_break_reaches_the_caller():
    _run(_catches_outside, _x(6), calls=6)


def _with_try(x):
    try:
        return helper(x) + 1
    except ZeroDivisionError:
        return x


def test_a_call_inside_try_splits_at_the_top_frame():
    reps = _run(_with_try, _x(3))
    assert len(reps[0].breaks) >= 1


def _closure_caller(x):
    k = x.shape[0]

    def inner(y):
        return helper(y) * k
    return inner(x + 1) - 1


def test_a_callee_with_cells_splits_at_its_call():
    _run(_closure_caller, _x(3))


class _Built:
    def __init__(self, x):
        CALLS["built"] += 1
        self.v = x.sum().item()


def _constructs(x):
    obj = _Built(x * 2)
    return x + obj.v


def test_a_constructor_breaking_in_init_is_no_chain():
    reps = _run(_constructs, _x(3))
    assert len(reps[0].breaks) == 2  # at the top frame's call, then in __init__ on its own


def _wrapped(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        LOG.append("wrapper")
        return fn(*args, **kwargs)
    return wrapper


@_wrapped
def _decorated_helper(x, *, scale):
    return helper(x) * scale


def _calls_decorated(x):
    return _decorated_helper(x.relu(), scale=3).sum(0)


def test_keyword_arguments_through_a_wrapper():
    _run(_calls_decorated, _x(2, 3))


class _Tracker:
    def __init__(self):
        self.seen = []

    def method(self, x):
        self.seen.append(x.sum().item())
        LOG.append(len(self.seen))
        return x * len(self.seen)


TRACKER = _Tracker()


def _calls_method(x):
    y = TRACKER.method(x + 1)
    return y + TRACKER.method(y)


def test_a_method_that_breaks_and_writes_its_object():
    def make(i):
        TRACKER.seen[:] = [0.0] * i  # each run starts from the same state
        return _x(3)(i)

    reps = _run(_calls_method, make, calls=3)
    assert _counts(reps[0]) == (3, 2)


class _Layer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x):
        h = self.lin(x)
        LOG.append(round(h.abs().max().item(), 4))
        return h.tanh()


class _Stack(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        torch.manual_seed(1)
        self.layers = torch.nn.ModuleList(_Layer() for _ in range(n))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def test_identical_layers_each_breaking_inside():
    reps = _run(_Stack(3), _x(2, 4), calls=3)
    assert reps[0].breaks and [_counts(r) for r in reps[1:]] == [(0, 0), (0, 0)]


def _warns(x):
    warnings.warn(f"size {x.shape[0]}", UserWarning, stacklevel=2)  # names its caller's line
    return x * 2


def _calls_warns(x):
    y = x + 1
    return _warns(y) - 1


def _logs(x):
    logging.getLogger("nested_breaks_test").warning("value %s", x.shape)
    return x * 2


def _calls_logs(x):
    return _logs(x + 1) - 1


@pytest.mark.parametrize("fn", [_calls_warns, _calls_logs], ids=lambda f: f.__name__)
def test_a_call_that_reads_its_callers_frame_runs_in_a_real_frame(fn, caplog):
    """warnings.warn(stacklevel=2) and a log record name the frame that called them: run in the
    top frame (the chain), they would name the top function's line."""
    def where():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            caplog.clear()
            value = run(torch.ones(3))
        return value, [(str(w.message), w.filename, w.lineno) for w in caught], \
            [(r.funcName, r.lineno, r.getMessage()) for r in caplog.records]

    terra_dyn.reset()
    run = fn
    eager = where()
    run = terra_dyn.optimize(fn, backend="interpreter")
    for _ in range(2):
        ours = where()
        torch.testing.assert_close(ours[0], eager[0])
        assert ours[1:] == eager[1:]


class _Schedule:
    def __init__(self):
        self.step_num = 0

    def rate(self):
        step = max(self.step_num, 1)  # a run-time number once step_num changed (a recompile)
        return 0.5 * min(step ** -0.5, step * 0.01)  # min() of run-time numbers: a break


SCHEDULE = _Schedule()


def _scheduled_step(x):
    SCHEDULE.step_num += 1
    return x * SCHEDULE.rate()


def test_a_callees_run_time_int_is_an_input_of_the_chain_at_once():
    """music_transformer's noam_rate: the chain's first translation takes the callee's `step`
    (an int held as a run-time number) as an input, not as a constant to retranslate for."""
    def make(i):
        SCHEDULE.step_num = 10 * i  # each run (optimized, eager) starts from the same count
        return _x(3)(i)

    reps = _run(_scheduled_step, make, calls=6)
    assert [len(r.translations) for r in reps[2:]] == [0, 0, 0, 0]


class _Obj:
    def __init__(self, name):
        self.name = name

    def __del__(self):
        LOG.append(("del", self.name))


def _drops_after_break(x):
    o = _Obj("inner")
    s = x.sum().item()
    del o  # dies here, as in eager: the chain hands values on, it does not keep them
    LOG.append("inner after del")
    return x + s


def _drops_around_call(x):
    big = _Obj("outer")
    y = _drops_after_break(x * 2)
    del big
    LOG.append("outer after del")
    return y - 1


def _drops_top(x):
    return _drops_around_call(x + 1) * 3


def test_values_handed_to_a_chain_die_where_eager_drops_them():
    _run(_drops_top, _x(3))
