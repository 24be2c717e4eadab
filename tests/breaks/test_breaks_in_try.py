"""Graph breaks inside try bodies, Python with blocks and frames that write closure cells.

A break inside `try:` (or the block of a context manager written in Python) runs the
breaking instruction in a step code that keeps the original exception table, then goes on
in a resume function that is translated like any other: the tensor work after the break is
in a graph. An exception goes to the original handler, which runs natively. A frame's cells
are shared with its resume functions, so a write after a break is seen by inner functions.

Every test compares with eager on the same inputs: values, printed text, the Python state
the program changes (LOG, CALLS), exceptions, and how often user code ran; graph counts
show the code after the break is captured.
"""
import sys
from collections import Counter

import numpy as np
import pytest
import torch

import terra_dyn
from terra_dyn import report

from .against_eager import run_both

LOG = []
CALLS = Counter()


def _run(fn, make_args, capsys, calls=3):
    """Run `fn` optimized then eagerly, `calls` times each, on fresh inputs each time; compare
    everything and return the report of the optimized *first* call."""
    return run_both(fn, lambda i: make_args(), LOG, CALLS, calls, printed=lambda: capsys.readouterr().out)[0]


def _x(*shape, seed=0):
    def make():
        return (torch.randn(*shape, generator=torch.Generator().manual_seed(seed)),)
    return make


def _ops(rep):
    return [g.op_count for g in rep.graphs]


def noted(t):
    """User code that runs in a graph or natively: its calls are counted either way."""
    CALLS["noted"] += 1
    return t * 2


def failing(t, when):
    CALLS["failing"] += 1
    if when:
        raise ValueError("failing was asked to fail")
    return t + 1


# --------------------------------------------------------------------------- try bodies

@pytest.mark.parametrize("kind", ["print", "item", "numpy"])
def test_break_inside_try_body_keeps_the_rest_captured(fresh_terra_dyn, capsys, kind):
    def f(x):
        try:
            y = x * 2
            if kind == "print":
                print("y:", y.sum())
            elif kind == "item":
                LOG.append(y.sum().item())
            else:
                LOG.append(float(np.asarray(y.numpy()).sum()))
            z = noted(y.sin()) + 1
            w = z.cos() * z
        except ValueError:
            LOG.append("except")
            w = x
        return w - 1

    rep = _run(f, _x(4), capsys)
    assert rep.break_count == (1 if kind != "numpy" else rep.break_count)  # numpy: one per call
    # the last graph holds sin, noted's mul, add, cos, mul and the final sub
    assert rep.graph_count >= 2 and _ops(rep)[-1] >= 6, rep.graphs


def test_exception_after_break_is_caught_by_the_handler(fresh_terra_dyn, capsys):
    def f(x):
        try:
            y = x.relu()
            v = int(y.sum().item() > -1)
            LOG.append("body")
            k = {}[v]  # a KeyError raised natively after the break
            return x * k
        except KeyError as e:
            LOG.append(("except", e.args))
            return x * 0 + 5

    rep = _run(f, _x(3), capsys)
    assert rep.break_count >= 1


def test_exception_from_user_code_after_break_is_caught(fresh_terra_dyn, capsys):
    def f(x, fail):
        try:
            y = x * 3
            LOG.append(round(y.sum().item(), 4))
            z = failing(y, fail)  # raises for fail=True: the handler runs natively
            z = z.exp()
        except ValueError as e:
            LOG.append(str(e))
            z = x - 1
        return z * 2

    rep = _run(f, lambda: (torch.ones(3), False), capsys)
    assert [g.op_count for g in rep.graphs][-1] >= 3  # failing's add, exp, mul after the break
    _run(f, lambda: (torch.ones(3), True), capsys)


def test_exception_raised_by_the_breaking_call_itself_is_caught(fresh_terra_dyn, capsys):
    def f(x):
        try:
            y = x + 1
            v = y.item()  # several elements: RuntimeError from the native call
            return y * v
        except RuntimeError:
            LOG.append("caught")
            return y * 2

    _run(f, _x(3), capsys)
    _run(f, _x(1), capsys)


def test_tensor_branch_inside_try_resumes_on_both_paths(fresh_terra_dyn, capsys):
    def f(x):
        try:
            y = x.sum()
            if y > 0:
                z = x * 2
            else:
                z = x - 5
            z = z.cos()
        finally:
            LOG.append("finally")
        return z + 1

    rep = _run(f, lambda: (torch.ones(3),), capsys)
    assert rep.graph_count == 2
    _run(f, lambda: (-torch.ones(3),), capsys)


def test_bool_of_a_bad_tensor_inside_try_goes_to_the_handler(fresh_terra_dyn, capsys):
    def f(x):
        try:
            if x > 0:  # several elements: the jump itself raises
                return x
            return x + 1
        except RuntimeError:
            LOG.append("ambiguous")
            return x * 0

    _run(f, _x(3), capsys)


def test_raise_after_break_runs_finally_once(fresh_terra_dyn, capsys):
    def f(x):
        try:
            y = x * 2
            print("sum", y.sum())
            LOG.append("body")
            if y.shape[0] == 4:
                raise ValueError(f"rows: {y.shape[0]}")
            return y.exp()
        finally:
            LOG.append("finally")

    _run(f, _x(4), capsys)
    rep = _run(f, _x(5), capsys)
    assert _ops(rep)[-1] >= 1  # exp, after the break, is in a graph


def test_break_inside_finally_block(fresh_terra_dyn, capsys):
    def f(x):
        y = x * 2
        try:
            y = y + 1
        finally:
            LOG.append(y.sum().item())  # a break in the (normal path) finally block
            z = y.sin() * 2
        return z + y

    rep = _run(f, _x(3), capsys)
    assert rep.graph_count == 2 and _ops(rep)[1] >= 3


def test_break_inside_finally_after_an_exception(fresh_terra_dyn, capsys):
    def f(x):
        y = x * 2
        try:
            {}[0]
        finally:
            LOG.append(y.sum().item())
            y = y.sin()

    _run(f, _x(3), capsys)


def test_nested_try_outer_handler_catches(fresh_terra_dyn, capsys):
    def f(x, fail):
        try:
            y = x.abs()
            try:
                LOG.append(y.sum().item())
                y = failing(y, fail) * 2
            except KeyError:
                LOG.append("inner")
            y = y.sqrt()
        except ValueError:
            LOG.append("outer")
            y = x * 0
        return y + 1

    rep = _run(f, lambda: (torch.ones(3), False), capsys)
    assert rep.graph_count == 2 and _ops(rep)[1] >= 4
    _run(f, lambda: (torch.ones(3), True), capsys)


def test_break_after_except_clause_resumes(fresh_terra_dyn, capsys):
    def f(x, key):
        try:
            y = {"a": x}[key]
        except KeyError:
            y = x * 0
        LOG.append(y.sum().item())
        return y.cos()

    _run(f, lambda: (torch.ones(2), "a"), capsys)
    _run(f, lambda: (torch.ones(2), "b"), capsys)


# --------------------------------------------------------------------------- with blocks

class Recorder:
    """A context manager written in Python; `suppress` swallows exceptions."""

    def __init__(self, name, suppress=False):
        self.name = name
        self.suppress = suppress

    def __enter__(self):
        LOG.append(("enter", self.name))
        return self

    def __exit__(self, kind, value, tb):
        LOG.append(("exit", self.name, kind.__name__ if kind else None))
        return self.suppress


@pytest.mark.parametrize("suppress", [False, True])
def test_break_inside_user_with_block(fresh_terra_dyn, capsys, suppress):
    def f(x, fail):
        z = x
        with Recorder("r", suppress):
            y = x * 2
            LOG.append(round(y.sum().item(), 4))
            z = failing(y, fail).sin()
        return z * 3

    rep = _run(f, lambda: (torch.ones(3), False), capsys)
    assert rep.graph_count == 2 and _ops(rep)[1] >= 3
    _run(f, lambda: (torch.ones(3), True), capsys)


def test_with_block_break_is_not_recompiled_every_call(fresh_terra_dyn, capsys):
    def f(x):
        with Recorder("r"):
            print(x.sum())
            y = x.sin()
        return y

    fast = terra_dyn.optimize(f, backend="interpreter")
    with report.recording() as rec:
        for _ in range(5):
            torch.testing.assert_close(fast(torch.ones(2)), torch.ones(2).sin())
    assert len(rec.report().recompiles) == 0
    assert rec.report().graph_count == 2  # the first call's two graphs, then cached


def test_break_inside_no_grad_inside_try(fresh_terra_dyn, capsys):
    def f(x):
        try:
            with torch.no_grad():
                y = x * 2
                LOG.append(y.sum().item())
                z = y.exp()
            w = x * z
        except RuntimeError:
            w = x
        return w, torch.is_grad_enabled(), z.requires_grad

    x = torch.ones(3, requires_grad=True)
    rep = _run(f, lambda: (x,), capsys)
    assert rep.graph_count == 2


# --------------------------------------------------------------------------- loops

@terra_dyn.disable
def depth():
    """The Python stack depth here (never translated): flat across loop iterations."""
    frame, n = sys._getframe(), 0
    while frame is not None:
        frame, n = frame.f_back, n + 1
    return n


def test_try_inside_loop_with_break_ten_thousand_iterations(fresh_terra_dyn, capsys):
    depths = []

    def f(x, n):
        total = 0.0
        for i in range(n):
            try:
                y = x * i
                total += y.sum().item()
                if i % 2500 == 0:
                    depths.append(depth())
                x = x + 0.001
            except ZeroDivisionError:
                break
        return x, total

    fast = terra_dyn.optimize(f, backend="interpreter")
    ours = fast(torch.ones(3), 10_000)
    ours_depths, depths[:] = list(depths), []
    eager = f(torch.ones(3), 10_000)
    torch.testing.assert_close(ours, eager)
    assert len(ours_depths) == 4 and len(set(ours_depths)) == 1  # a flat stack


def test_loop_break_and_continue_inside_try(fresh_terra_dyn, capsys):
    def f(x):
        for i in range(6):
            try:
                v = (x * i).sum().item()
                if v > 12:
                    break
                if i % 2:
                    continue
                LOG.append(v)
            finally:
                LOG.append(("finally", i))
        return x * i

    _run(f, lambda: (torch.ones(3),), capsys)


# --------------------------------------------------------------------------- closure cells

def test_cell_written_after_break_is_seen_by_inner_function(fresh_terra_dyn, capsys):
    def f(x):
        scale = 2

        def inner(t):
            return t * scale

        y = inner(x)
        LOG.append(y.sum().item())
        scale = 3
        return inner(x) + y

    rep = _run(f, _x(3), capsys)
    assert rep.break_count == 1 and rep.graph_count == 2


def test_cell_written_before_and_after_break_inner_made_after(fresh_terra_dyn, capsys):
    def f(x):
        acc = x + 1
        LOG.append(acc.sum().item())
        acc = acc * 2
        get = lambda: acc  # noqa: E731
        first = get()
        acc = acc + 10
        return first, get(), acc

    _run(f, _x(3), capsys)


def test_cell_empty_at_the_break(fresh_terra_dyn, capsys):
    def f(x):
        LOG.append(x.sum().item())
        late = x.cos()
        fn = lambda: late * 2  # noqa: E731
        return fn()

    rep = _run(f, _x(3), capsys)
    assert rep.graph_count == 2


def test_nonlocal_writes_before_and_after_break(fresh_terra_dyn, capsys):
    def make():
        count = 0
        last = None

        def step(x):
            nonlocal count, last
            count += 1
            y = x * count
            LOG.append(y.sum().item())
            count += 10
            last = y.sin()
            return last

        def read():
            return count, last

        return step, read

    step, read = make()
    fast = terra_dyn.optimize(step, backend="interpreter")
    eager_step, eager_read = make()
    for _ in range(3):
        torch.testing.assert_close(fast(torch.ones(2)), eager_step(torch.ones(2)))
        (c1, l1), (c2, l2) = read(), eager_read()
        assert c1 == c2
        torch.testing.assert_close(l1, l2)


def test_closure_escaping_through_a_break_keeps_sharing_the_cell(fresh_terra_dyn, capsys):
    def f(x):
        n = 1

        def bump():
            nonlocal n
            n += 1
            return n

        bump()
        LOG.append(x.sum().item())
        bump()
        LOG.append(n)
        n = n * 10
        return x * bump(), bump, n

    fast = terra_dyn.optimize(f, backend="interpreter")
    LOG.clear()
    ours = fast(torch.ones(2))
    ours_log = list(LOG)
    LOG.clear()
    eager = f(torch.ones(2))
    assert ours_log == LOG
    torch.testing.assert_close(ours[0], eager[0])
    assert ours[2] == eager[2] and ours[1]() == eager[1]()


def test_cell_argument_written_after_break(fresh_terra_dyn, capsys):
    def f(x, k):
        get = lambda: k  # noqa: E731  (k is an argument and a cell)
        LOG.append((x * get()).sum().item())
        k = k + 1
        return x * get()

    _run(f, lambda: (torch.ones(2), 3), capsys)


def test_cell_empty_at_the_break_next_to_a_guarded_one(fresh_terra_dyn, capsys):
    def f(x, a):
        b = a + 1  # a cell read (and guarded) after the break
        LOG.append(x.sum().item())
        c = 3  # empty at the break
        fn = lambda t: t * b * c  # noqa: E731
        return fn(x)

    _run(f, lambda: (torch.ones(2), 2), capsys)
    _run(f, lambda: (torch.ones(2), 5), capsys)


def test_closure_made_before_the_break_is_not_recompiled_every_call(fresh_terra_dyn, capsys):
    def f(x, w):
        scale = 0.5

        def layer(h):
            return torch.tanh(h @ w) * scale + h

        h = layer(x)
        LOG.append(round(h.sum().item(), 3))
        scale = 0.25
        return layer(layer(h))

    x, w = torch.randn(3, 4), torch.randn(4, 4)
    fast = terra_dyn.optimize(f, backend="interpreter")
    with report.recording() as rec:
        for _ in range(4):
            torch.testing.assert_close(fast(x, w), f(x, w))
    rep = rec.report()
    assert rep.graph_count == 2 and len(rep.recompiles) == 0 and len(rep.fallbacks) == 0
    assert _ops(rep)[1] >= 8  # both layer calls after the break, with the new scale


def test_keyword_call_breaking_inside_try(fresh_terra_dyn, capsys):
    def f(x):
        try:
            y = x.exp()
            print("y", y.sum(), sep="|", end="!\n")
            return y * 2
        except TypeError:
            return x

    rep = _run(f, _x(3), capsys)
    assert rep.graph_count == 2


def test_break_inside_no_grad_inside_try_raising_reaches_the_handler(fresh_terra_dyn, capsys):
    def f(x):
        try:
            with torch.no_grad():
                y = x * 2
                LOG.append(y.item())  # several elements: RuntimeError, caught below
                z = y.exp()
        except RuntimeError:
            LOG.append(("caught", torch.is_grad_enabled()))
            z = x.sin()
        return z * 2, torch.is_grad_enabled()

    x = torch.ones(3, requires_grad=True)
    _run(f, lambda: (x,), capsys)
    y = torch.ones(1, requires_grad=True)
    rep = _run(f, lambda: (y,), capsys)
    assert rep.graph_count == 2


def test_cells_and_try_together(fresh_terra_dyn, capsys):
    def f(x, fail):
        scale = 2
        g = lambda t: t * scale  # noqa: E731
        try:
            LOG.append(g(x).sum().item())
            scale = 5
            y = failing(g(x), fail)
        except ValueError:
            scale = 7
            y = g(x)
        return y + scale

    rep = _run(f, lambda: (torch.ones(2), False), capsys)
    assert rep.graph_count == 2 and _ops(rep)[1] >= 3
    _run(f, lambda: (torch.ones(2), True), capsys)


def test_loop_over_a_real_iterator_inside_try(fresh_terra_dyn, capsys):
    def items(n, fail_at):
        for i in range(n):
            if i == fail_at:
                raise ValueError(f"item {i}")
            yield i

    def f(x, it):
        total = x
        try:
            for i in it:  # a real iterator: each FOR_ITER is a break inside the try
                total = total * 2 + i
        except ValueError as e:
            LOG.append(str(e))
        return total.sin()

    _run(f, lambda: (torch.ones(2), iter([1, 2, 3])), capsys)
    _run(f, lambda: (torch.ones(2), items(5, 3)), capsys)


@pytest.mark.parametrize("n", [1, 3])
def test_try_inside_no_grad_block(fresh_terra_dyn, capsys, n):
    def f(x):
        with torch.no_grad():
            try:
                y = x * 2
                LOG.append(y.item())  # raises for several elements
                y = y.exp()
            except RuntimeError:
                LOG.append(("caught", torch.is_grad_enabled()))
                y = x.cos()
            z = y * 3
        return z, z.requires_grad, torch.is_grad_enabled()

    x = torch.ones(n, requires_grad=True)
    rep = _run(f, lambda: (x,), capsys)
    # n == 3: the handler runs natively, then the code after the try is translated again
    assert rep.graph_count == 2


def test_code_after_a_handler_is_translated_again(fresh_terra_dyn, capsys):
    def f(x, fail):
        try:
            y = x.exp()
            LOG.append(round(y.sum().item(), 3))
            y = failing(y, fail)
        except ValueError as e:  # `e` is deleted at the end of the handler, as in eager
            LOG.append(str(e))
            y = x.cos()
        return noted(y).sin() + y.tanh()  # after the handler: a graph again

    _run(f, lambda: (torch.ones(3), False), capsys)
    fast = terra_dyn.optimize(f, backend="interpreter")
    with report.recording() as rec:
        torch.testing.assert_close(fast(torch.ones(3), True), f(torch.ones(3), True))
    assert _ops(rec.report())[-1] >= 4  # noted's mul, sin, tanh, add


def test_exception_caught_every_iteration_keeps_the_loop_captured(fresh_terra_dyn, capsys):
    depths = []

    def f(x, n):
        caught = 0
        for i in range(n):
            try:
                v = (x * i).sum().item()
                x = x + {}[v]  # KeyError every iteration, raised natively
            except KeyError:
                caught += 1
                if i % 2500 == 0:
                    depths.append(depth())
            x = x * 0.5 + 1  # after the handler: translated again
        return x, caught

    fast = terra_dyn.optimize(f, backend="interpreter")
    with report.recording() as rec:
        ours = fast(torch.ones(3), 10_000)
    ours_depths, depths[:] = list(depths), []
    torch.testing.assert_close(ours, f(torch.ones(3), 10_000))
    assert len(ours_depths) == 4 and len(set(ours_depths)) == 1  # a flat stack
    rep = rec.report()
    assert len(rep.recompiles) <= 2 and rep.graph_count <= 6


def test_handler_exit_goes_on_natively_when_no_resume_code_can_be_made(fresh_terra_dyn, capsys,
                                                                      monkeypatch):
    from terra_dyn.codegen import resume

    def f(x, fail):
        try:
            y = x.exp()
            LOG.append(round(y.sum().item(), 3))
            y = failing(y, fail)
        except ValueError:
            y = x.cos()
        return y.sin()

    fast = terra_dyn.optimize(f, backend="interpreter")
    torch.testing.assert_close(fast(torch.ones(2), False), f(torch.ones(2), False))  # step code made

    def refuse(*args):
        raise RuntimeError("no resume code")

    monkeypatch.setattr(resume, "make_resume_code", refuse)
    LOG.clear()
    ours = fast(torch.ones(2), True)
    ours_log = list(LOG)
    LOG.clear()
    torch.testing.assert_close(ours, f(torch.ones(2), True))
    assert ours_log == LOG


def test_graph_raising_after_a_break_inside_try_runs_the_handler(fresh_terra_dyn, capsys):
    """The graph after the break raises at run time (an index fake tensors cannot check):
    the segment re-runs natively (codegen/graph_errors.py GraphErrorRerun) in the resume
    code, whose exception table sends the error to the user's handler."""
    def f(x, idx):
        try:
            y = x * 2
            LOG.append(y.sum().item())
            z = torch.nn.functional.embedding(idx, y)
            LOG.append("after")
        except IndexError:
            LOG.append("caught")
            z = x
        return z.sin()

    x = torch.ones(3, 2)
    _run(f, lambda: (x, torch.tensor([1])), capsys)
    _run(f, lambda: (x, torch.tensor([7])), capsys)
