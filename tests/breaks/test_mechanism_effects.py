"""Python effects around graphs: replay order, containers, globals, closures, with/try.

Terra's idea: effects that need no tensor value are recorded and replayed after the graph
in program order, so they never split the graph. Each test compares with eager.
"""
import collections

import torch

import terra_dyn
from terra_dyn import report

COUNTS = collections.Counter()
TOTAL = 0


def _once(fn, *args):
    with report.recording() as rec:
        out = terra_dyn.optimize(fn, backend="interpreter")(*args)
    return out, rec.report()


def test_print_shows_list_as_it_was_at_that_point(fresh_terra_dyn, capsys):
    def f(x, lst):
        lst.append(1)
        print(lst)
        lst.append(2)
        print(lst, len(lst))
        return x + 1

    a, b = [], []
    _, rep = _once(f, torch.ones(1), a)
    ours = capsys.readouterr().out
    f(torch.ones(1), b)
    assert ours == capsys.readouterr().out and a == b and rep.break_count == 0


def test_appending_to_a_growing_list_does_not_recompile(fresh_terra_dyn):
    def f(x, losses):
        y = x * 2
        losses.append("step")
        return y

    fast = terra_dyn.optimize(f, backend="interpreter")
    losses = []
    with report.recording() as rec:
        for _ in range(20):
            fast(torch.ones(2), losses)
    assert losses == ["step"] * 20 and not rec.report().recompiles


def test_global_and_counter_updates(fresh_terra_dyn):
    def f(x):
        global TOTAL
        TOTAL += 1
        COUNTS["f"] += 1
        return x.relu()

    before_total, before_count = TOTAL, COUNTS["f"]
    out, rep = _once(f, torch.randn(3))
    assert TOTAL == before_total + 1 and COUNTS["f"] == before_count + 1
    assert rep.graph_count == 1 and rep.break_count == 0


def test_nonlocal_counter(fresh_terra_dyn):
    count = 0

    def f(x):
        nonlocal count
        count += 1
        return x * count

    fast = terra_dyn.optimize(f, backend="interpreter")
    x = torch.ones(2)
    outs = [fast(x) for _ in range(3)]
    assert count == 3
    torch.testing.assert_close(outs[2], x * 3)


class Timer:
    def __init__(self, log):
        self.log = log

    def __enter__(self):
        self.log.append("enter")
        return self

    def __exit__(self, *exc):
        self.log.append("exit")
        return False


def test_python_context_manager_is_inlined(fresh_terra_dyn):
    def f(x, log):
        with Timer(log):
            y = x * 2
        return y + 1

    log_ours, log_eager = [], []
    out, rep = _once(f, torch.ones(2), log_ours)
    torch.testing.assert_close(out, f(torch.ones(2), log_eager))
    assert log_ours == log_eager == ["enter", "exit"] and rep.break_count == 0


def test_try_body_without_exception_is_captured(fresh_terra_dyn):
    def f(x, log):
        try:
            y = x.sin()
        finally:
            log.append("finally")
        return y

    log = []
    out, rep = _once(f, torch.ones(2), log)
    torch.testing.assert_close(out, torch.ones(2).sin())
    assert log == ["finally"] and rep.graph_count == 1


def test_exception_caught_in_frame_runs_except_once(fresh_terra_dyn):
    def f(x, log):
        try:
            v = x.sum().item()
            return {}[v]
        except KeyError:
            log.append("except")
            return x * 0

    log_ours, log_eager = [], []
    out, _ = _once(f, torch.ones(2), log_ours)
    torch.testing.assert_close(out, f(torch.ones(2), log_eager))
    assert log_ours == log_eager == ["except"]


def test_generator_consumed_in_frame(fresh_terra_dyn):
    def f(xs):
        return sum(t * t for t in xs) + max(len(xs), 2)

    xs = [torch.ones(2) * i for i in range(3)]
    out, rep = _once(f, xs)
    torch.testing.assert_close(out, f(xs))
    assert rep.break_count == 0


def test_no_grad_block_is_captured(fresh_terra_dyn):
    def f(x, w):
        with torch.no_grad():
            y = x * w
        return y * w

    x, w = torch.randn(3), torch.randn(3, requires_grad=True)
    out, rep = _once(f, x, w)
    want = f(x, w)
    torch.testing.assert_close(out, want)
    assert out.requires_grad == want.requires_grad and rep.break_count == 0
    assert torch.is_grad_enabled()
