"""CPython 3.11 bytecode rules (the base the later versions override).

3.11: a call is `PUSH_NULL; <callable>; <args>; [KW_NAMES names]; PRECALL n; CALL n`
(method form `<meth>; <self>; <args>`); conditional jumps carry their direction in the
name (POP_JUMP_FORWARD_IF_TRUE, POP_JUMP_BACKWARD_IF_NONE, ...); LOAD_METHOD exists;
an exhausted FOR_ITER pops the iterator and jumps to its target.
"""
from bytecode import FreeVar, Instr

_JUMP_SUFFIX = {"true": "IF_TRUE", "false": "IF_FALSE", "none": "IF_NONE", "not_none": "IF_NOT_NONE"}


class Py311:
    version = (3, 11)
    # the translator's handlers and codegen cover this version's bytecode; where they do
    # not yet, every frame runs unmodified (a wrong rewritten code could crash CPython)
    translator_ported = True
    # [NULL, callable] (True) or [callable, NULL] (False, 3.13) below a call's arguments
    null_before_callable = True
    # instructions at an exhausted FOR_ITER's target that the interpreter skips
    for_iter_exit_skip = 0
    # instructions a graph break never stops at (their state is mid-sequence)
    not_breakable = frozenset({
        "RETURN_VALUE", "JUMP_IF_TRUE_OR_POP", "JUMP_IF_FALSE_OR_POP", "BEFORE_WITH",
        "MAKE_FUNCTION", "LOAD_CLOSURE", "STORE_DEREF", "LOAD_DEREF", "MAKE_CELL",
        "COPY_FREE_VARS", "RESUME", "KW_NAMES", "PRECALL", "LIST_APPEND", "MAP_ADD",
        "LIST_EXTEND", "DICT_UPDATE", "DICT_MERGE", "SET_ADD", "YIELD_VALUE", "SEND",
        "GET_AWAITABLE", "PUSH_EXC_INFO", "POP_EXCEPT", "RERAISE"})

    # pops of END_FOR (never run by the translator: an exhausted FOR_ITER skips it)
    end_for_pops = 0
    # instructions that read a variable by name (dis opnames; recompile explanations)
    name_loads = frozenset({"LOAD_FAST", "LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF", "LOAD_CLOSURE"})
    # prologue instructions that set up cells (a resume code shares the frame's instead)
    cell_setup = frozenset({"MAKE_CELL", "COPY_FREE_VARS"})
    # what a class statement's body may run for class_defs to skip building the class
    class_body_opcodes = frozenset({
        "RESUME", "COPY_FREE_VARS", "MAKE_CELL", "NOP", "LOAD_NAME", "STORE_NAME", "LOAD_CONST",
        "MAKE_FUNCTION", "LOAD_CLOSURE", "BUILD_TUPLE", "PRECALL", "CALL", "PUSH_NULL",
        "RETURN_VALUE", "STORE_DEREF", "LOAD_DEREF", "POP_TOP", "CACHE", "EXTENDED_ARG",
        "COPY"})  # COPY: `__classcell__` (class_defs)
    # the instruction that pushes a closure's cell (a class body may only read cells with it)
    cell_load = "LOAD_CLOSURE"

    # -- calls ----------------------------------------------------------------------
    def _null_and(self, fn_instrs):
        return [Instr("PUSH_NULL")] + list(fn_instrs)

    def call_tail(self, nargs, kw_names=()):
        """The call itself, its callable and arguments already pushed."""
        out = [Instr("KW_NAMES", tuple(kw_names))] if kw_names else []
        return out + [Instr("PRECALL", nargs), Instr("CALL", nargs)]

    def call(self, fn_instrs, arg_instrs, nargs, kw_names=()):
        """fn(*args) where fn_instrs push the callable; the last len(kw_names) arguments
        are passed by keyword."""
        return self._null_and(fn_instrs) + list(arg_instrs) + self.call_tail(nargs, kw_names)

    def call_const(self, fn, arg_instrs, nargs):
        return self.call([Instr("LOAD_CONST", fn)], arg_instrs, nargs)

    def call_const_star(self, fn, arg_instrs, nargs, tail_instrs):
        """fn(*args, *tail): nargs arguments pushed by arg_instrs, then the items of the tuple
        tail_instrs pushes (a graph's ~200 parameters, one tuple: no item loaded one by one)."""
        return self._null_and([Instr("LOAD_CONST", fn)]) + list(arg_instrs) + [Instr("BUILD_TUPLE", nargs)] + \
            list(tail_instrs) + [Instr("BINARY_OP", 0), Instr("CALL_FUNCTION_EX", 0)]  # 0: NB_ADD, no kwargs

    def call_method(self, obj_instrs, name, arg_instrs, nargs):
        return list(obj_instrs) + self.load_method(name) + list(arg_instrs) + self.call_tail(nargs)

    def is_call(self, instr):
        """A call whose callable and arguments are on the stack (where a call breaks)."""
        return getattr(instr, "name", "") == "CALL"

    def native_call(self, call_instr, kw_names=()):
        """The instructions that re-issue a call whose callable and arguments are on the
        stack (a graph break at a call), and how many stack items it consumes."""
        n = call_instr.arg
        loc = call_instr.location
        out = [Instr("KW_NAMES", tuple(kw_names), location=loc)] if kw_names else []
        return out + [Instr("PRECALL", n, location=loc), call_instr], n + 2

    # -- attributes -----------------------------------------------------------------
    def load_attr(self, name):
        return [Instr("LOAD_ATTR", name)]

    def load_method(self, name):
        return [Instr("LOAD_METHOD", name)]

    def load_closure(self, name):
        """() -> the cell of free variable `name` (to build a closure tuple)"""
        return [Instr("LOAD_CLOSURE", FreeVar(name))]

    def push_null(self):
        return [Instr("PUSH_NULL")]

    def split_fast_pairs(self, instrs):
        """`instrs` with each two-local superinstruction as two plain ones (3.13: see there;
        before 3.13 there are none)."""
        return list(instrs)

    def may_push_null(self, instr):
        """Does `instr` push a NULL or a self, decided only at run time (a method-form
        load)? It is never a break point: its results cannot be saved in locals (a NULL
        loaded back from a local crashes CPython)."""
        arg = getattr(instr, "arg", None)
        name = getattr(instr, "name", "")
        return name in self._null_loads or (name in self._null_bit_loads and isinstance(arg, tuple) and arg[0])

    _null_loads = frozenset({"LOAD_METHOD"})
    _null_bit_loads = frozenset({"LOAD_GLOBAL"})  # (push_null, name)

    def is_for_iter(self, instr):
        return getattr(instr, "name", "") == "FOR_ITER"

    def is_with_enter(self, instr):
        """The instruction that enters a with block (manager -> __exit__, __enter__())."""
        return getattr(instr, "name", "") == "BEFORE_WITH"

    def load_global(self, name):
        return [Instr("LOAD_GLOBAL", (False, name))]

    def return_value(self):
        """stack: value -> (the frame returns it)"""
        return [Instr("RETURN_VALUE")]

    # -- jumps ----------------------------------------------------------------------
    def pop_jump(self, kind, label, forward=True):
        direction = "FORWARD" if forward else "BACKWARD"
        return [Instr(f"POP_JUMP_{direction}_{_JUMP_SUFFIX[kind]}", label)]

    def jump_forward(self, label):
        return [Instr("JUMP_FORWARD", label)]

    def forward_variant(self, instr, label):
        """`instr` (a jump) retargeted to `label`, which lies after it."""
        return Instr(instr.name.replace("BACKWARD", "FORWARD"), label, location=instr.location)

    def is_cond_jump(self, instr):
        name = getattr(instr, "name", "")
        return name.startswith("POP_JUMP_") and "IF_" in name

    def is_none_jump(self, instr):
        return self.is_cond_jump(instr) and instr.name.endswith("NONE")

    def is_return(self, instr):
        return getattr(instr, "name", "") in ("RETURN_VALUE", "RETURN_CONST")

    def for_iter_exit(self):
        """The instructions an exhausted FOR_ITER's target must start with (it skips them;
        they are there for the exception-free exit the compiler lays out)."""
        names = {0: [], 1: ["END_FOR"], 2: ["END_FOR", "POP_TOP"]}[self.for_iter_exit_skip]
        return [Instr(n) for n in names]

    # -- function frames ------------------------------------------------------------
    def prologue(self, n_free):
        return ([Instr("COPY_FREE_VARS", n_free)] if n_free else []) + [Instr("RESUME", 0)]

    def make_function(self, closure=False):
        """stack: [closure tuple], code -> function"""
        return [Instr("MAKE_FUNCTION", 0x08 if closure else 0)]

    # -- f-strings ------------------------------------------------------------------
    def format_value(self, conversion, has_spec):
        """stack: value[, spec] -> str.  conversion: 0, 1 (!s), 2 (!r), 3 (!a)."""
        return [Instr("FORMAT_VALUE", conversion | (0x04 if has_spec else 0))]

    # -- exception table ------------------------------------------------------------
    def handler_kind(self, first_names):
        """What a handler is, from its first two instruction names: a with block's
        ("with"), compiler cleanup that no user wrote ("cleanup"), or a user's try."""
        if list(first_names[:2]) == ["PUSH_EXC_INFO", "WITH_EXCEPT_START"]:
            return "with"
        if first_names[:1] == ["COPY"]:
            return "cleanup"
        return "user"

    def explicit_super(self, instrs, loads):
        """`instrs` with each zero-argument `super()` made `super(__class__, first)`, where
        `loads` push those two: zero-argument super reads the frame's first local slot,
        which in a cut code (codegen/resume.py) holds something else.
        3.11: `LOAD_GLOBAL super; PRECALL 0; CALL 0` gets the loads and a 2-argument call."""
        out, i = [], 0
        while i < len(instrs):
            ins = instrs[i]
            out.append(ins)
            i += 1
            if self._is_zero_arg_super(instrs[i - 1:i + 2]):
                for load in loads:
                    out.append(load.copy())
                    out[-1].location = ins.location
                call = self.call_tail(2)
                for new in call:
                    new.location = instrs[i + 1].location  # the original CALL's line
                out += call
                i += 2
        return out

    def _is_zero_arg_super(self, instrs):
        names = [(getattr(i, "name", None), getattr(i, "arg", None)) for i in instrs]
        return names == [("LOAD_GLOBAL", (True, "super")), ("PRECALL", 0), ("CALL", 0)]
