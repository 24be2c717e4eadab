"""Resume functions: code objects that continue a frame after a graph break.

    make_resume_code(code, pc, stack_layout, local_names)
        a copy of `code`'s bytecode with a prologue:
            MAKE_CELL / COPY_FREE_VARS as the original; RESUME
            push the saved stack (arguments ___stack0.., PUSH_NULL where a NULL was)
            JUMP_FORWARD <instruction pc of the original>
        arguments: the non-NULL stack items, then the live locals (by their own names)

Resume code objects are cached by (original code, pc, layout, locals), so a break inside a
loop reuses the same few code objects every iteration and their translations stay cached.
They are always cut from the *original* code, never from another resume code.

No recursion across iterations: a resume function's rewritten code does not call the next
resume function; it returns `Continue(fn, args)`, and the trampoline in `run_resume` (run
by the original frame's rewritten code) calls the next one, each through the hook:

    f(x) rewritten:  graph; native instr; return run_resume(R1, args)
    run_resume:      r = R1(*args); while r is Continue: r = r.fn(*r.args)
    R1 rewritten:    graph; native instr; return Continue(R2, args)

Without a closure the function objects R1, R2 are made once, at code generation, and the
rewritten code calls `run_function(R1, args)` / builds `Continue(R2, args)` directly.

Example: a 10,000-iteration loop with `print(x.sum().item())` keeps a constant Python
stack depth: the trampoline's loop does the iterating.
"""
import types

from bytecode import Bytecode, Instr, Label

_resume_codes = {}  # key -> code
_resume_info = {}  # id(resume code) -> (original, prologue length, resume code, label index)


class Continue:
    """"Call fn(*args) next": what a resume function's rewritten code returns."""

    __slots__ = ("fn", "args")

    def __init__(self, fn, args):
        self.fn = fn
        self.args = args

    def __repr__(self):
        return f"Continue({self.fn.__code__.co_name}, {len(self.args)} args)"


def _function(code, f_globals, closure):
    return types.FunctionType(code, f_globals, code.co_name, None, closure)


def run_resume(code, f_globals, closure, args):
    """The trampoline: run resume functions until one returns a real value."""
    result = _function(code, f_globals, closure)(*args)
    while type(result) is Continue:
        result = result.fn(*result.args)
    return result


def continue_at(code, f_globals, closure, args):
    return Continue(_function(code, f_globals, closure), args)


def run_function(fn, args):
    """run_resume for a resume function made once at code generation (no closure): the
    per-call cost is the call itself, not building a function object."""
    result = fn(*args)
    while type(result) is Continue:
        result = result.fn(*result.args)
    return result


def resume_function(code, f_globals):
    """The function object for a closure-free resume code, made once (shared by calls)."""
    return _function(code, f_globals, None)


def original_pc(code, pc):
    """(original code, pc there) for an instruction of a resume code (identity otherwise)."""
    entry = _resume_info.get(id(code))
    if entry is None or entry[2] is not code:
        return code, pc
    original, prologue_len, resume, label_at = entry
    q = pc - prologue_len
    return original, (q if q <= label_at else q - 1)


def is_resume_code(code):
    entry = _resume_info.get(id(code))
    return entry is not None and entry[2] is code


def make_resume_code(code, pc, stack_layout, local_names):
    """`stack_layout`: one bool per stack item, True where the item is a NULL."""
    code, pc = original_pc(code, pc)
    key = (id(code), pc, tuple(stack_layout), tuple(local_names))
    cached = _resume_codes.get(key)
    if cached is not None and _resume_info[id(cached)][0] is code:
        return cached
    from ..translate.bytecode_info import code_info  # translate imports codegen: import late

    info = code_info(code)
    body = list(info.instrs)
    target = Label()
    body.insert(pc, target)
    prologue = []
    for ins in body:  # the frame setup (MAKE_CELL, COPY_FREE_VARS) must run first
        if isinstance(ins, Instr) and ins.name in ("MAKE_CELL", "COPY_FREE_VARS"):
            prologue.append(ins.copy())
        elif isinstance(ins, Instr):
            break
    prologue.append(Instr("RESUME", 0))
    stack_args = []
    for i, is_null in enumerate(stack_layout):
        if is_null:
            prologue.append(Instr("PUSH_NULL"))
        else:
            name = f"___stack{i}"
            stack_args.append(name)
            prologue.append(Instr("LOAD_FAST", name))
    prologue.append(Instr("JUMP_FORWARD", target))
    bc = Bytecode(prologue + body)
    layout_copy = Bytecode(prologue + body)
    _copy_metadata(bc, info.bytecode)
    bc.argnames = stack_args + list(local_names)
    bc.argcount = len(bc.argnames)
    bc.posonlyargcount = 0
    bc.kwonlyargcount = 0
    bc.flags = info.bytecode.flags & ~0x0C  # no *args / **kwargs
    bc.name = code.co_name
    # No stack analysis: it cannot see that the prologue enters try/with regions in the
    # middle. The restored stack is the original's at that point, so the original's
    # maximum depth and its exception table depths (kept when parsing) stay right.
    resume = bc.to_code(stacksize=code.co_stacksize + 2, check_pre_and_post=False,
                        compute_exception_stack_depths=False)
    from ..translate.bytecode_info import register

    _copy_metadata(layout_copy, info.bytecode)
    register(resume, layout_copy)
    _resume_codes[key] = resume
    _resume_info[id(resume)] = (code, len(prologue), resume, pc)
    return resume


def _copy_metadata(bc, original):
    bc.name = original.name
    bc.qualname = getattr(original, "qualname", original.name)
    bc.filename = original.filename
    bc.first_lineno = original.first_lineno
    bc.freevars = list(original.freevars)
    bc.cellvars = list(original.cellvars)
    bc.docstring = None
