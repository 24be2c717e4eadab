"""A number seen changing on an object is a graph input for every code object that reads it.

A recompile that finds `obj.attr` or `obj[key]` holding another number (a learning rate, a
scheduled drop probability, a step counter) notes it (translate/changing.py); the next
translation of any function that reads it takes it as a graph input from the start instead
of as a constant that costs one more recompile (dropblock: DropBlock2D.forward translated 5
times after the second step before). Floats follow the class of their owner; a translation
that fails with such an input is retried with it constant. Every call is compared with
eager, and the number of translations is the point.
"""
import numpy as np
import pytest
import torch

import terra_dyn
from terra_dyn import report


@pytest.fixture(autouse=True)
def _fresh():
    terra_dyn.reset()
    yield
    terra_dyn.reset()


class Holder:
    def __init__(self, p):
        self.p = p


def _run(fn, obj, values, x=lambda: torch.ones(3)):
    """Calls fn(x, obj) optimized and eagerly with obj.p set to each value; returns the report."""
    fast = terra_dyn.optimize(fn, backend="interpreter")
    with report.recording() as rec:
        for v in values:
            obj.p = v
            torch.testing.assert_close(fast(x(), obj), fn(x(), obj), rtol=0, atol=0)
    return rec.report()


def _translations_of(rep, fn):
    return sum(t.code_name == fn.__name__ for t in rep.translations)


def test_a_number_seen_changing_is_an_input_of_the_next_function_that_reads_it():
    h = Holder(0.1)

    def step(x, h):  # sees h.p change first (a train step's scheduler)
        return x * h.p

    def forward(x, h):  # reads it later (the module's forward, translated on its own)
        return x - h.p * 2

    first = _run(step, h, [0.1, 0.2])
    assert len(first.recompiles) == 1
    rep = _run(forward, h, [0.3, 0.4, 0.5, 0.6])
    # before: one translation with p constant, one recompile making it an input
    assert _translations_of(rep, forward) == 1 and not rep.recompiles and not rep.fallbacks


def test_a_learning_rate_in_an_optimizer_param_group_is_an_input_everywhere():
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([w], lr=0.1)
    group = opt.param_groups[0]

    def schedule(x, opt):
        return x * opt.param_groups[0]["lr"]

    def report_lr(x, opt):
        return x + opt.param_groups[0]["lr"]

    fast_schedule = terra_dyn.optimize(schedule, backend="interpreter")
    fast_report = terra_dyn.optimize(report_lr, backend="interpreter")
    with report.recording() as rec:
        for step in range(6):
            group["lr"] = 0.1 / (step + 1)
            x = torch.ones(3)
            torch.testing.assert_close(fast_schedule(x, opt), schedule(x, opt), rtol=0, atol=0)
            if step >= 2:  # first read after schedule's recompile saw lr change
                torch.testing.assert_close(fast_report(x, opt), report_lr(x, opt), rtol=0, atol=0)
    rep = rec.report()
    assert _translations_of(rep, schedule) == 2 and _translations_of(rep, report_lr) == 1
    assert not rep.fallbacks


def test_a_float_attribute_follows_its_class_to_other_instances():
    class Drop(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = 0.0

        def forward(self, x):
            return x * (1 - self.p)

    a, b = Drop(), Drop()
    fast_a = terra_dyn.optimize(a, backend="interpreter")
    with report.recording():
        for p in (0.1, 0.2):
            a.p = p
            torch.testing.assert_close(fast_a(torch.ones(2)), a(torch.ones(2)))

    def use_b(x, b):  # another code object, another instance of the same class
        return b(x) + b.p

    rep = _run(use_b, b, [0.3, 0.35, 0.4], x=lambda: torch.ones(2))
    assert _translations_of(rep, use_b) == 1 and not rep.recompiles and not rep.fallbacks


def test_an_int_does_not_follow_its_class():
    a, b = Holder(1), Holder(5)

    def use_a(x, a):
        return x * a.p

    def use_b(x, b):
        return x * b.p

    _run(use_a, a, [1, 2])
    rep = _run(use_b, b, [5, 5, 5])
    assert _translations_of(rep, use_b) == 1
    # b.p is guarded by value: a change is a recompile of use_b (then an input there)
    rep = _run(use_b, b, [6, 7])
    assert len(rep.recompiles) == 1


def test_a_count_read_as_an_input_elsewhere_stays_right_where_its_value_is_needed():
    h = Holder(2)

    def step(x, h):
        return x * h.p

    def loop(x, h):
        for i in range(h.p):  # the count is needed as a value: a break, never a stale constant
            x = x + i
        return x

    _run(step, h, [2, 3])
    rep = _run(loop, h, [3, 3, 4, 4, 2])
    assert not rep.fallbacks


def test_a_translation_that_fails_with_a_changed_number_as_input_retries_it_constant(monkeypatch):
    from terra_dyn.translate import graph_state

    h = Holder(0.5)

    def step(x, h):
        return x * h.p

    def other(x, h):
        return x + h.p

    _run(step, h, [0.5, 0.25])
    real = graph_state.GraphState.input_scalar

    def failing(self, value, source):  # an input the translation cannot take
        raise RuntimeError("cannot take it as an input")

    monkeypatch.setattr(graph_state.GraphState, "input_scalar", failing)
    rep = _run(other, h, [0.75, 0.75])
    monkeypatch.setattr(graph_state.GraphState, "input_scalar", real)
    assert _translations_of(rep, other) == 1 and not rep.fallbacks and not rep.recompiles


def test_numpy_floats_made_before_a_resume_function_are_its_inputs_from_the_start():
    def f(x):
        gamma = np.float64(x.sum().item()) / 9  # the numpy call runs natively
        return x * gamma

    fast = terra_dyn.optimize(f, backend="interpreter")
    with report.recording() as rec:
        for i in range(5):
            x = torch.full((3,), float(i + 1), dtype=torch.float64)
            torch.testing.assert_close(fast(x), f(x), rtol=0, atol=0)
    rep = rec.report()
    assert not rep.recompiles and not rep.fallbacks


@pytest.mark.parametrize("holder", ["object", "module"])
def test_float_items_of_a_metrics_dict_are_inputs_once_one_changed(holder):
    layer = torch.nn.Module() if holder == "module" else Holder(0)

    def read(x, layer):  # yolov3's train step reads each yolo layer's metrics
        return x * layer.metrics.get("loss", 0) + layer.metrics.get("recall", 0) + layer.metrics["size"]

    fast = terra_dyn.optimize(read, backend="interpreter")
    with report.recording() as rec:
        for step in range(6):
            # a new dict every step (the layer's forward builds it); recall stays 0.0 for three
            layer.metrics = {"loss": 10.0 - step, "recall": 0.0 if step < 3 else step / 10, "size": 8}
            torch.testing.assert_close(fast(torch.ones(2), layer), read(torch.ones(2), layer), rtol=0, atol=0)
    rep = rec.report()
    assert len(rep.translations) == 2 and not rep.fallbacks  # before: a third at step 3


def test_the_notes_keep_no_object_or_class_alive():
    import gc
    import weakref

    from terra_dyn.translate import changing

    class Scheduled:  # a class made per call (a factory, a test)
        p = 0.1

    obj, layer = Scheduled(), Scheduled()
    layer.metrics = {"loss": 1.0}
    changing.note(obj, "p", 0.2)
    changing.note(layer.metrics, "loss", 2.0, holder=(layer, "metrics"))
    assert changing.wanted(Scheduled(), "p", 0.3)  # the float follows the class
    refs = [weakref.ref(x) for x in (obj, layer, Scheduled)]
    del obj, layer, Scheduled
    gc.collect()
    assert all(r() is None for r in refs)
