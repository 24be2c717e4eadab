"""terra_dyn.explain on real functions: graphs, breaks (file, line, source, stack), guards,
recompiles through recording(), str and JSON. Every function is also run eagerly.

Expected counts follow the issue's rules: tensor work with no break is one graph; an
`.item()` in the middle splits it into the graph before and the graph after (2 graphs,
1 break at the `.item()` line).
"""
import inspect
import json

import pytest
import torch

import terra_dyn
from terra_dyn.report import Report, recording


def straight(x, w):
    y = torch.relu(x @ w)
    return (y * 2 + 1).sum(dim=1)


def item_in_the_middle(x, w):
    y = torch.relu(x @ w)
    scale = y.sum().item()  # ITEM LINE
    return y * scale


def helper_with_item(y):
    return y.mean().item()  # CALLEE ITEM LINE


def break_in_callee(x):
    y = x.sin() * 2
    m = helper_with_item(y)  # CALL SITE LINE
    return y + m


def line_of(fn, marker):
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, text in enumerate(lines) if marker in text)


def inputs():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(4, 8, generator=gen), torch.randn(8, 3, generator=gen)


def test_explain_returns_a_report_and_runs_the_call_once():
    calls = []

    def counted(x):
        calls.append(1)
        return x + 1

    report = terra_dyn.explain(counted, torch.ones(2))
    assert isinstance(report, Report)
    assert len(calls) == 1
    assert report.title == "explain(test_explain_returns_a_report_and_runs_the_call_once.<locals>.counted)"


def test_explain_straight_line_code_is_one_graph_without_breaks():
    report = terra_dyn.explain(straight, *inputs())
    assert report.break_count == 0, report.breaks
    assert report.graph_count == 1, f"expected one graph for straight-line tensor code:\n{report}"
    graph = report.graphs[0]
    assert graph.op_count >= 4  # matmul, relu, mul, add, sum
    assert graph.filename == __file__ and graph.code_name == "straight"
    assert report.guards, "the translation's guards should be listed"


def test_explain_item_in_the_middle_is_two_graphs_and_one_break():
    report = terra_dyn.explain(item_in_the_middle, *inputs())
    assert report.break_count == 1, f"expected one break at .item():\n{report}"
    brk = report.breaks[0]
    assert brk.filename == __file__
    assert brk.lineno == line_of(item_in_the_middle, "ITEM LINE")
    assert "y.sum().item()" in brk.source_line
    assert "item" in brk.reason.lower()
    assert brk.user_stack and str(brk.lineno) in brk.user_stack[-1]
    assert report.graph_count == 2, f"expected the graph before and after the break:\n{report}"


def test_explain_break_in_an_inlined_callee_names_both_lines():
    report = terra_dyn.explain(break_in_callee, inputs()[0])
    assert report.break_count >= 1, f"expected a break for .item() in the callee:\n{report}"
    callee_line = line_of(helper_with_item, "CALLEE ITEM LINE")
    call_line = line_of(break_in_callee, "CALL SITE LINE")
    text = " ".join(f"{b.lineno} {' '.join(b.user_stack)}" for b in report.breaks)
    assert str(callee_line) in text and str(call_line) in text, report.breaks


def test_explain_str_and_json_describe_the_break():
    report = terra_dyn.explain(item_in_the_middle, *inputs())
    text = str(report)
    assert "explain(item_in_the_middle)" in text
    assert all(len(line) <= 80 for line in text.splitlines())
    data = json.loads(json.dumps(report.to_json()))
    assert data["summary"]["graphs"] == report.graph_count
    assert [b["lineno"] for b in data["breaks"]] == [b.lineno for b in report.breaks]
    if report.break_count:
        assert f"line {report.breaks[0].lineno}: scale = y.sum().item()" in text


def test_explain_translates_afresh_each_time():
    first = terra_dyn.explain(straight, *inputs())
    second = terra_dyn.explain(straight, *inputs())
    assert second.graph_count == first.graph_count
    assert [g.op_count for g in second.graphs] == [g.op_count for g in first.graphs]


def test_explain_a_module():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU())
    report = terra_dyn.explain(model, inputs()[0])
    assert report.title == "explain(Sequential)"
    assert report.graph_count == 1 and report.break_count == 0, (
        f"optimize(torch.nn.Sequential) must capture its forward, though torch's own code:\n{report}")


def test_explain_propagates_the_users_exception():
    def bad(x):
        return x @ x  # (2, 3) @ (2, 3): a shape error eager raises too

    with pytest.raises(RuntimeError):
        bad(torch.ones(2, 3))
    with pytest.raises(RuntimeError):
        terra_dyn.explain(bad, torch.ones(2, 3))


def test_recording_shows_a_recompile_with_the_failing_guard():
    terra_dyn.reset()

    def f(x):
        return x * 2

    fast = terra_dyn.optimize(f, backend="interpreter")
    with recording() as rec:
        a, b = fast(torch.ones(2, 3)), fast(torch.ones(5, 7, 2))
    assert torch.equal(a, f(torch.ones(2, 3))) and torch.equal(b, f(torch.ones(5, 7, 2)))
    report = rec.report()
    assert len(report.recompiles) == 1, f"a new rank must retranslate once:\n{report}"
    assert report.recompiles[0].code_name == "f" and report.recompiles[0].failed_guard
    assert report.recompiles[0].variable == "x"
    assert "x shape changed: (2, 3) -> (5, 7, 2) (line " in str(report)
