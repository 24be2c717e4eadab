"""Graph breaks: each kind compared with eager (values, printed output, calls, exceptions).

A break compiles the graph so far, runs the unsupported instruction natively and continues
in a resume function; Python effects that need no tensor value never break.
"""
import logging

import numpy as np
import pytest
import torch

import terra_dyn
from terra_dyn import report


def _both(fn, make_args, capsys):
    """(ours, eager, ours' printed text, eager's printed text, report)."""
    fast = terra_dyn.optimize(fn, backend="interpreter")
    with report.recording() as rec:
        ours = fast(*make_args())
    ours_out = capsys.readouterr().out
    eager = fn(*make_args())
    eager_out = capsys.readouterr().out
    return ours, eager, ours_out, eager_out, rec.report()


def _args(*shapes, seed=0):
    def make():
        g = torch.Generator().manual_seed(seed)
        return tuple(torch.randn(*s, generator=g) for s in shapes)
    return make


def test_print_of_tensor_breaks(fresh_terra_dyn, capsys):
    def f(x):
        y = x * 2
        print("y is", y)
        return y + 1

    ours, eager, o, e, rep = _both(f, _args((3,)), capsys)
    torch.testing.assert_close(ours, eager)
    assert o == e and rep.break_count == 1 and rep.graph_count == 2
    assert rep.breaks[0].lineno == f.__code__.co_firstlineno + 2
    assert "print" in rep.breaks[0].source_line


@pytest.mark.parametrize("kind", ["item", "tolist", "numpy", "bool"])
def test_value_needing_calls_break(fresh_terra_dyn, capsys, kind):
    def f(x):
        y = x.sum() * 3
        if kind == "item":
            v = y.item()
        elif kind == "tolist":
            v = y.tolist()
        elif kind == "numpy":
            v = float(np.asarray(y.numpy()))
        else:
            v = bool(y > 0)
        return x + v

    ours, eager, _, _, rep = _both(f, _args((4,)), capsys)
    torch.testing.assert_close(ours, eager)
    assert rep.break_count >= 1 and rep.graph_count >= 2


def test_branch_on_tensor_value_takes_both_paths(fresh_terra_dyn, capsys):
    def f(x):
        y = x.sum()
        if y > 0:
            z = x * 2
        else:
            z = x - 5
        return z.cos()

    fast = terra_dyn.optimize(f, backend="interpreter")
    pos, neg = torch.ones(3), -torch.ones(3)
    for x in (pos, neg, pos, neg):
        torch.testing.assert_close(fast(x), f(x))


def test_python_side_effects_do_not_break(fresh_terra_dyn, capsys):
    log = []

    class Stats:
        count = 0

    stats = Stats()

    def f(x, step):
        y = x.relu()
        print("step", step, "shape", tuple(y.shape))
        log.append(step)
        stats.count += 1
        logging.getLogger("terra_dyn_test").info("step %d", step)
        return y * 2

    fast = terra_dyn.optimize(f, backend="interpreter")
    x = torch.randn(3)
    with report.recording() as rec:
        ours = fast(x, 7)
    out = capsys.readouterr().out
    assert rec.report().break_count == 0 and rec.report().graph_count == 1
    assert out == "step 7 shape (3,)\n" and log == [7] and stats.count == 1
    torch.testing.assert_close(ours, x.relu() * 2)
    fast(x, 7)  # cached: the effects replay on every call
    assert capsys.readouterr().out == out and log == [7, 7] and stats.count == 2


def test_break_inside_inlined_callee_stays_inside_it(fresh_terra_dyn, capsys):
    def helper(t):
        s = t.sum()
        print("inside", s)
        return t * 2

    def f(x):
        a = x + 1
        b = helper(a)
        return b - 1

    ours, eager, o, e, rep = _both(f, _args((3,)), capsys)
    torch.testing.assert_close(ours, eager)
    assert o == e
    brk = next(b for b in rep.breaks if b.code_name == "f")
    assert brk.lineno == helper.__code__.co_firstlineno + 2  # where the print is ...
    assert brk.user_stack[0].endswith(f":{f.__code__.co_firstlineno + 2} in f")  # ... reached from f's call
    # f is not split at its call: the rest of helper and of f is one graph (nested_breaks.py)
    assert [g.code_name for g in rep.graphs] == ["f", "f"] and len(rep.breaks) == 1


def test_user_code_runs_once_per_call(fresh_terra_dyn, capsys):
    calls = []

    def noted(t):
        calls.append(1)
        return t + 1

    def f(x):
        y = noted(x)
        v = y.sum().item()
        return noted(y) * v

    fast = terra_dyn.optimize(f, backend="interpreter")
    x = torch.randn(3)
    torch.testing.assert_close(fast(x), f(x))
    assert len(calls) == 4  # twice ours, twice eager


def test_exceptions_keep_eager_semantics_across_breaks(fresh_terra_dyn, capsys):
    def f(x):
        y = x * 2
        print(y.sum().item() > 1e9)
        raise ValueError("boom from user code")

    fast = terra_dyn.optimize(f, backend="interpreter")
    with pytest.raises(ValueError, match="boom from user code"):
        fast(torch.randn(3))
    assert capsys.readouterr().out == "False\n"


def test_break_inside_loop_keeps_body_captured(fresh_terra_dyn, capsys):
    def f(x, n):
        for i in range(n):
            x = torch.sin(x) + i
            print(x.sum().item())
            x = x * 0.5
        return x

    fast = terra_dyn.optimize(f, backend="interpreter")
    x = torch.randn(4)
    with report.recording() as rec:
        got = fast(x, 6)
    o = capsys.readouterr().out
    want = f(x, 6)
    e = capsys.readouterr().out
    torch.testing.assert_close(got, want)
    assert o == e
    rep = rec.report()
    ops = sum(g.op_count for g in rep.graphs)
    assert ops >= 3  # sin, add, mul all in graphs
    assert rep.graph_count <= 8  # a handful of resume functions, not one per iteration


def test_ten_thousand_iterations_with_print_and_item(fresh_terra_dyn, capsys):
    def train(x, n):
        total = 0.0
        for i in range(n):
            x = x * 0.5 + 1
            print(x.sum().item())
            total = total + x.mean()
        return x, total

    fast = terra_dyn.optimize(train, backend="interpreter")
    x = torch.randn(4)
    with report.recording() as rec:
        got = fast(x, 10_000)
    ours_out = capsys.readouterr().out
    want = train(x, 10_000)
    assert ours_out == capsys.readouterr().out
    torch.testing.assert_close(got, want)
    rep = rec.report()
    assert rep.graph_count < 20 and not rep.fallbacks
    assert sum(g.op_count for g in rep.graphs) >= 3


def test_break_inside_no_grad_loop_keeps_grad_mode(fresh_terra_dyn):
    def f(x, n):
        acc = 0.0
        with torch.no_grad():
            for i in range(n):
                acc += (x * 2 + i).sum().item()
            z = x * 3
        return acc, z.requires_grad, torch.is_grad_enabled()

    x = torch.randn(3, requires_grad=True)
    fast = terra_dyn.optimize(f, backend="interpreter")
    with report.recording() as rec:
        got = fast(x, 5)
    assert got == f(x, 5) and torch.is_grad_enabled()
    assert not rec.report().fallbacks


def test_no_grad_block_ending_after_a_break_restores_grad_mode(fresh_terra_dyn):
    def f(x):
        with torch.no_grad():
            v = (x * 2).sum().item()
        return v  # the resume function's graph holds only the grad-mode switch

    fast = terra_dyn.optimize(f, backend="interpreter")
    x = torch.randn(3, requires_grad=True)
    for _ in range(2):
        assert fast(x) == f(x)
        assert torch.is_grad_enabled()


@pytest.mark.parametrize("where", ["raise", "native_error", "bool_of_tensor"])
def test_exception_after_break_inside_no_grad_restores_grad_mode(fresh_terra_dyn, where):
    def f(x):
        with torch.no_grad():
            y = x * 2
            v = y.sum().item()
            if where == "raise":
                raise ValueError(v)
            if where == "native_error":
                torch.ones(2) @ torch.ones(3)
            if y:  # a 3-element tensor: bool() raises
                pass
        return y

    fast = terra_dyn.optimize(f, backend="interpreter")
    x = torch.randn(3, requires_grad=True)
    for _ in range(2):
        with pytest.raises((ValueError, RuntimeError)) as ours:
            fast(x)
        assert torch.is_grad_enabled()
        with pytest.raises(type(ours.value)):
            f(x)


def test_break_in_no_grad_block_falls_back_correctly(fresh_terra_dyn, capsys):
    def f(x, w):
        with torch.no_grad():
            y = x * w
            print(y.sum().item() > 1e9)
        return (y * w).sum()

    x, w = torch.randn(3), torch.randn(3, requires_grad=True)
    fast = terra_dyn.optimize(f, backend="interpreter")
    got = fast(x, w)
    want = f(x, w)
    torch.testing.assert_close(got, want)
    assert got.requires_grad == want.requires_grad


def test_backward_breaks_and_matches_eager(fresh_terra_dyn):
    def step(x, w):
        loss = ((x @ w) ** 2).mean()
        loss.backward()
        return loss.detach(), w.grad.clone()

    x = torch.randn(4, 3)
    w1 = torch.randn(3, 2, requires_grad=True)
    w2 = w1.detach().clone().requires_grad_(True)
    fast = terra_dyn.optimize(step, backend="interpreter")
    torch.testing.assert_close(fast(x, w1), step(x, w2))


def test_a_cell_holding_a_graph_tensor_crosses_a_break(fresh_terra_dyn, capsys):
    """`scale` is a cell (the comprehension closes over it) whose tensor the graph made: at
    the break the resume function gets that cell with the graph's value in it (it used to
    be left out of the graph's outputs, and the whole frame ran as Python: yolov3's
    build_targets)."""
    def f(x, rows):
        scale = x.abs() + 1
        parts = [scale * r for r in rows]
        print("peak", float(parts[0].max()))
        return torch.stack([p / scale for p in parts]).sum(0) + scale

    x, rows = torch.randn(3), [1.0, 2.0, 3.0]
    with report.recording() as rec:
        got = terra_dyn.optimize(f, backend="interpreter")(x, rows)
    ours = capsys.readouterr().out
    torch.testing.assert_close(got, f(x, rows))
    assert capsys.readouterr().out == ours
    r = rec.report()
    assert not r.fallbacks and r.graph_count == 2 and r.break_count == 1
