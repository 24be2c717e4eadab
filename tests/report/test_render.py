"""Report rendering and JSON on hand-made records (no translation involved).

The records are built the way convert_frame builds them; the tests check what a user
reads: grouping per frame, breaks grouped by reason with counts, the costliest breaks,
recompiles with their guard, times, 80 columns, and a JSON round trip.
"""
import json

import pytest

from terra_dyn.report import (Fallback, GraphBreak, GraphRecord, Recompile, Report, frame_name,
                              record_break, record_graph, recording)

FILE = "/home/user/project/train.py"
LONG_REASON = ("call to numpy.linalg.norm, a C function that reads the tensor's data, so the graph "
               "is compiled and called before it and Python runs the call itself")


def make_report():
    return Report(
        graphs=[
            GraphRecord("train_step", FILE, 10, 12, backend="interpreter", translate_seconds=0.25,
                        compile_seconds=0.5),
            GraphRecord("__resume_at_40_train_step", FILE, 10, 3, backend="interpreter", translate_seconds=0.25),
            GraphRecord("log", FILE, 30, 2, backend="interpreter"),
        ],
        breaks=[
            GraphBreak("Tensor.item() needs a tensor value", FILE, 14, "        v = loss.item()",
                       [f"{FILE}:14 in train_step"], "train_step"),
            GraphBreak("Tensor.item() needs a tensor value", FILE, 14, "        v = loss.item()",
                       [f"{FILE}:14 in train_step"], "__resume_at_40_train_step"),
            GraphBreak("Tensor.item() needs a tensor value", FILE, 16, "        w = x.item()", [], "train_step"),
            GraphBreak(LONG_REASON, FILE, 31, "    n = np.linalg.norm(t.numpy())",
                       [f"{FILE}:12 in train_step", f"{FILE}:31 in log"], "train_step"),  # log inlined
        ],
        recompiles=[Recompile("train_step", FILE, 10, "x: expected size (8, 16), got (4, 16)")],
        fallbacks=[Fallback("gen", FILE, 50, "generator frames run as plain Python")],
        guards=["type(x) is Tensor\nx.size() == (8, 16)"],
        title="train.py --steps 3",
    )


def test_resume_functions_are_grouped_with_their_frame():
    assert frame_name("__resume_at_40_train_step") == "train_step"
    assert frame_name("train_step") == "train_step"
    frames = {f.name: f for f in make_report().frames()}
    assert set(frames) == {"train_step", "log", "gen"}
    assert [g.op_count for g in frames["train_step"].graphs] == [12, 3]


def test_breaks_are_grouped_by_site_with_counts_and_cost():
    frames = {f.name: f for f in make_report().frames()}
    sites = {(s.lineno, s.count) for s in frames["train_step"].break_sites}
    assert sites == {(14, 2), (16, 1), (31, 1)}  # 31: inside the inlined log()
    site14 = next(s for s in frames["train_step"].break_sites if s.lineno == 14)
    assert site14.ops_around == 15 and site14.cost == 30


def test_costliest_breaks_rank_count_times_ops():
    ranked = make_report().costliest_breaks()
    assert [(s.lineno, s.cost) for s in ranked] == [(14, 30), (16, 15), (31, 15)]


def test_text_report_shows_every_part():
    text = str(make_report())
    assert "train.py --steps 3" in text
    assert "3 graphs (17 ops), 4 breaks at 3 sites, 1 recompile, 1 fallback" in text
    assert "graphs: 2 (12 + 3 ops)" in text
    assert "break x3: Tensor.item() needs a tensor value" in text  # grouped by reason
    assert "line 14: v = loss.item()" in text and "line 16: w = x.item()" in text
    assert "recompile: x: expected size (8, 16), got (4, 16)" in text
    assert "fallback (ran as plain Python): generator frames run as plain Python" in text
    assert "translating 500 ms, compiling 500 ms" in text
    # the inlined callee's break shows how it was reached
    assert "from .../project/train.py:12 in train_step" in text
    costliest = text.split("Costliest breaks")[1].splitlines()[1]
    assert "train.py:14" in costliest and "30" in costliest


def test_text_report_fits_80_columns():
    report = make_report()
    for text in (report.render(), report.render(verbose=True)):
        too_wide = [line for line in text.splitlines() if len(line) > 80]
        assert not too_wide, too_wide
    assert "Guards of each translation" in report.render(verbose=True)


def test_json_has_records_frames_and_summary_and_round_trips():
    report = make_report()
    data = json.loads(report.dumps())
    assert data["summary"]["graphs"] == 3 and data["summary"]["breaks"] == 4
    assert data["summary"]["break_sites"] == 3
    assert data["breaks"][3]["user_stack"][1].endswith("31 in log")
    assert [f["name"] for f in data["frames"]] == ["train_step", "log", "gen"]  # by first record
    assert data["costliest_breaks"][0]["lineno"] == 14
    assert data["recompiles"][0]["failed_guard"].startswith("x: expected")
    again = Report.from_json(data)
    assert str(again) == str(report)


def test_graph_json_holds_the_graph_text_not_the_module():
    fx = pytest.importorskip("torch.fx")
    import torch

    gm = fx.symbolic_trace(lambda x: torch.relu(x) + 1)
    data = GraphRecord("f", FILE, 1, 2, graph=gm).to_json()
    assert "relu" in data["graph"] and json.dumps(data)


def test_empty_report_reads_clearly():
    text = str(Report())
    assert text.splitlines()[0] == "0 graphs (0 ops), 0 breaks at 0 sites, 0 recompiles, 0 fallbacks"


def test_recording_collects_only_inside_the_block():
    record_break(GraphBreak("outside", FILE, 1))
    with recording() as rec:
        record_graph(GraphRecord("f", FILE, 1, 4))
        record_break(GraphBreak("inside", FILE, 2))
    report = rec.report()
    assert [b.reason for b in report.breaks] == ["inside"] and report.graph_count == 1


def test_a_break_inside_library_code_is_shown_under_the_users_frame():
    torch_file = "/venv/lib/site-packages/torch/autograd/__init__.py"
    report = Report(
        graphs=[GraphRecord("grad_step", FILE, 20, 5)],
        breaks=[GraphBreak("operator | on typing objects", torch_file, 511, "    x = a | b",
                           [f"{FILE}:22 in grad_step", f"{torch_file}:511 in grad"], "grad_step")])
    (frame,) = report.frames()
    assert (frame.name, frame.filename) == ("grad_step", FILE)
    assert frame.break_sites[0].ops_around == 5
    text = str(report)
    assert ".../autograd/__init__.py:511: x = a | b" in text
    # the costliest list points at the user's own line: the one they can change
    assert report.costliest_breaks()[0].user_location == (FILE, 22)
    assert ".../project/train.py:22  operator |" in text.split("Costliest breaks")[1].splitlines()[1]


def test_repeated_recompiles_are_counted_and_long_guards_cut_to_three_lines():
    guard = "fallback Predicate(" + " and ".join(f"check_tensor(a{i}, c{i})" for i in range(40)) + ")"
    report = Report(recompiles=[Recompile("f", FILE, 3, guard)] * 4)
    text = str(report)
    assert text.count("recompile x4: fallback Predicate(") == 1
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "recompile x4" in line)
    assert lines[start + 2].endswith("...") and len(lines) == start + 3
    assert "check_tensor(a39, c39)" in report.render(verbose=True)


def test_two_functions_of_one_name_in_one_file_stay_apart():
    report = Report(
        graphs=[GraphRecord("forward", FILE, 10, 4), GraphRecord("forward", FILE, 40, 7)],
        breaks=[GraphBreak("print of a tensor", FILE, 44, "print(h)", [f"{FILE}:44 in forward"], "forward")])
    first, second = report.frames()
    assert (first.lineno, second.lineno) == (10, 40)
    assert not first.break_sites and second.break_sites[0].ops_around == 7
