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
