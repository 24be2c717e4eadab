"""Every program of tests/breaks/programs.py under terra_dyn, compared with eager.

For each program: values (tensors, containers, Python numbers), Python side effects
(globals, mutated arguments, call counters), printed output (capsys), log records (caplog)
and exceptions (type and message) must equal eager's, on the first call and on a second,
cached call. Then the first call's report must show the graph and break counts the program
states (derived from the issue's rules; see programs.py), no fallback, and the tensor work
inside graphs.
"""
import inspect
import linecache
import logging
import sys
import traceback
from dataclasses import dataclass
from typing import Any, List, Optional

import pytest
import torch

import terra_dyn
from terra_dyn import _C
from terra_dyn.report import recording

from . import programs
from .programs import PROGRAMS

BACKEND = "interpreter"


@dataclass
class Outcome:
    value: Any
    error: Optional[BaseException]
    printed: str
    logs: List[tuple]
    globals: dict
    state: Any


def run(fn, program, capsys, caplog) -> Outcome:
    programs.reset()
    args = program.inputs()
    capsys.readouterr()
    caplog.clear()
    try:
        value, error = fn(*args), None
    except Exception as exc:  # compared with eager's below
        value, error = None, exc
    printed = capsys.readouterr().out
    logs = [(r.levelname, r.getMessage()) for r in caplog.records]
    return Outcome(value, error, printed, logs, programs.snapshot(), program.state(args))


def differences(eager, ours, path="value") -> List[str]:
    if isinstance(eager, torch.Tensor):
        if not isinstance(ours, torch.Tensor):
            return [f"{path}: expected a tensor, got {type(ours).__name__}"]
        for attr in ("shape", "dtype", "requires_grad"):
            if getattr(eager, attr) != getattr(ours, attr):
                return [f"{path}.{attr}: eager {getattr(eager, attr)}, ours {getattr(ours, attr)}"]
        if not torch.allclose(eager.detach(), ours.detach(), rtol=1e-5, atol=1e-6, equal_nan=True):
            return [f"{path}: values differ (max abs diff {(eager - ours).abs().max().item():.3g})"]
        return []
    if isinstance(eager, (list, tuple)):
        if type(eager) is not type(ours) or len(eager) != len(ours):
            return [f"{path}: eager {type(eager).__name__} of {len(eager)}, ours {ours!r:.80}"]
        return [d for i, (a, b) in enumerate(zip(eager, ours)) for d in differences(a, b, f"{path}[{i}]")]
    if isinstance(eager, dict):
        if not isinstance(ours, dict) or eager.keys() != ours.keys():
            return [f"{path}: eager keys {sorted(map(str, eager))}, ours {ours!r:.80}"]
        return [d for k in eager for d in differences(eager[k], ours[k], f"{path}[{k!r}]")]
    if isinstance(eager, float) and isinstance(ours, float):
        return [] if abs(eager - ours) <= 1e-5 * max(1.0, abs(eager)) else [f"{path}: {eager} != {ours}"]
    return [] if eager == ours else [f"{path}: eager {eager!r:.80}, ours {ours!r:.80}"]


def compare(eager: Outcome, ours: Outcome) -> List[str]:
    problems = []
    if type(eager.error) is not type(ours.error) or str(eager.error) != str(ours.error):
        problems.append(f"exception: eager {eager.error!r}, ours {ours.error!r}")
    problems += differences(eager.value, ours.value)
    problems += differences(eager.globals, ours.globals, "globals")
    problems += differences(eager.state, ours.state, "state")
    if eager.printed != ours.printed:
        problems.append(f"printed output: eager {eager.printed[-300:]!r}, ours {ours.printed[-300:]!r}")
    if eager.logs != ours.logs:
        problems.append(f"log records: eager {eager.logs[-5:]}, ours {ours.logs[-5:]}")
    return problems


@pytest.fixture(autouse=True)
def _capture_warnings(caplog):
    caplog.set_level(logging.WARNING, logger=programs.log.name)


@pytest.fixture
def fresh():
    terra_dyn.reset()
    yield
    terra_dyn.reset()


def ids(ps):
    return [p.name for p in ps]


@pytest.mark.parametrize("program", PROGRAMS, ids=ids(PROGRAMS))
def test_program_matches_eager_on_first_and_cached_call(program, capsys, caplog, fresh):
    eager = run(program.fn, program, capsys, caplog)
    if program.raises is not None:
        assert isinstance(eager.error, program.raises), f"the program itself should raise: {eager.error!r}"
    else:
        assert eager.error is None, f"the program itself failed: {eager.error!r}"
    fast = terra_dyn.optimize(program.fn, backend=BACKEND)
    for call in ("first", "cached"):
        ours = run(fast, program, capsys, caplog)
        problems = compare(eager, ours)
        assert not problems, f"{program.name}, {call} call, differs from eager:\n  " + "\n  ".join(problems)


def _in(count, expected):
    low, high = (expected, expected) if isinstance(expected, int) else expected
    return low <= count <= high


@pytest.mark.parametrize("program", PROGRAMS, ids=ids(PROGRAMS))
def test_program_graph_and_break_counts(program, capsys, caplog, fresh):
    fast = terra_dyn.optimize(program.fn, backend=BACKEND)
    with recording() as recorder:
        run(fast, program, capsys, caplog)
    report = recorder.report()
    graphs = [g for g in report.graphs if g.op_count > 0]
    sites = {(b.filename, b.lineno) for b in report.breaks}
    detail = f"{program.name} ({program.rule}):\n{report.render(width=100)}"
    assert not report.fallbacks, f"fell back to plain Python: {detail}"
    assert _in(len(graphs), program.graphs), f"expected {program.graphs} graphs, got {len(graphs)}: {detail}"
    assert _in(len(sites), program.breaks), f"expected {program.breaks} break sites, got {len(sites)}: {detail}"
    assert sum(g.op_count for g in graphs) >= program.min_ops, f"tensor work not in graphs: {detail}"


BREAKING = [p for p in PROGRAMS if isinstance(p.breaks, int) and p.breaks >= 1]


@pytest.mark.parametrize("program", BREAKING, ids=ids(BREAKING))
def test_breaks_name_file_line_and_source(program, capsys, caplog, fresh):
    fast = terra_dyn.optimize(program.fn, backend=BACKEND)
    with recording() as recorder:
        run(fast, program, capsys, caplog)
    breaks = recorder.report().breaks
    assert breaks, f"{program.name}: no break recorded ({program.rule})"
    for b in breaks:
        assert b.reason and b.source_line.strip(), b
        assert b.source_line.strip() == linecache.getline(b.filename, b.lineno).strip(), b
        assert b.user_stack and f"{b.filename}:{b.lineno}" in b.user_stack[-1], b
        # the stack leads from the user's frame (a break in library code names the user's call)
        assert b.user_stack[0].startswith(programs.__file__ + ":"), b.user_stack


def _raise_line():
    lines, start = inspect.getsourcelines(programs.raise_after_break)
    return start + next(i for i, text in enumerate(lines) if "raise ValueError" in text)


def test_exception_after_a_break_has_the_eager_traceback(capsys, fresh):
    fast = terra_dyn.optimize(programs.raise_after_break, backend=BACKEND)
    programs.reset()
    with pytest.raises(ValueError, match="bad rows: 4") as info:
        fast(*programs.X())
    frames = [f for f in traceback.extract_tb(info.value.__traceback__) if f.filename == programs.__file__]
    assert frames, "the traceback lost the user's frames"
    assert frames[-1].lineno == _raise_line() and "raise_after_break" in frames[-1].name, frames
    assert programs.LOG == ["body", "finally"]  # the body's append and finally ran once each
    assert "sum before raising" in capsys.readouterr().out


def _loop_graphs(n):
    terra_dyn.reset()
    fast = terra_dyn.optimize(programs.long_loop_with_print_and_item, backend=BACKEND)
    with recording() as recorder:
        fast(torch.linspace(0, 1, 16), n)
    return [g for g in recorder.report().graphs if g.op_count > 0]


def test_loop_graph_count_does_not_grow_with_iterations(capsys, fresh):
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(400)  # a continuation per iteration on the stack would fail here
    try:
        short, long = _loop_graphs(10), _loop_graphs(3000)
    finally:
        sys.setrecursionlimit(limit)
    assert short, "the loop body was not captured"
    assert len(long) == len(short), (len(short), len(long))


def test_every_iteration_of_a_long_loop_runs_in_graphs(capsys, fresh):
    """R5: the body stays captured for all iterations (not only until a recompile limit)."""
    calls = []

    def counting_backend(gm, example_inputs):  # the torch.compile backend convention
        def run_graph(*args):
            calls.append(1)
            return gm(*args)
        return terra_dyn.disable(run_graph)  # the counter itself is not user code to translate

    n = 3000
    fast = terra_dyn.optimize(programs.long_loop_with_print_and_item, backend=counting_backend)
    y, total = fast(torch.linspace(0, 1, 16), n)
    eager_y, eager_total = programs.long_loop_with_print_and_item(torch.linspace(0, 1, 16), n)
    assert torch.allclose(y, eager_y) and abs(total - eager_total) < 1e-6 * n
    assert len(calls) >= n, f"graphs ran {len(calls)} times for {n} iterations: the body fell back to eager"


def test_training_step_stays_optimized_over_many_iterations(caplog, fresh):
    def train(step, steps=60):
        model, optimizer, loader = programs.make_training(steps)
        losses = [step(model, optimizer, x, y).item() for x, y in loader]
        return losses, [p.detach().clone() for p in model.parameters()]

    eager_losses, eager_params = train(programs.train_step)
    eager_logs = [r.getMessage() for r in caplog.records]
    caplog.clear()
    fast = terra_dyn.optimize(programs.train_step, backend=BACKEND)
    with recording() as recorder:
        ours_losses, ours_params = train(fast)
    assert [r.getMessage() for r in caplog.records] == eager_logs
    assert not differences(eager_losses, ours_losses) and not differences(eager_params, ours_params)
    report = recorder.report()
    assert report.graphs, f"the training step was not captured:\n{report}"
    assert not report.fallbacks, str(report)
    assert not _C.is_skipped(programs.train_step.__code__), f"the step stopped being optimized:\n{report}"
