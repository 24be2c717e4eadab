"""CPython 3.13 bytecode rules: what changed from 3.12.

- a call's NULL sits *above* the callable: `<callable>; PUSH_NULL; <args>; CALL n`
  (method form `<meth>; <self>` unchanged); keyword names are a constant tuple pushed last,
  consumed by CALL_KW n (no KW_NAMES)
- POP_JUMP_IF_TRUE/FALSE need an exact bool: TO_BOOL first
- an exhausted FOR_ITER skips END_FOR and the POP_TOP after it
- MAKE_FUNCTION takes no flags; SET_FUNCTION_ATTRIBUTE attaches a closure (or defaults)
- f-string parts: CONVERT_VALUE, then FORMAT_SIMPLE or FORMAT_WITH_SPEC
- LOAD_CLOSURE is gone: a closure's cells are pushed with LOAD_FAST of the cell
- new superinstructions (LOAD_FAST_LOAD_FAST, STORE_FAST_LOAD_FAST, STORE_FAST_STORE_FAST)
  have handlers of their own in the translator, and are split in two in every code
  terra_dyn assembles (split_fast_pairs); frame locals are a PEP 667 proxy (C side)
"""
from bytecode import FreeVar, Instr

from .py312 import Py312


class Py313(Py312):
    version = (3, 13)
    translator_ported = True  # tests/breaks, translate, soundness, report, auto pass on 3.13.0
    null_before_callable = False
    for_iter_exit_skip = 2  # END_FOR, POP_TOP
    end_for_pops = 1
    cell_load = "LOAD_FAST"  # LOAD_CLOSURE is a pseudo-instruction now (load_closure)
    class_body_opcodes = Py312.class_body_opcodes | {"SET_FUNCTION_ATTRIBUTE", "CALL_KW", cell_load}
    name_loads = Py312.name_loads | {"LOAD_FAST_LOAD_FAST"}  # its argval: a pair of names
    # TO_BOOL stays breakable: a branch on a tensor's truth breaks there and the native
    # TO_BOOL hands POP_JUMP_IF_* the exact bool it needs. The `bytecode` package's stack
    # effects of STORE_FAST_LOAD_FAST and FORMAT_WITH_SPEC are not what they pop and push,
    # so a break cannot rebuild their operands
    not_breakable = (Py312.not_breakable - {"KW_NAMES"}) | {
        "SET_FUNCTION_ATTRIBUTE", "STORE_FAST_LOAD_FAST", "FORMAT_WITH_SPEC"}

    def load_closure(self, name):
        # LOAD_CLOSURE is a pseudo-instruction: the compiler emits LOAD_FAST of the cell
        return [Instr("LOAD_FAST", FreeVar(name))]

    def split_fast_pairs(self, instrs):
        """LOAD_FAST_LOAD_FAST, STORE_FAST_STORE_FAST and STORE_FAST_LOAD_FAST as two plain
        instructions each. Their oparg holds two 4-bit local indexes, which the compiler uses
        only below 16; a cut code (codegen/resume.py) renumbers the locals (saved stack items
        first), and the `bytecode` package (0.19) packs an index of 16 or more into the
        other's bits without a word: a resume function of yolov3's build_targets, run
        natively after its recompile limit, returned its locals mixed up."""
        out = []
        for ins in instrs:
            name = getattr(ins, "name", "")
            if name in self._fast_pairs:
                first_op, second_op = self._fast_pairs[name]
                first, second = ins.arg  # stored from the top of the stack first / loaded first
                out += [Instr(first_op, first, location=ins.location),
                        Instr(second_op, second, location=ins.location)]
            else:
                out.append(ins)
        return out

    _fast_pairs = {"LOAD_FAST_LOAD_FAST": ("LOAD_FAST", "LOAD_FAST"),
                   "STORE_FAST_STORE_FAST": ("STORE_FAST", "STORE_FAST"),
                   "STORE_FAST_LOAD_FAST": ("STORE_FAST", "LOAD_FAST")}

    def _null_and(self, fn_instrs):
        return list(fn_instrs) + [Instr("PUSH_NULL")]

    def call_tail(self, nargs, kw_names=()):
        if kw_names:
            return [Instr("LOAD_CONST", tuple(kw_names)), Instr("CALL_KW", nargs)]
        return [Instr("CALL", nargs)]

    def is_call(self, instr):
        return getattr(instr, "name", "") in ("CALL", "CALL_KW")

    def native_call(self, call_instr, kw_names=()):
        # CALL_KW's names tuple is a stack item of its own (pushed before the break)
        n = call_instr.arg
        return [call_instr], n + 2 + (call_instr.name == "CALL_KW")

    def pop_jump(self, kind, label, forward=True):
        jump = super().pop_jump(kind, label, forward)
        return [Instr("TO_BOOL")] + jump if kind in ("true", "false") else jump

    def make_function(self, closure=False):
        # stack: closure, code -> function: MAKE_FUNCTION takes the code on top
        out = [Instr("MAKE_FUNCTION")]
        return out + [Instr("SET_FUNCTION_ATTRIBUTE", 0x08)] if closure else out

    def format_value(self, conversion, has_spec):
        # stack: value[, spec]; CONVERT_VALUE works on the value, under the spec
        if conversion and has_spec:
            return [Instr("SWAP", 2), Instr("CONVERT_VALUE", conversion), Instr("SWAP", 2),
                    Instr("FORMAT_WITH_SPEC")]
        out = [Instr("CONVERT_VALUE", conversion)] if conversion else []
        return out + [Instr("FORMAT_WITH_SPEC" if has_spec else "FORMAT_SIMPLE")]
