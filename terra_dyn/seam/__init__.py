"""The version seam: what CPython 3.11, 3.12 and 3.13 bytecode differ in, asked, never spelled.

Translator handlers and codegen ask `rules` (the running interpreter's Bytecode rules)
instead of naming opcode sequences:

    rules.call_const(fn, arg_instrs, nargs)     fn(*args) for a constant fn
    rules.call(fn_instrs, arg_instrs, nargs, kw_names)
    rules.call_method(obj_instrs, name, arg_instrs, nargs)
    rules.load_attr(name) / rules.load_method(name)
    rules.pop_jump(kind, label)                 kind: "true" "false" "none" "not_none"
    rules.jump_forward(label)
    rules.prologue(n_free)                      COPY_FREE_VARS / RESUME
    rules.format_value(conversion, has_spec)    one f-string part
    rules.make_function(closure: bool)          code [closure] -> function
    rules.native_call(call_instr, kw_names)     re-issue a call at a graph break
    rules.is_cond_jump(instr) / rules.is_none_jump(instr) / rules.is_return(instr)
    rules.for_iter_exit() / for_iter_exit_skip what an exhausted FOR_ITER skips at its target
    rules.null_before_callable                  stack order of a call's NULL
    rules.handler_kind(first_names)             "with", "cleanup" or "user"

One class per version, each a subclass of the one before, overriding what changed
(py311.py, py312.py, py313.py). Nothing here imports translate or codegen: both import it.

Example: `rules.call_const(print, [Instr("LOAD_CONST", 1)], 1)` is
    3.11  PUSH_NULL; LOAD_CONST print; LOAD_CONST 1; PRECALL 1; CALL 1
    3.12  PUSH_NULL; LOAD_CONST print; LOAD_CONST 1; CALL 1
    3.13  LOAD_CONST print; PUSH_NULL; LOAD_CONST 1; CALL 1
"""
import sys

from .py311 import Py311
from .py312 import Py312
from .py313 import Py313

SUPPORTED = {(3, 11): Py311, (3, 12): Py312, (3, 13): Py313}


def rules_for(version):
    """The rules of CPython `version` ((major, minor)); KeyError names the unsupported one."""
    try:
        return SUPPORTED[tuple(version[:2])]()
    except KeyError:
        raise KeyError(f"no bytecode rules for Python {version[0]}.{version[1]}") from None


rules = rules_for(sys.version_info) if tuple(sys.version_info[:2]) in SUPPORTED else None
