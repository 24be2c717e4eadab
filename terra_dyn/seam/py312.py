"""CPython 3.12 bytecode rules: what changed from 3.11.

- no PRECALL; KW_NAMES stays; LOAD_METHOD is LOAD_ATTR with the method bit ((True, name))
  and a plain attribute load is (False, name)
- jumps have no direction in their name (POP_JUMP_IF_TRUE ...); the assembler picks it
- an exhausted FOR_ITER jumps to its target and skips the END_FOR there
- comprehensions are inlined (PEP 709): their cleanup handler starts SWAP, POP_TOP
- zero-argument super() compiles to LOAD_SUPER_ATTR after loads of `__class__` and the
  first argument; unspecialized it still calls super() with no arguments, which reads the
  frame's first slot: a cut code sets its two-argument bit (explicit_super)
"""
from bytecode import Instr

from .py311 import Py311, _JUMP_SUFFIX


class Py312(Py311):
    version = (3, 12)
    translator_ported = True  # tests/breaks, translate, soundness, report, auto pass on 3.12.1
    for_iter_exit_skip = 1  # END_FOR
    end_for_pops = 2
    # LOAD_SUPER_ATTR: a break there crashed CPython 3.12.1 in the earlier port (a tensor
    # subclass's __torch_function__ calling super().__torch_function__), most likely the
    # NULL its method form pushes (see may_push_null); an unsupported super() attribute
    # makes its frame run unmodified instead
    not_breakable = (Py311.not_breakable - {"PRECALL"}) | {
        "LOAD_FAST_AND_CLEAR", "END_FOR", "CALL_INTRINSIC_1", "CALL_INTRINSIC_2", "RETURN_CONST",
        "LOAD_SUPER_ATTR"}
    _null_loads = frozenset()
    # (method, name), (method, two_args, name): LOAD_ATTR's and LOAD_SUPER_ATTR's method form
    _null_bit_loads = frozenset({"LOAD_GLOBAL", "LOAD_ATTR", "LOAD_SUPER_ATTR"})
    class_body_opcodes = (Py311.class_body_opcodes - {"PRECALL"}) | {"RETURN_CONST"}
    name_loads = Py311.name_loads | {"LOAD_FAST_CHECK", "LOAD_FAST_AND_CLEAR"}

    def call_tail(self, nargs, kw_names=()):
        out = [Instr("KW_NAMES", tuple(kw_names))] if kw_names else []
        return out + [Instr("CALL", nargs)]

    def native_call(self, call_instr, kw_names=()):
        n = call_instr.arg
        out = [Instr("KW_NAMES", tuple(kw_names), location=call_instr.location)] if kw_names else []
        return out + [call_instr], n + 2

    def load_attr(self, name):
        return [Instr("LOAD_ATTR", (False, name))]

    def load_method(self, name):
        return [Instr("LOAD_ATTR", (True, name))]

    def pop_jump(self, kind, label, forward=True):
        return [Instr(f"POP_JUMP_{_JUMP_SUFFIX[kind]}", label)]

    def forward_variant(self, instr, label):
        return Instr(instr.name, label, location=instr.location)

    def handler_kind(self, first_names):
        if list(first_names[:2]) == ["SWAP", "POP_TOP"]:
            return "cleanup"  # an inlined comprehension restoring its loop variable
        return super().handler_kind(first_names)

    def explicit_super(self, instrs, loads):
        """3.12: LOAD_SUPER_ATTR's zero-argument form calls super() with no arguments
        when it is not specialized (a cut code's first run); its two-argument form calls
        super(class, self) with the `__class__` and first argument the compiler already
        loaded by name, so setting that bit is the whole change (indexes stay put)."""
        out = []
        for ins in instrs:
            if getattr(ins, "name", "") == "LOAD_SUPER_ATTR" and not ins.arg[1]:
                method, _, name = ins.arg
                ins = Instr("LOAD_SUPER_ATTR", (method, True, name), location=ins.location)
            out.append(ins)
        return out
