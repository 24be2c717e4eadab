"""Run-time paths of programs with breaks and recompiles: counts and results vs eager.

A number that changes every call (an argument, an attribute such as an AverageMeter's
running sum, a global) is translated at most twice: after it changes it becomes a graph
input. Loops broken every iteration reuse their resume functions (no new translations on
later calls), and a code object past the recompile limit runs eagerly. Every test compares
values with eager on the same inputs.
"""
import io

import numpy as np
import pytest
import torch

import terra_dyn
from terra_dyn import _C, report

SINK = io.StringIO()
SCALE = 1.0


class Meter:
    """The ImageNet example's AverageMeter: float / int attributes changing every call."""

    def __init__(self):
        self.sum = 0.0
        self.count = 0
        self.avg = 0.0

    def update(self, val, n=1):
        self.sum += val * n
        self.count += n
        self.avg = self.sum / self.count


def _step(meter, x):
    y = (x * 2).sum()
    meter.update(y.item(), 4)
    return y * meter.avg


def test_changing_attribute_numbers_become_inputs(fresh_terra_dyn):
    ours, eager = Meter(), Meter()
    fast = terra_dyn.optimize(_step, backend="interpreter")
    g = torch.Generator().manual_seed(0)
    with report.recording() as rec:
        for _ in range(12):
            x = torch.randn(5, generator=g)
            assert torch.equal(fast(ours, x), _step(eager, x))
    assert (ours.sum, ours.count, ours.avg) == (eager.sum, eager.count, eager.avg)
    rep = rec.report()
    assert len(rep.recompiles) <= 2, [str(r) for r in rep.recompiles]
    assert not rep.fallbacks


def _scaled(x):
    global SCALE
    SCALE = SCALE * 1.5
    print(x.sum().item(), file=SINK)
    return x * SCALE


def test_changing_global_number_becomes_input(fresh_terra_dyn):
    global SCALE
    fast = terra_dyn.optimize(_scaled, backend="interpreter")
    x = torch.randn(4, generator=torch.Generator().manual_seed(1))
    SCALE = 1.0
    with report.recording() as rec:
        ours = [fast(x) for _ in range(10)]
    ours_scale, SCALE = SCALE, 1.0
    eager = [_scaled(x) for _ in range(10)]
    assert ours_scale == SCALE
    for a, b in zip(ours, eager):
        assert torch.equal(a, b)
    assert len(rec.report().recompiles) <= 3


class Counter:
    def __init__(self):
        self.n = 2


def _counted(s, x):
    s.n += 1
    return torch.ones(s.n) * x.sum()


def test_number_that_breaks_translation_stays_constant(fresh_terra_dyn, monkeypatch):
    # a translation that cannot take the number as a graph input (here: made to refuse
    # every graph input number) is retried with it constant, not run eagerly
    from terra_dyn import convert_frame
    from terra_dyn.translate import Unsupported

    real = convert_frame.translate_frame

    def refusing(frame, options):
        if options.dynamic:
            raise Unsupported("no number inputs")
        return real(frame, options)

    monkeypatch.setattr(convert_frame, "translate_frame", refusing)
    ours_s, eager_s = Counter(), Counter()
    fast = terra_dyn.optimize(_counted, backend="interpreter")
    x = torch.randn(3, generator=torch.Generator().manual_seed(2))
    with report.recording() as rec:
        for _ in range(5):
            assert torch.equal(fast(ours_s, x), _counted(eager_s, x))
    assert ours_s.n == eager_s.n
    rep = rec.report()
    assert not rep.fallbacks and rep.graph_count == 5
    assert "a0.n" in convert_frame.state_of(_counted.__code__).static


def _print_loop(x, n):
    for _ in range(n):
        x = x * 1.0001 + 0.001
        print(x.sum().item(), file=SINK)
    return x


def test_loop_with_item_reuses_translations(fresh_terra_dyn):
    fast = terra_dyn.optimize(_print_loop, backend="interpreter")
    x = torch.randn(16, generator=torch.Generator().manual_seed(3))
    with report.recording() as first:
        assert torch.equal(fast(x, 50), _print_loop(x, 50))
    assert len(first.report().recompiles) <= 3
    with report.recording() as later:
        for seed in range(4, 8):
            y = torch.randn(16, generator=torch.Generator().manual_seed(seed))
            assert torch.equal(fast(y, 50), _print_loop(y, 50))
    rep = later.report()
    assert rep.graph_count == 0 and not rep.recompiles and not rep.fallbacks, [str(r) for r in rep.recompiles]


def test_closure_resume_path(fresh_terra_dyn):
    scale = torch.tensor(0.5)

    def f(x):
        for _ in range(3):
            x = x * scale + 1
            print(x.sum().item(), file=SINK)
        return x

    fast = terra_dyn.optimize(f, backend="interpreter")
    x = torch.randn(4, generator=torch.Generator().manual_seed(5))
    for _ in range(3):
        assert torch.equal(fast(x), f(x))


def test_recompile_limit_then_eager(fresh_terra_dyn, monkeypatch):
    monkeypatch.setattr(terra_dyn.config, "recompile_limit", 3)

    def shapes(x):
        return torch.relu(x) + 1

    fast = terra_dyn.optimize(shapes, backend="interpreter")
    with report.recording() as rec, pytest.warns(RuntimeWarning, match="recompile_limit"):
        for n in range(1, 9):  # a new number of dims each call (sizes alone would go symbolic)
            x = torch.randn([2] * n, generator=torch.Generator().manual_seed(n))
            assert torch.equal(fast(x), shapes(x))
    rep = rec.report()
    assert rep.graph_count == 3
    assert _C.is_skipped(shapes.__code__)


def _masked(x):
    mask = (x.detach().numpy() > 0).astype(np.float32)  # a new bound method every call
    return x * torch.from_numpy(mask) + 1


def test_method_of_a_numpy_array_does_not_recompile(fresh_terra_dyn):
    fast = terra_dyn.optimize(_masked, backend="interpreter")
    g = torch.Generator().manual_seed(6)
    with report.recording() as rec:
        for _ in range(6):
            x = torch.randn(5, generator=g)
            assert torch.equal(fast(x), _masked(x))
    rep = rec.report()
    assert not rep.recompiles and not rep.fallbacks, [str(r) for r in rep.recompiles]


def _logged_step(x, w):
    loss = (x @ w).pow(2).mean()
    value = loss.item()  # a break: what it returns differs every call
    acc = value * 0.5 + 1  # plain Python on the float
    return loss * 2, x * acc + value, acc


def test_a_float_returned_by_a_break_is_an_input_from_the_first_translation(fresh_terra_dyn):
    # before: the resume function after `.item()` held the first call's float as a constant
    # and was translated again on the second call (resnet50's accuracies, gpt2's loss)
    w = torch.randn(4, 3, generator=torch.Generator().manual_seed(4))
    fast = terra_dyn.optimize(_logged_step, backend="interpreter")
    with report.recording() as rec:
        for seed in range(6):
            x = torch.randn(5, 4, generator=torch.Generator().manual_seed(seed))
            got, expected = fast(x, w), _logged_step(x, w)
            assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
            assert type(got[2]) is float and got[2] == expected[2]
    rep = rec.report()
    assert not rep.recompiles and not rep.fallbacks, [str(r) for r in rep.recompiles]
    assert len(rep.translations) == 2  # the function, its resume function after `.item()`


def _sized_after_item(x):
    n = int(x.sum().item()) % 3 + 2  # an int made by a break: sizes need its value
    return torch.ones(n) * x.mean()


def test_an_int_returned_by_a_break_still_sizes_a_tensor(fresh_terra_dyn):
    fast = terra_dyn.optimize(_sized_after_item, backend="interpreter")
    with report.recording() as rec:
        for seed in range(6):
            x = torch.rand(4, generator=torch.Generator().manual_seed(seed)) * 10
            assert torch.equal(fast(x), _sized_after_item(x))
    assert not rec.report().fallbacks


def _running_mean(x, n):
    total, count = 0.0, 0
    for _ in range(n):
        x = x * 0.99 + 0.01
        v = x.mean().item()  # a break every iteration
        total += v * 2 - 1  # Python-number arithmetic on the float it made
        count += 1
    return x, total / count


def test_number_arithmetic_after_a_break_is_plain_bytecode_not_a_graph(fresh_terra_dyn):
    # before: `total += v * 2 - 1` was a graph of three number ops, called every iteration
    fast = terra_dyn.optimize(_running_mean, backend="interpreter")
    with report.recording() as rec:
        for seed in range(3):
            x = torch.randn(6, generator=torch.Generator().manual_seed(seed))
            got, expected = fast(x, 20), _running_mean(x, 20)
            assert torch.equal(got[0], expected[0]) and got[1] == expected[1]
    rep = rec.report()
    assert rep.graphs and not rep.fallbacks
    for g in rep.graphs:  # every graph left does tensor work
        assert any(isinstance(n.meta.get("example_value"), torch.Tensor) or n.op == "call_method"
                   for n in g.graph.graph.nodes if n.op not in ("placeholder", "output")), g.graph_text()


def _ratio_after_print(x, d):
    s = x.sum().item()
    print("sum", s, file=SINK)
    return s / (d - 1.0)  # number arithmetic that raises when d == 1.0


def test_number_arithmetic_raising_raises_at_the_users_line(fresh_terra_dyn):
    fast = terra_dyn.optimize(_ratio_after_print, backend="interpreter")
    x = torch.ones(3)
    for d in (3.0, 5.0, 2.0):
        assert fast(x, d) == _ratio_after_print(x, d)
    with pytest.raises(ZeroDivisionError) as info:
        fast(x, 1.0)
    assert info.traceback[-1].name == "_ratio_after_print"


def _rounded(x):
    v = x.sum().item()
    a, b, c = round(v, 2), int(v * 10), round(v)
    print("rounded", a, b, c, file=SINK)
    return x * a, a, b, c, float(b) / 4


def test_round_and_int_of_a_float_from_a_break_follow_each_call(fresh_terra_dyn):
    # before: round()/int() of the run-time float was one more break
    fast = terra_dyn.optimize(_rounded, backend="interpreter")
    with report.recording() as rec:
        for seed in range(5):
            x = torch.randn(4, generator=torch.Generator().manual_seed(seed))
            got, expected = fast(x), _rounded(x)
            assert torch.equal(got[0], expected[0])
            assert [(type(g), g) for g in got[1:]] == [(type(e), e) for e in expected[1:]]
    rep = rec.report()
    assert len({(b.filename, b.lineno) for b in rep.breaks}) == 1 and not rep.fallbacks
    assert not rep.recompiles


def _two_items(x):
    a = x.sum().item()  # a float made by the first break ...
    y = x * a
    b = y.mean().item()  # ... is a live local of the resume function after the second
    return y * b + a, a - b


def test_a_float_a_translation_held_as_a_run_time_number_stays_one_after_the_next_break(fresh_terra_dyn):
    # before: the resume function after `b = ...item()` got `a` as a constant first and
    # was translated again on the next call (dcgan's D_x across its later breaks)
    fast = terra_dyn.optimize(_two_items, backend="interpreter")
    with report.recording() as rec:
        for seed in range(5):
            x = torch.randn(3, generator=torch.Generator().manual_seed(seed))
            got, expected = fast(x), _two_items(x)
            assert torch.equal(got[0], expected[0]) and got[1] == expected[1]
    rep = rec.report()
    assert not rep.recompiles and not rep.fallbacks, [str(r) for r in rep.recompiles]


def _three_items(x):
    a = x.sum().item()
    b = x.mean().item()  # `a` passes through this resume function unread
    c = x.max().item()
    return x * (a + b + c)


def test_a_float_passed_through_unread_stays_a_run_time_number(fresh_terra_dyn):
    fast = terra_dyn.optimize(_three_items, backend="interpreter")
    with report.recording() as rec:
        for seed in range(5):
            x = torch.randn(3, generator=torch.Generator().manual_seed(seed))
            assert torch.equal(fast(x), _three_items(x))
    rep = rec.report()
    assert not rep.recompiles and not rep.fallbacks, [str(r) for r in rep.recompiles]


def _shaped(x):
    return (x * 2).relu().sum(0)


def _another_backend(gm, example_inputs):
    return gm.forward


def test_two_wrappers_of_one_function_count_their_own_recompiles(fresh_terra_dyn, monkeypatch):
    # a benchmark running two terra_dyn modes in one process: each wrapper's entries are its
    # own, so the other's first translation is no recompile and the limit is per wrapper
    monkeypatch.setattr(terra_dyn.config, "recompile_limit", 3)
    a = terra_dyn.optimize(_shaped, backend="interpreter")
    b = terra_dyn.optimize(_shaped, backend=_another_backend)
    shapes = [(2, 3), (4, 3), (2, 3)]
    with report.recording() as rec:
        for shape in shapes:
            x = torch.randn(*shape, generator=torch.Generator().manual_seed(shape[0]))
            for fast in (a, b):
                assert torch.equal(fast(x), _shaped(x))
    rep = rec.report()
    # each wrapper: a translation, then one recompile for the new size (symbolic after it)
    assert len(rep.translations) == 4 and len(rep.recompiles) == 2, [str(r) for r in rep.recompiles]
    assert not rep.fallbacks and not _C.is_skipped(_shaped.__code__)


def _clamped_size(x, ratio):
    h = x.shape[-1]
    n = max(1, int(round(h * ratio)), min(2, h))  # SDPoint's output size: Python numbers only
    return x[..., :n] * ratio, n


def test_max_and_min_of_run_time_numbers_follow_each_call(fresh_terra_dyn):
    fast = terra_dyn.optimize(_clamped_size, backend="interpreter")
    x = torch.randn(2, 8, generator=torch.Generator().manual_seed(7))
    with report.recording() as rec:
        for ratio in (0.5, 0.75, 0.01, 0.3, 1.0, 0.125):
            got, expected = fast(x, ratio), _clamped_size(x, ratio)
            assert torch.equal(got[0], expected[0]) and got[1] == expected[1] and type(got[1]) is int
    assert not rec.report().fallbacks


def _logged_loop(x, n):
    total = 0.0
    for i in range(n):
        x = x * 0.99 + 0.01
        v = x.mean().item()  # the body's one break
        total += v * 2
        print(i, v, file=SINK)
    return x, total


def test_a_loop_whose_body_breaks_once_calls_one_graph_per_iteration(fresh_terra_dyn):
    # before: two, the body's tensor work and a graph of `total += v * 2` on the float
    calls = []

    def counting(gm, example_inputs):
        def run(*args):
            calls.append(1)
            return gm.forward(*args)
        return run

    fast = terra_dyn.optimize(_logged_loop, backend=counting)
    for seed in range(3):
        calls.clear()
        x = torch.randn(8, generator=torch.Generator().manual_seed(seed))
        got, expected = fast(x, 50), _logged_loop(x, 50)
        assert torch.equal(got[0], expected[0]) and got[1] == expected[1]
        assert len(calls) == 50
