"""Report rendering and JSON on hand-made records (no translation involved).

The records are built the way convert_frame builds them; the tests check what a user
reads: grouping per frame, breaks grouped by reason with counts, the costliest breaks,
recompiles with their guard, times, 80 columns, and a JSON round trip.
"""
import json

import pytest

from terra_dyn.report_views import frame_name, problems
from terra_dyn.report import (Fallback, GraphBreak, GraphRecord, Recompile, Report,
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


def test_breaks_are_grouped_by_user_line_with_counts_and_cost():
    frames = {f.name: f for f in make_report().frames()}
    assert {(s.lineno, s.count) for s in frames["train_step"].break_sites} == {(14, 2), (16, 1)}
    # the break inside the inlined log() is on the user's own line 31: it belongs to log
    assert {(s.lineno, s.count) for s in frames["log"].break_sites} == {(31, 1)}
    assert frames["log"].break_sites[0].user_stack[0].endswith("12 in train_step")
    site14 = next(s for s in frames["train_step"].break_sites if s.lineno == 14)
    assert site14.ops_around == 15 and site14.cost == 30


def test_costliest_breaks_rank_count_times_ops_without_samples():
    ranked = make_report().costliest_breaks()
    assert [(s.lineno, s.cost) for s in ranked] == [(14, 30), (16, 15), (31, 2)]


def test_costliest_breaks_rank_by_measured_time_when_sampled():
    report = make_report()
    report.add_samples({(FILE, 31): {"python": 0.5}, (FILE, 14): {"python": 0.01, "graph": 0.2}})
    ranked = report.costliest_breaks()
    assert [(s.lineno, s.seconds) for s in ranked][:2] == [(31, 0.5), (14, 0.01)]
    text = str(report)
    assert "What to fix first (time measured by sampling the run):" in text
    first = text.split("What to fix first")[1].splitlines()[1]
    assert "train.py:31 in log: 500 ms outside graphs" in first


def test_text_report_shows_every_part():
    text = str(make_report())
    assert "train.py --steps 3" in text
    assert "3 graphs (17 ops), 4 breaks at 3 sites, 1 recompile, 1 fallback" in text
    assert "graphs: 2 (12 + 3 ops)" in text
    assert "break x2: Tensor.item() needs a tensor value" in text  # grouped per line and reason
    assert "line 14: v = loss.item()" in text and "line 16: w = x.item()" in text
    assert "recompiles x1:" in text and "x: expected size (8, 16), got (4, 16)" in text
    assert "ran as plain Python: generator frames run as plain Python" in text
    assert "translating 500 ms, compiling 500 ms" in text
    assert "via train_step -> log" in text  # the inlined callee's break shows how it was reached
    first = text.split("What to fix first")[1].splitlines()[1:4]
    assert "train.py:14 in train_step: cost 30" in first[0] and "2 breaks at v = loss.item()" in first[1]
    assert "fix: .item()/float() in the loop" in text  # a known fix is named


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


def test_a_break_inside_library_code_is_shown_under_the_users_line():
    torch_file = "/venv/lib/site-packages/torch/autograd/__init__.py"
    report = Report(
        graphs=[GraphRecord("grad_step", FILE, 20, 5)],
        breaks=[GraphBreak("operator | on typing objects", torch_file, 511, "    x = a | b",
                           [f"{FILE}:22 in grad_step", f"{torch_file}:511 in grad"], "grad_step")])
    (frame,) = report.frames()
    assert (frame.name, frame.filename) == ("grad_step", FILE)
    (site,) = frame.break_sites
    assert site.user_location == (FILE, 22) and site.library == "torch" and site.ops_around == 5
    text = str(report)
    assert "autograd/__init__.py" not in text  # the library's file is not the place to fix
    assert "line 22: " in text and "1 break inside torch (library code, run as Python):" in text
    assert "x1: operator | on typing objects" in text
    assert "autograd/__init__.py:511" in report.render(verbose=True)


def test_a_break_inside_a_translated_library_names_its_file_and_line():
    # a model library (not torch) is translated like the user's code: its file and line are
    # where the break is, shown under the user's line that led there
    lib_file = "/venv/lib/site-packages/mylib/blocks.py"
    report = Report(
        graphs=[GraphRecord("step", FILE, 20, 5)],
        breaks=[GraphBreak("Tensor.item() needs the tensor's value", lib_file, 7, "    if y.item() > 0:",
                           [f"{FILE}:22 in step", f"{lib_file}:7 in forward"], "forward")])
    text = str(report)
    assert "1 break inside mylib (library code):" in text and "run as Python" not in text
    assert "mylib/blocks.py:7: Tensor.item() needs the tensor's value" in text
    (problem,) = [p for p in problems(report) if p.kind == "breaks"]
    assert "1 inside mylib: library code" in problem.details


def test_terra_dyn_files_never_appear_in_the_report():
    import terra_dyn.backends as ours

    report = Report(
        graphs=[GraphRecord("step", FILE, 20, 5)],
        breaks=[GraphBreak("subscript of ConstValue(<dict>)", ours.__file__, 59, "    return _BY_NAME[x]",
                           [f"{FILE}:23 in step", f"{ours.__file__}:59 in lookup"], "step")])
    for text in (report.render(), report.render(verbose=True)):
        assert "backends/__init__" not in text and "line 23: " in text
        assert "inside terra_dyn" in text


def test_repeated_recompiles_are_counted_and_long_reasons_are_wrapped_never_cut():
    guard = "fallback Predicate(" + " and ".join(f"check_tensor(a{i}, c{i})" for i in range(40)) + ")"
    report = Report(recompiles=[Recompile("f", FILE, 3, guard)] * 4)
    text = str(report)
    assert "recompiles x4:" in text and "(x4)" in text
    assert "check_tensor(a39, c39)" in text
    assert not any(line.rstrip().endswith("...") for line in text.splitlines())
    assert all(len(line) <= 80 for line in text.splitlines())


def test_recompile_names_the_variable_old_and_new_values_and_line():
    rec = Recompile("step", FILE, 3, "check 7 ('eq', 2, 0) failed", ["lr changed: 0.1 -> 0.05 (line 5)"], "lr", 5)
    text = str(Report(recompiles=[rec]))
    assert "lr changed: 0.1 -> 0.05 (line 5)" in text and "check 7" not in text


def test_two_functions_of_one_name_in_one_file_stay_apart():
    report = Report(
        graphs=[GraphRecord("forward", FILE, 10, 4), GraphRecord("forward", FILE, 40, 7)],
        breaks=[GraphBreak("print of a tensor", FILE, 44, "print(h)", [f"{FILE}:44 in forward"], "forward")])
    first, second = report.frames()
    assert (first.lineno, second.lineno) == (10, 40)
    assert not first.break_sites and second.break_sites[0].ops_around == 7


def test_backward_is_not_a_problem_to_fix_but_stays_in_its_function():
    report = Report(graphs=[GraphRecord("step", FILE, 10, 5)],
                    breaks=[GraphBreak("Tensor.backward() needs the tensor's value", FILE, 12, "loss.backward()",
                                       [f"{FILE}:12 in step"], "step")])
    report.add_samples({(FILE, 12): {"python": 2.0}})
    assert "What to fix first" not in str(report)
    assert "line 12: loss.backward()" in str(report) and "2.00 s outside graphs" in str(report)
