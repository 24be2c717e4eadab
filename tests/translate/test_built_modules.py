"""torch.nn modules built inside an optimized function from constants (`nn.Softmax(dim=-1)(w)`
in GPT-2's attention, `CrossEntropyLoss()` in a model's loss): a module that holds no state is
made at translate time and called in the graph, a new one per call as in eager; one with
parameters or buffers, or whose construction raises, runs natively. Each compared with eager."""
import pytest
import torch
import torch.nn as nn

import terra_dyn
from terra_dyn import report


def _run(fn, *args, seed=None):
    fast = terra_dyn.optimize(fn, backend="interpreter")
    outs = []
    with report.recording() as rec:
        for _ in range(2):
            if seed is not None:
                torch.manual_seed(seed)
            outs.append(fast(*args))
    return outs, rec.report()


@pytest.mark.parametrize("make", [
    lambda: nn.Softmax(dim=-1),
    lambda: nn.LogSoftmax(1),
    lambda: nn.ReLU(),
    lambda: nn.GELU(approximate="tanh"),
    lambda: nn.LeakyReLU(0.2),
    lambda: nn.Hardtanh(-0.5, 0.5),
    lambda: nn.Flatten(0),
    lambda: nn.Identity(),
    lambda: nn.Softplus(beta=2.0),
])
def test_stateless_module_built_in_the_function_is_in_the_graph(fresh_terra_dyn, make):
    def f(x):
        return make()(x * 2) + 1

    x = torch.randn(3, 4)
    outs, rep = _run(f, x)
    for out in outs:
        torch.testing.assert_close(out, f(x))
    assert rep.break_count == 0


def test_dropout_built_in_the_function_draws_as_eager(fresh_terra_dyn):
    def f(x):
        d = nn.Dropout(0.5)
        return d(x), d.training

    x = torch.randn(64)
    outs, rep = _run(f, x, seed=3)
    torch.manual_seed(3)
    expected = f(x)
    for out in outs:
        torch.testing.assert_close(out[0], expected[0])
        assert out[1] is True
    assert rep.break_count == 0


def test_built_module_returned_is_a_new_object_per_call(fresh_terra_dyn):
    def f(x):
        act = nn.Softmax(dim=0)
        return act(x), act

    x = torch.randn(5)
    (first, second), _ = _run(f, x)
    assert type(first[1]) is nn.Softmax and first[1].dim == 0
    assert first[1] is not second[1]
    torch.testing.assert_close(first[0], torch.softmax(x, 0))


def test_module_with_parameters_built_in_the_function_runs_natively(fresh_terra_dyn):
    def f(x):
        return nn.Linear(4, 2)(x)  # fresh random weights each call, as in eager

    x = torch.randn(3, 4)
    outs, _ = _run(f, x, seed=7)
    torch.manual_seed(7)
    expected = f(x)
    for out in outs:
        torch.testing.assert_close(out, expected)


def test_construction_that_raises_raises_as_eager(fresh_terra_dyn):
    def f(x):
        return nn.Dropout(p=1.5)(x)

    with pytest.raises(ValueError) as native:
        f(torch.ones(2))
    with pytest.raises(ValueError) as ours:
        terra_dyn.optimize(f)(torch.ones(2))
    assert str(ours.value) == str(native.value)


def test_init_patched_after_the_first_call_is_seen(fresh_terra_dyn):
    class Scaled(nn.ReLU):
        pass

    Scaled.__module__ = "torch.nn.modules.activation"  # looks like torch's own

    def f(x):
        return Scaled()(x)

    fast = terra_dyn.optimize(f)
    x = torch.randn(6)
    torch.testing.assert_close(fast(x), torch.relu(x))
    original = Scaled.__init__

    def patched(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.forward = lambda t: t * 10

    Scaled.__init__ = patched
    torch.testing.assert_close(fast(x), f(x))
