"""The version seam's emitters, assembled and run on the running interpreter.

Each test builds a small code object from the rules' instructions and compares what it
returns with the same Python written plainly. Run on 3.12/3.13 with that version's venv:
`.venv312/bin/python -m pytest -q tests/seam`.
"""
import types

import pytest
from bytecode import Bytecode, Instr, Label

from terra_dyn.seam import SUPPORTED, rules, rules_for


def _run(instrs, *args):
    names = [f"a{i}" for i in range(len(args))]
    bc = Bytecode(rules.prologue(0) + instrs)
    bc.argnames = names
    bc.argcount = len(names)
    bc.name = "probe"
    return types.FunctionType(bc.to_code(), {})(*args)


def _load(*names):
    return [Instr("LOAD_FAST", n) for n in names]


def test_call_const_passes_positional_arguments():
    out = _run(rules.call_const(divmod, _load("a0", "a1"), 2) + [Instr("RETURN_VALUE")], 17, 5)
    assert out == divmod(17, 5)


def test_call_passes_keyword_names_last():
    def f(a, b=0, *, c=0):
        return (a, b, c)

    instrs = rules.call([Instr("LOAD_CONST", f)], _load("a0", "a1", "a2"), 3, kw_names=("b", "c"))
    assert _run(instrs + [Instr("RETURN_VALUE")], 1, 2, 3) == f(1, b=2, c=3)


def test_call_method_binds_self():
    instrs = rules.call_method(_load("a0"), "index", _load("a1"), 1) + [Instr("RETURN_VALUE")]
    assert _run(instrs, [4, 5, 6], 6) == [4, 5, 6].index(6)


def test_load_attr_reads_the_attribute():
    assert _run(_load("a0") + rules.load_attr("real") + [Instr("RETURN_VALUE")], 3 + 4j) == 3.0


@pytest.mark.parametrize("kind,value,taken", [
    ("true", [1], True), ("true", [], False), ("false", 0, True), ("false", "x", False),
    ("none", None, True), ("none", 0, False), ("not_none", 0, True), ("not_none", None, False)])
def test_pop_jump_takes_the_branch_python_would(kind, value, taken):
    label = Label()
    instrs = _load("a0") + rules.pop_jump(kind, label) + [Instr("LOAD_CONST", False), Instr("RETURN_VALUE"),
                                                         label, Instr("LOAD_CONST", True), Instr("RETURN_VALUE")]
    assert _run(instrs, value) is taken


def test_jump_forward_skips_code():
    label = Label()
    instrs = rules.jump_forward(label) + [Instr("LOAD_CONST", 1), Instr("RETURN_VALUE"), label,
                                          Instr("LOAD_CONST", 2), Instr("RETURN_VALUE")]
    assert _run(instrs) == 2


@pytest.mark.parametrize("conversion,spec", [(0, None), (1, None), (2, None), (3, None),
                                             (0, ">6"), (2, ">8"), (1, "^7")])
def test_format_value_matches_f_strings(conversion, spec):
    value = "né"
    instrs = _load("a0") + ([Instr("LOAD_CONST", spec)] if spec else [])
    instrs += rules.format_value(conversion, spec is not None) + [Instr("RETURN_VALUE")]
    converted = {0: value, 1: str(value), 2: repr(value), 3: ascii(value)}[conversion]
    assert _run(instrs, value) == format(converted, spec or "")


def test_make_function_with_a_closure_reads_the_cell():
    def outer():
        k = 41

        def inner():
            return k + 1
        return inner

    inner_code = outer().__code__
    cell = types.CellType(41)
    instrs = [Instr("LOAD_CONST", (cell,)), Instr("LOAD_CONST", inner_code)] + rules.make_function(closure=True)
    made = _run(instrs + [Instr("RETURN_VALUE")])
    assert made() == 42


def test_every_supported_version_has_complete_rules():
    for version in SUPPORTED:
        r = rules_for(version)
        assert r.version == version
        assert r.handler_kind(["PUSH_EXC_INFO", "WITH_EXCEPT_START"]) == "with"
        assert r.handler_kind(["PUSH_EXC_INFO", "LOAD_GLOBAL"]) == "user"
    with pytest.raises(KeyError, match="3.14"):
        rules_for((3, 14))


def test_an_exhausted_for_iter_skips_what_the_interpreter_skips():
    """A loop whose exit target is laid out as the rules say runs like `sum(xs)`."""
    loop, done = Label(), Label()
    exit_block = rules.for_iter_exit()
    assert len(exit_block) == rules.for_iter_exit_skip
    instrs = [Instr("LOAD_CONST", 0), Instr("STORE_FAST", "t")] + _load("a0") + [Instr("GET_ITER"), loop,
              Instr("FOR_ITER", done), Instr("LOAD_FAST", "t"), Instr("BINARY_OP", 0), Instr("STORE_FAST", "t")]
    instrs += [Instr("JUMP_BACKWARD", loop), done] + exit_block + [Instr("LOAD_FAST", "t"), Instr("RETURN_VALUE")]
    assert _run(instrs, [1, 2, 3, 4]) == 10
