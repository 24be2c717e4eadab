"""Resume functions: code objects that continue a frame after a graph break.

    make_resume_code(code, pc, stack_layout, local_names)
        a copy of `code`'s bytecode with a prologue:
            COPY_FREE_VARS (the original's free variables, then its cell variables); RESUME
            push the saved stack (arguments ___stack0.., PUSH_NULL where a NULL was)
            JUMP_FORWARD <instruction pc of the original>
        arguments: the non-NULL stack items, then the live locals (by their own names), then
        `___closure` when the original has cell variables (see "Cells" below)

    make_step_code(code, f_globals, step, stack_layout, local_names)
        for a break inside a try body or a Python with block: the same cut, entered *at* the
        breaking instruction, which runs natively under the original exception table; after
        it, each way out returns `Continue(<resume function after it>, args)`. An exception
        goes to the original handler, which runs natively; where it comes back to ordinary
        code (a label), the frame goes on in a resume function made then, for the locals
        bound there.

Resume codes are cached by (original code, pc, layout, locals), so a break inside a loop
reuses the same few code objects every iteration and their translations stay cached.
They are always cut from the *original* code, never from another resume code.

No recursion across iterations: a resume function's rewritten code does not call the next
resume function; it returns `Continue(fn, args)`, and the trampoline in `run_resume` (run
by the original frame's rewritten code) calls the next one, each through the hook:

    f(x) rewritten:  graph; native instr; return run_resume(R1, args)
    run_resume:      r = R1(*args); while r is Continue: r = r.fn(*r.args)
    R1 rewritten:    graph; native instr; return Continue(R2, args)

Without a closure the function objects R1, R2 are made once, at code generation, and the
rewritten code calls `run_function(R1, args)` / builds `Continue(R2, args)` directly.

A break inside `try:` (step S, resume function R2 after it, handler H):

    f(x) rewritten:  graph 1; return run_function(S, args)
    S (native):      print(y.item())      -> Continue(R2, args)     (no exception)
                                           | H, then at the first label after it (after the
                                             try statement, a loop head) -> Continue(R3, args)
                                           | H ... return / raise
    R2 rewritten:    graph 2 (the rest of the try body and what follows); return
    R3 rewritten:    graph 3 (what follows the try statement); return

In CPython 3.11 there is no block stack: the exception table maps instruction ranges to a
handler and the stack depth it unwinds to. A cut keeps the original table; its prologue
rebuilds the stack to the depth the original had at that instruction (a with block's
`__exit__` is a live stack item, passed in), so the handler finds what it expects.

Cells: a resume code shares the frame's cells instead of copying their values. The
original's cell variables become free variables of the cut (MAKE_CELL is dropped, CellVar
operands become FreeVar), and the cell objects travel in the closure, so a write after the
break is seen by inner functions made before it, as in eager Python. Resume codes of such
a frame also receive the closure tuple as their last argument, `___closure`: the translator
reads it to recognise those cells inside the closures of functions it inlines.

Moved, not copied: the values a frame hands on at a break are built into a tuple by
`moved_args`, which also empties the frame's own local slots, and `call_moved` passes the
tuple's items to the next function, taking them out of it; a resume code's prologue lets go of
its `___stack` arguments once they are on the stack. So the next frame is their only
holder, as the original frame was, and `del x; gc.collect()` there frees x (csrc/moves.c).

Example: a 10,000-iteration loop with `print(x.sum().item())` keeps a constant Python
stack depth: the trampoline's loop does the iterating.
"""
import itertools
import types
from dataclasses import dataclass

from bytecode import Bytecode, CellVar, FreeVar, Instr, Label, TryBegin, TryEnd
from .. import tracebacks
from ..bytecode_info import code_info, register
from ..seam import rules

_resume_codes = {}  # key -> code
_resume_info = {}  # id(resume code) -> (original, prologue length, resume code, label index)
_step_origin = {}  # id(step code) -> (original, None, step code): tracebacks only
_takes_closure = set()  # ids of resume codes whose last argument is ___closure
_fresh_args = {}  # id(resume code) -> indexes of its arguments the breaking instruction made
_fresh_ints = {}  # id(resume code) -> those of them that are inputs even as ints
CLOSURE_ARG = "___closure"


class _Continue:
    """"Call fn(*args) next": what a resume function's rewritten code returns (the C core's
    terra_dyn._C.Continue, this class without it)."""

    __slots__ = ("fn", "args")

    def __init__(self, fn, args):
        self.fn = fn
        self.args = args

    def __repr__(self):
        return f"Continue({self.fn.__name__}, {len(self.args)} args)"


def _call_moved(fn, args):
    return fn(*args)


def _moved_args(*values):
    return values


def _moved_continue(fn, *values):
    return Continue(fn, values)


try:  # the C core moves the values (csrc/moves.c); without it, copies
    from .._C import Continue, call_moved, caller_locals, moved_args, moved_continue
except ImportError:
    Continue, call_moved, caller_locals, moved_args, moved_continue = \
        _Continue, _call_moved, locals, _moved_args, _moved_continue


def moved_tuple(arg_instrs, n):
    """Instructions pushing a tuple of the n values `arg_instrs` push, the frame's own plain
    local slots emptied: the values go on to a resume function, whose frame must be their
    only holder (an object deleted there dies there, as in the original frame; csrc/moves.c).
    The tuple is handed on by call_moved, which moves its items out."""
    return rules.call_const(moved_args, arg_instrs, n)


def moved_continue_call(fn, arg_instrs, n):
    """Instructions pushing Continue(fn, <the n values>), as moved_tuple empties the frame."""
    return rules.call_const(moved_continue, [Instr("LOAD_CONST", fn)] + list(arg_instrs), n + 1)


@dataclass
class Step:
    """The breaking instruction a step code runs natively, in the cut code's indexes.

    kind: "plain" (pops `pops`, pushes `pushes`), "jump" (a conditional jump: both ways
    continue), "for_iter" or "raise" (no way out but the handler)."""

    start_pc: int  # the first instruction run (a call's KW_NAMES / PRECALL)
    instr_pc: int  # the breaking instruction itself
    kind: str
    pops: int
    pushes: int
    next_pc: int  # where the fallthrough continues
    jump_pc: int = -1  # where a taken jump (or an exhausted FOR_ITER) continues

    def exits(self, layout):
        """(continue at pc, stack layout there, results left above the untouched stack)."""
        deep = list(layout[: len(layout) - self.pops])
        if self.kind == "plain":
            return [(self.next_pc, deep + [False] * self.pushes, self.pushes)]
        if self.kind == "jump":
            return [(self.next_pc, deep, 0), (self.jump_pc, deep, 0)]
        if self.kind == "for_iter":
            return [(self.next_pc, deep + [False, False], 2), (self.jump_pc, deep, 0)]
        return []


def _function(code, f_globals, closure):
    return types.FunctionType(code, f_globals, code.co_name, None, closure)


def takes_closure(code):
    """Whether the resume code's last argument is ___closure."""
    return id(code) in _takes_closure


def _with_closure(code, closure, args):
    return args + (closure,) if id(code) in _takes_closure else args


_runs = itertools.count()
_active_runs = []  # one number per trampoline now running, the innermost last


def current_run():
    """Which call of an original frame the resume function being entered belongs to (its
    trampoline's number): a resume function is called only by its own trampoline's loop,
    so the innermost one running is its own. None outside any trampoline."""
    return _active_runs[-1] if _active_runs else None


def run_resume(code, f_globals, closure, args):
    """The trampoline: run resume functions until one returns a real value. closure None:
    it is the last of `args` (a code taking ___closure; graph_call's moved tuple has it), so
    the tuple call_moved empties is the one the calling frame's stack holds (a new tuple made
    here left the old one holding a cell's first value until the frame returned)."""
    _active_runs.append(next(_runs))
    try:
        if closure is None:
            result = call_moved(_function(code, f_globals, args[-1]), args)
        else:
            result = call_moved(_function(code, f_globals, closure), _with_closure(code, closure, args))
        while type(result) is Continue:
            result = call_moved(result.fn, result.args)
    except BaseException as exc:  # zero-cost in 3.11 until raised
        tracebacks.hide_internal_frames(exc)  # no terra_dyn frames in the user's traceback
        raise
    finally:
        _active_runs.pop()
    return result


def continue_at(code, f_globals, closure, args):
    return Continue(_function(code, f_globals, closure), _with_closure(code, closure, args))


def run_function(fn, args):
    """run_resume for a resume function made once at code generation (no closure): the
    per-call cost is the call itself, not building a function object."""
    _active_runs.append(next(_runs))
    try:
        result = call_moved(fn, args)
        while type(result) is Continue:
            result = call_moved(result.fn, result.args)
    except BaseException as exc:
        tracebacks.hide_internal_frames(exc)
        raise
    finally:
        _active_runs.pop()
    return result


def original_code(code):
    """The original code object a resume or step code was cut from (None for any other
    code)."""
    entry = _resume_info.get(id(code)) or _step_origin.get(id(code))
    return entry[0] if entry is not None and entry[2] is code else None


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
    if q < 0:  # in a chain prologue (resume_chain.py): its call ends where the cut begins
        return original, label_at
    return original, (q if q <= label_at else q - 1)


def note_fresh_args(code, indexes, ints=()):
    """Arguments `indexes` of resume code `code` are numbers known only at run time: what
    the natively run instruction before it returned (a call's result, a loop's next item),
    or what the translation cut there held as graph values. Each cut from the same place
    adds its own. `ints`: those taken as inputs even when they are ints (a callee's run-time
    numbers handed to a chain, resume_chain.py)."""
    _fresh_args[id(code)] = tuple(sorted(set(_fresh_args.get(id(code), ())) | set(indexes) | set(ints)))
    if ints:
        _fresh_ints[id(code)] = tuple(sorted(set(_fresh_ints.get(id(code), ())) | set(ints)))


def fresh_args(code):
    return _fresh_args.get(id(code), ()) if is_resume_code(code) else ()


def fresh_int_args(code):
    return _fresh_ints.get(id(code), ()) if is_resume_code(code) else ()


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
    info = code_info(code)
    body = _shared_cells(code, info.instrs)
    target = Label()
    body.insert(pc, target)
    prologue, stack_args = _prologue(code, stack_layout, target)
    # the translator reads the cut as registered below (indexes match the original's);
    # only the code object that runs spells super() out
    resume = _assemble(code, info, _explicit_super(code, prologue + body), stack_args, local_names)
    layout_copy = Bytecode(prologue + body)
    _copy_metadata(layout_copy, info.bytecode, code)
    register(resume, layout_copy)
    _resume_codes[key] = resume
    _resume_info[id(resume)] = (code, len(prologue), resume, pc)
    return resume


def make_step_code(code, f_globals, step, stack_layout, local_names):
    """A cut entered at `step.start_pc` that runs the breaking instruction under the
    original exception table, then returns Continue(the resume function after it, args).
    It always runs natively (marked skip_code)."""
    original, start = original_pc(code, step.start_pc)
    pcs = {name: original_pc(code, getattr(step, name))[1] for name in ("instr_pc", "next_pc", "jump_pc")}
    key = ("step", id(original), start, pcs["instr_pc"], step.kind, step.pops, step.pushes,
           tuple(stack_layout), tuple(local_names), id(f_globals))
    cached = _resume_codes.get(key)
    if cached is not None:
        return cached
    info = code_info(original)
    body = _shared_cells(original, info.instrs)
    exits = step.exits(stack_layout)
    tails = []  # exit blocks placed after the body (a taken jump, an exhausted loop)
    instr_at = pcs["instr_pc"]
    target = Label()
    inserts = [(start, [target])]  # (index in body, instructions), applied last to first
    for n, (pc, layout, results) in enumerate(exits):
        resume_pc = pcs["next_pc"] if n == 0 else pcs["jump_pc"]
        resume = make_resume_code(original, resume_pc, layout, local_names)
        block = _exit_block(original, f_globals, resume, layout, results, local_names)
        if n == 0:
            inserts.append((instr_at + 1, block))  # the fallthrough: right after the instruction
        else:
            label = Label()
            # the exit lies after the body: always a forward jump; an exhausted FOR_ITER
            # skips what the version lays out at its target
            body[instr_at] = rules.forward_variant(body[instr_at], label)
            tails += [label] + (rules.for_iter_exit() if step.kind == "for_iter" else []) + block
    inserts += _handler_exits(original, f_globals, info, instr_at, stack_layout)
    for at, block in sorted(inserts, key=lambda item: item[0], reverse=True):
        body[at:at] = block
    prologue, stack_args = _prologue(original, stack_layout, target, step=True)
    step_code = _assemble(original, info, _explicit_super(original, prologue + body + tails), stack_args,
                          local_names, step=True)
    try:
        from .. import _C
        _C.skip_code(step_code)  # the native part: never translated
    except ImportError:
        pass
    _resume_codes[key] = step_code
    _step_origin[id(step_code)] = (original, None, step_code)
    return step_code


def _handler_exits(original, f_globals, info, instr_at, stack_layout):
    """After an exception the original handler runs natively in the step code. Where it
    comes back to ordinary code (a label after the try statement, a loop's head or end),
    an exit block returns Continue(the resume function there), so the rest of the frame is
    translated again. Only labels whose stack is a prefix of the break's stack (at most the
    depth the handler unwinds to) qualify; the live locals are read with locals().
    (index in body, instructions) pairs."""
    covering = covering_entries(info.instrs)
    entry = covering[instr_at]
    if entry is None or not isinstance(entry.stack_depth, int):
        return []
    limit = min(entry.stack_depth, len(stack_layout))
    depths = _stack_depths(info.instrs, info.label_pc)
    handlers = {id(ins.target) for ins in info.instrs if isinstance(ins, TryBegin)}
    out = []
    for i, ins in enumerate(info.instrs):
        if not isinstance(ins, Label) or id(ins) in handlers or depths.get(i, limit + 1) > limit:
            continue
        if covering[i] is not None and _handler_opcode(info, covering[i]) == "COPY":
            continue  # inside a handler's own code (its cleanup entry covers it)
        layout = tuple(stack_layout[: depths[i]])
        stack = [Instr("LOAD_FAST", f"___stack{k}") for k in range(len(layout)) if not layout[k]]
        free = _free_names(original)
        closure = _closure_tuple(free) if free else [Instr("LOAD_CONST", None)]
        args = [Instr("LOAD_CONST", (original, i, layout)), Instr("LOAD_CONST", f_globals)] + closure + \
            stack + [Instr("BUILD_TUPLE", len(stack))] + _call_const(caller_locals, [], 0)
        native = Label()  # continue_after_handler gave None: go on natively, stack untouched
        block = _call_const(_hook_off(continue_after_handler), args, 5) + [
            Instr("COPY", 1)] + rules.pop_jump("none", native) + [Instr("STORE_FAST", "___next")]
        block += [Instr("STORE_FAST", "___drop") for _ in layout]
        # the frame lets go of its locals (moved_tuple), the Continue stays on the stack
        block += [Instr("LOAD_FAST", "___next")] + moved_tuple([], 0) + [Instr("POP_TOP")] + \
            rules.return_value() + [native, Instr("POP_TOP")]
        out.append((i + 1, block))
    return out


def _hook_off(fn):
    """fn with the frame hook off while it runs: making a resume code at run time must not
    hand the bytecode package's own frames to the translator."""
    try:
        from .. import _C
    except ImportError:
        return fn
    return _C.DisabledCallable(fn)


def continue_after_handler(where, f_globals, closure, stack, local_values):
    """Continue(the resume function at `where`) with the locals bound there (a handler may
    have bound new ones or deleted `e` of `except E as e`)."""
    original, pc, layout = where
    shared = set(original.co_cellvars) | set(original.co_freevars)
    names = sorted(n for n in local_values if not n.startswith("___") and n not in shared)
    try:
        code = make_resume_code(original, pc, list(layout), names)
    except Exception:  # noqa: BLE001  no resume code here: the step code goes on natively
        return None
    args = stack + tuple(local_values[n] for n in names)
    if code.co_freevars:
        return continue_at(code, f_globals, closure, args)
    fn = _handler_functions.get((id(code), id(f_globals)))
    if fn is None:
        fn = _handler_functions[(id(code), id(f_globals))] = resume_function(code, f_globals)
    return Continue(fn, args)


_handler_functions = {}


def covering_entries(instrs):
    """The TryBegin whose range holds each instruction (the table is flat), or None."""
    out, active = [], None
    for ins in instrs:
        if isinstance(ins, TryBegin):
            active = ins
        elif isinstance(ins, TryEnd) and ins.entry is active:
            active = None
        out.append(active)
    return out


def _handler_opcode(info, entry):
    pc = info.label_pc.get(entry.target, len(info.instrs))
    while pc < len(info.instrs) and not isinstance(info.instrs[pc], Instr):
        pc += 1
    return info.instrs[pc].name if pc < len(info.instrs) else None


def _stack_depths(instrs, label_pc):
    """Stack depth before each reachable instruction index (a handler's entry depth from
    its TryBegin), {} if the code cannot be followed."""
    depths, todo = {0: 0}, [0]
    try:
        while todo:
            i = todo.pop()
            d, ins = depths[i], instrs[i]
            nexts = []
            if isinstance(ins, TryBegin):
                nexts.append((label_pc[ins.target], ins.stack_depth + 1 + int(ins.push_lasti)))
                nexts.append((i + 1, d))
            elif isinstance(ins, Instr):
                if ins.has_jump():
                    nexts.append((label_pc[ins.arg], d + ins.stack_effect(jump=True)))
                if not ins.is_final():
                    nexts.append((i + 1, d + ins.stack_effect(jump=False)))
            else:
                nexts.append((i + 1, d))
            for j, depth in nexts:
                if j < len(instrs) and j not in depths:
                    depths[j] = depth
                    todo.append(j)
    except (KeyError, TypeError, ValueError):
        return {}
    return depths


def _exit_block(original, f_globals, resume, layout, results, local_names):
    """stack: the step's untouched stack + `results` -> return Continue(resume, args)."""
    out = [Instr("STORE_FAST", f"___result{k}") for k in reversed(range(results))]
    deep = len(layout) - results
    # STORE_FAST, not POP_TOP: it also clears a NULL (POP_TOP would decref it)
    out += [Instr("STORE_FAST", "___drop") for _ in range(deep)]
    args = [Instr("LOAD_FAST", f"___stack{i}") for i in range(deep) if not layout[i]]
    args += [Instr("LOAD_FAST", f"___result{k}") for k in range(results)]
    args += [Instr("LOAD_FAST", n) for n in local_names]
    free = _free_names(original)
    if free:
        closure = _closure_tuple(free)
        pre = [Instr("LOAD_CONST", resume), Instr("LOAD_CONST", f_globals)] + closure
        call = _call_const(continue_at, pre + moved_tuple(args, len(args)), 4)
    else:
        call = moved_continue_call(resume_function(resume, f_globals), args, len(args))
    return out + call + rules.return_value()


def _call_const(fn, arg_instrs, nargs):
    return rules.call_const(fn, arg_instrs, nargs)


def _closure_tuple(names):
    return [ins for n in names for ins in rules.load_closure(n)] + [Instr("BUILD_TUPLE", len(names))]


def _free_names(original):
    return list(original.co_freevars) + list(original.co_cellvars)


def _shared_cells(original, instrs):
    """The original's instructions with its cell variables turned into free variables
    (same length: MAKE_CELL / COPY_FREE_VARS become NOP, so indexes stay put)."""
    out = []
    for ins in instrs:
        if isinstance(ins, Instr) and ins.name in rules.cell_setup:
            ins = Instr("NOP", location=ins.location)
        elif isinstance(ins, Instr) and isinstance(ins.arg, CellVar):
            ins = ins.copy()
            ins.arg = FreeVar(ins.arg.name)
        else:
            ins = _cell_load(original, ins)
        out.append(ins)
    return out


def _cell_load(original, ins):
    """3.13: LOAD_FAST of a cell (a closure's cell, a cell argument) loads the shared cell."""
    if isinstance(ins, Instr) and ins.name == "LOAD_FAST" and ins.arg in original.co_cellvars:
        return Instr("LOAD_FAST", FreeVar(ins.arg), location=ins.location)
    return ins


def _cell_read(original, ins):
    """A read of one of the original's cell variables, a free variable in the cut: an empty
    one raises UnboundLocalError as in the original (`del a` then `print(a)` after a break),
    not the NameError LOAD_DEREF raises for a free variable. [ins] when the C core is absent."""
    if not (isinstance(ins, Instr) and ins.name == "LOAD_DEREF" and ins.arg.name in original.co_cellvars):
        return [ins]
    try:
        from .. import _C
    except ImportError:
        return [ins]
    read = rules.call_const(_C.load_cell, rules.load_closure(ins.arg.name) + [Instr("LOAD_CONST", ins.arg.name)], 2)
    for i in read:
        i.location = ins.location
    return read


def _explicit_super(original, instrs):
    """`super()` spelled `super(__class__, <first argument>)`.

    Zero-argument super reads the frame's first local slot and its `__class__` cell; in a
    cut code the first slot is a saved stack item or another local, so transformers' layers
    calling `super().forward(...)` after a break raised TypeError. CPython reads the first
    argument's *current* value, and the cut holds that variable under the same name.
    On 3.11 it inserts instructions: apply it to the final list only (labels keep jumps
    right)."""
    if "__class__" not in original.co_freevars or not original.co_argcount:
        return instrs
    first = original.co_varnames[0]
    load_first = Instr("LOAD_DEREF", FreeVar(first)) if first in original.co_cellvars else Instr("LOAD_FAST", first)
    return rules.explicit_super(instrs, [Instr("LOAD_DEREF", FreeVar("__class__")), load_first])


def _prologue(original, stack_layout, target, step=False, before_jump=()):
    prologue = rules.prologue(len(_free_names(original)))
    stack_args = []
    for i, is_null in enumerate(stack_layout):
        if is_null:
            prologue += rules.push_null()
        else:
            name = f"___stack{i}"
            stack_args.append(name)
            prologue.append(Instr("LOAD_FAST", name))
            if not step:  # the slot lets go: the stack item alone holds it, as in the original
                prologue.append(Instr("DELETE_FAST", name))  # (a step code's exits reload it)
    prologue += list(before_jump) + rules.jump_forward(target)
    return prologue, stack_args


def _assemble(original, info, instrs, stack_args, local_names, step=False, extra_stack=0):
    # the locals are renumbered here: no two-local superinstruction survives (seam)
    bc = Bytecode([out for ins in rules.split_fast_pairs(instrs)
                   for out in _cell_read(original, _cell_load(original, ins))])
    _copy_metadata(bc, info.bytecode, original)
    bc.argnames = stack_args + list(local_names)
    closure_arg = not step and bool(original.co_cellvars)  # (a step code is never translated)
    if closure_arg:
        bc.argnames.append(CLOSURE_ARG)
    bc.argcount = len(bc.argnames)
    bc.posonlyargcount = 0
    bc.kwonlyargcount = 0
    bc.flags = info.bytecode.flags & ~0x0C  # no *args / **kwargs
    # No stack analysis: it cannot see that the prologue enters try/with regions in the
    # middle. The restored stack is the original's at that point, so the original's
    # maximum depth and its exception table depths (kept when parsing) stay right; a step
    # code's exit blocks push the call of Continue with every argument on top of it.
    extra = 4 + 3 + extra_stack + (len(stack_args) + len(local_names) + len(_free_names(original)) + 16) * step
    code = bc.to_code(stacksize=original.co_stacksize + extra, check_pre_and_post=False,
                      compute_exception_stack_depths=False)
    if closure_arg:
        _takes_closure.add(id(code))
    return code


def _copy_metadata(bc, original_bc, original):
    bc.name = original_bc.name
    bc.qualname = getattr(original_bc, "qualname", original_bc.name)
    bc.filename = original_bc.filename
    bc.first_lineno = original_bc.first_lineno
    bc.freevars = _free_names(original)
    bc.cellvars = []
    bc.docstring = None
