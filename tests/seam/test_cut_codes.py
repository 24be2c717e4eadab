"""Cut codes (codegen/resume.py) run natively on every version.

A resume function normally runs translated, but natively once its code reaches the
recompile limit (and a step code always does). Its locals are renumbered (saved stack items
first, then the live locals in the caller's order), so 3.13's two-local superinstructions,
whose oparg holds two indexes below 16, must not survive the cut (seam split_fast_pairs).
End to end: tests/benchmarks/test_programs.py's yolov3 on 3.13 (build_targets' resume
function past its recompile limit returned its locals mixed up).
"""
import types

from terra_dyn.codegen import resume
from terra_dyn.bytecode_info import code_info


def _twenty_locals(a):
    v0 = v1 = v2 = v3 = v4 = v5 = v6 = v7 = v8 = v9 = a  # no closure: the cut gets plain values
    w0 = w1 = w2 = w3 = w4 = w5 = w6 = w7 = w8 = w9 = a
    v1, v2 = v2, v1  # 3.13: STORE_FAST_STORE_FAST
    return v1, v2, v0, w9, v3, w0


def test_a_resume_code_run_natively_keeps_locals_past_sixteen():
    code = _twenty_locals.__code__
    instrs = code_info(code).instrs
    # cut at the first instruction of the `v1, v2 = v2, v1` line
    line = code.co_firstlineno + 3
    pc = next(i for i, ins in enumerate(instrs) if getattr(ins, "lineno", None) == line)
    names = sorted(n for n in code.co_varnames if n[0] in "vw")[::-1] + ["a"]  # v1, v2 past 16
    cut = resume.make_resume_code(code, pc, [], names)
    values = {n: f"<{n}>" for n in names}
    got = types.FunctionType(cut, {})(*[values[n] for n in names])
    assert got == ("<v2>", "<v1>", "<v0>", "<w9>", "<v3>", "<w0>")

