"""Graph breaks inside `with` blocks of @contextlib.contextmanager managers (timers, logging
scopes, profiling regions around a training step) and of torch.autocast.

A break inside such a block moves to the block's with statement: the graph so far runs,
the with statement runs natively on a real manager, and the rest of the frame goes on in
translated code inside a Python with block (for autocast: translated with autocast on). Every test compares with eager on the same
inputs: the returned values, the log the generator and the body write (entries, exits,
finally blocks, their order), exceptions, and checks that the tensor work after the break
is still in graphs.
"""
import contextlib

import pytest
import torch

import terra_dyn
from terra_dyn import report

LOG = []


@contextlib.contextmanager
def scope(name):
    LOG.append(("enter", name))
    try:
        yield name.upper()
    finally:
        LOG.append(("exit", name))


@contextlib.contextmanager
def swallow(kind):
    try:
        yield
    except kind as exc:
        LOG.append(("swallowed", type(exc).__name__))


def compare(fn, *args, calls=3):
    """Eager then optimized, `calls` times each; returns the report of the optimized calls."""
    fast = terra_dyn.optimize(fn, backend="interpreter")
    with report.recording() as rec:
        for _ in range(calls):
            LOG.clear()
            try:
                expected, expected_error = fn(*args), None
            except Exception as exc:  # noqa: BLE001
                expected, expected_error = None, exc
            expected_log = list(LOG)
            LOG.clear()
            try:
                got, got_error = fast(*args), None
            except Exception as exc:  # noqa: BLE001
                got, got_error = None, exc
            assert LOG == expected_log
            assert type(got_error) is type(expected_error)
            if expected_error is not None:
                assert str(got_error) == str(expected_error)
            else:
                assert torch.equal(got, expected)
    terra_dyn.reset()
    return rec.report()


def ops_in_graphs(rep, name):
    return sum(1 for g in rep.graphs for n in g.graph.graph.nodes if name in str(n.target))


def test_item_inside_a_timer_block_keeps_the_rest_captured():
    def step(x, w):
        y = x @ w
        with scope("fwd") as tag:
            z = torch.tanh(y) * 2
            LOG.append((tag, round(z.sum().item(), 4)))  # a break inside the block
            z = torch.sigmoid(z) + 1
        return z.relu().sum()

    rep = compare(step, torch.randn(4, 4), torch.randn(4, 4))
    assert not rep.fallbacks
    assert ops_in_graphs(rep, "sigmoid") >= 1 and ops_in_graphs(rep, "relu") >= 1


def test_exception_after_the_break_reaches_the_generator():
    def step(x):
        with scope("a"):
            print(end="")  # a break
            if x.sum() > -1e9:  # a break on a tensor value, then a raise in the block
                raise KeyError("inside")
        return x

    compare(step, torch.randn(3))


def test_a_generator_that_swallows_the_exception():
    def step(x):
        y = x * 2
        with swallow(ZeroDivisionError):
            LOG.append(y.sum().item())
            y = y / 0 if False else y + 1
            1 / 0
        return torch.cos(y)

    rep = compare(step, torch.randn(3))
    assert ops_in_graphs(rep, "cos") >= 1


def test_nested_blocks_and_a_loop():
    def step(x, n):
        total = 0.0
        with scope("outer"):
            for i in range(n):
                with scope(f"inner{i % 2}"):
                    x = torch.tanh(x) * 1.5
                    total += x.mean().item()
        return x + total

    compare(step, torch.randn(5), 50)


def test_many_iterations_keep_the_stack_flat():
    def step(x):
        for _ in range(3000):
            with scope("s"):
                x = x * 0.999
                if x.sum().item() > 1e9:
                    break
        return x

    compare(step, torch.ones(4), calls=1)


def test_block_in_an_inlined_callee():
    def inner(x):
        with scope("callee"):
            LOG.append(x.max().item())
            return torch.exp(x)

    def step(x):
        return inner(x * 2) + 1

    compare(step, torch.randn(3))


@pytest.mark.parametrize("strict", [False, True])
def test_strict_mode_does_not_refuse_a_breakable_block(strict):
    def step(x):
        with scope("s"):
            LOG.append(x.sum().item())
        return x + 1

    x = torch.randn(3)
    LOG.clear()
    expected = step(x)
    expected_log = list(LOG)
    LOG.clear()
    got = terra_dyn.optimize(step, backend="interpreter", strict=strict)(x)
    assert torch.equal(got, expected) and LOG == expected_log
    terra_dyn.reset()


# ----------------------------------------------------------------------------- autocast

def autocast_nesting():
    """torch's autocast nesting count (its weight cache is cleared when it returns to 0):
    translation must never change it, eager's own enters and exits keep it balanced."""
    n = torch.autocast_increment_nesting()
    torch.autocast_decrement_nesting()
    return n - 1


@pytest.fixture(autouse=False)
def balanced_autocast():
    before = autocast_nesting()
    yield
    assert autocast_nesting() == before
    assert not torch.is_autocast_enabled("cpu")


def test_item_inside_an_autocast_block(balanced_autocast):
    def step(x, w):
        y = x @ w
        with torch.autocast("cpu", dtype=torch.bfloat16):
            z = (y @ w).relu()
            LOG.append(round(z.float().sum().item(), 2))  # a break inside the block
            z = torch.sigmoid(z @ w)
        LOG.append((z.dtype, torch.is_autocast_enabled("cpu")))
        return z.float().sum() + torch.tanh(x).sum()

    rep = compare(step, torch.randn(4, 4), torch.randn(4, 4))
    assert not rep.fallbacks and not rep.recompiles[1:]
    assert ops_in_graphs(rep, "sigmoid") >= 1 and ops_in_graphs(rep, "tanh") >= 1
    assert not torch.is_autocast_enabled("cpu")


def test_exception_inside_an_autocast_block_after_a_break(balanced_autocast):
    def step(x):
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                y = x @ x
                LOG.append(y.dtype)
                print(end="")  # a break
                raise ValueError(str(torch.is_autocast_enabled("cpu")))
        except ValueError as exc:
            LOG.append(("caught", str(exc), torch.is_autocast_enabled("cpu")))
        return x + 1

    compare(step, torch.randn(3, 3))
    assert not torch.is_autocast_enabled("cpu")


def test_autocast_block_inside_a_timer_block(balanced_autocast):
    def step(x):
        with scope("t"):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                y = torch.mm(x, x)
                LOG.append(round(y.float().mean().item(), 2))
                y = torch.mm(y, x)
        return y.float() * 2

    compare(step, torch.randn(3, 3))
