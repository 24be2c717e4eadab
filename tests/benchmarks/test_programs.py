"""Every benchmark program trains the same under terra_dyn as eagerly.

For each of the ten programs (benchmarks/programs/), two copies are built from one seed —
one eager, one with its training step wrapped by `terra_dyn.optimize(backend="interpreter")`
— and run for two steps on the same batches; losses and parameters after the steps must
match eager. A terra_dyn fallback still passes (it is correct, only slow); the graph,
break and fallback counts are printed (`pytest -s`) so capture coverage is visible.

Runtime: about a minute on two cores (small configurations, one torch thread).
"""
import os
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks import programs  # noqa: E402

STEPS = 2


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def run_steps(prog, steps=STEPS):
    return [prog.run(prog.make_batch(i)) for i in range(steps)]


def assert_same_training(eager, other, eager_losses, other_losses, rtol, atol):
    for i, (a, b) in enumerate(zip(eager_losses, other_losses)):
        torch.testing.assert_close(b, a, rtol=rtol, atol=atol, msg=lambda m: f"loss at step {i}: {m}")
    eager_params, other_params = eager.named_parameters(), other.named_parameters()
    assert eager_params.keys() == other_params.keys()
    for name, p in eager_params.items():
        torch.testing.assert_close(other_params[name], p, rtol=rtol, atol=atol,
                                   msg=lambda m: f"parameter {name} after {STEPS} steps: {m}")


def test_there_are_ten_programs_with_small_and_full_configs():
    assert len(programs.NAMES) == 10
    for name in programs.NAMES:
        prog = programs.build(name, "small")
        assert {"small", "full"} <= set(prog.configs), name
        assert prog.unit in ("step", "model")


@pytest.mark.parametrize("name", programs.NAMES)
def test_program_is_deterministic_eagerly(name):
    """Two eager copies agree exactly: the comparisons below rest on this."""
    a, b = programs.build(name, "small", seed=1), programs.build(name, "small", seed=1)
    la, lb = [], []
    for i in range(STEPS):  # interleaved, as the runner does: private random streams matter
        la.append(a.run(a.make_batch(i)))
        lb.append(b.run(b.make_batch(i)))
    assert_same_training(a, b, la, lb, rtol=0, atol=0)
    assert all(torch.isfinite(x) for x in la)


@pytest.mark.parametrize("name", programs.NAMES)
def test_program_trains_the_same_under_terra_dyn(name, capsys):
    import terra_dyn
    from terra_dyn import report

    terra_dyn.reset()
    eager = programs.build(name, "small", seed=0)
    fast = programs.build(name, "small", seed=0).optimize(
        lambda fn: terra_dyn.optimize(fn, backend="interpreter"))
    eager_losses = run_steps(eager)
    with report.recording() as recorder:
        fast_losses = run_steps(fast)
    rep = recorder.report()
    with capsys.disabled():
        print(f"\n[{name}] terra_dyn interpreter: {len(rep.graphs)} graphs, {len(rep.breaks)} breaks, "
              f"{len(rep.recompiles)} recompiles, {len(rep.fallbacks)} fallbacks")
    terra_dyn.reset()
    assert_same_training(eager, fast, eager_losses, fast_losses, rtol=1e-4, atol=1e-5)
