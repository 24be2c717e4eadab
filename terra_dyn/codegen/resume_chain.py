"""Chain resume functions: the rest of a break inside inlined callees, as one function.

A break inside inlined callees (translate/nested_breaks.py) leaves several frames half
done: the innermost at its breaking instruction, each caller at its call. The rewritten
top frame runs the graph and the native instruction, then one chain resume function:

    R_top(<top's stack and locals>, ___chain0..n)      cut of the top code after its call
        prologue: push top's saved stack
                  run_chained(R_mid, ___chain0..n)      -> the call's result on the stack
                  jump to the instruction after top's call
    R_mid(<mid's stack and locals>, ___chain0..m)      the same for each caller below
    R_inner(<inner's stack, the native results, locals>)   an ordinary resume code

run_chained(fn, *args) is the trampoline (run_function) when it runs natively; the
translator inlines fn there (translate/calls.py), so R_top's translation holds the rest of
every frame of the chain in one graph: one break and two graphs where splitting each
caller at its call gave a break and two graphs per level.

The chain arguments are loaded and deleted one by one before the call, as the saved stack
is: the callee's frame is their only holder (resume.py "Moved, not copied").

Example: forward -> Inner.forward -> helper with `.item()`: before, 3 breaks and 6 graphs;
with chains, 1 break and 2 graphs (benchmarks/break_chains.py).
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List

from bytecode import Bytecode, Instr, Label

from ..bytecode_info import code_info, register
from ..seam import rules
from . import resume

_chain_functions = {}  # (id(code), id(f_globals)) -> the function object, made once


def run_chained(fn, *args):
    """The call in a chain prologue, run natively: fn's frame, then any resume functions it
    continues in (the trampoline)."""
    return resume.run_function(fn, args)


@dataclass
class ChainLevel:
    """One callee frame of a chain: below the top frame, down to the breaking one."""

    code: Any
    f_globals: dict
    deep: List[Any]  # its stack under the call (the innermost's: under the native instruction)
    locals: Dict[str, Any]  # live locals: name -> Value (all realized)
    resume_pc: int = -1  # a caller: the instruction after its call
    numbers: List[bool] = field(default_factory=list)  # per deep item: a run-time number
    number_locals: frozenset = frozenset()


def chain_function(code, f_globals):
    key = (id(code), id(f_globals))
    fn = _chain_functions.get(key)
    if fn is None or fn.__code__ is not code:
        fn = _chain_functions[key] = resume.resume_function(code, f_globals)
    return fn


def make_chain_code(code, pc, stack_layout, local_names, child, child_nargs):
    """A cut of `code` at `pc` (the instruction after a call) whose prologue pushes the
    saved stack, then the call's result: run_chained(child, ___chain0..). Arguments: the
    stack's non-NULL items, `local_names`, the chain arguments (then ___closure as resume.py)."""
    code, pc = resume.original_pc(code, pc)
    key = ("chain", id(code), pc, tuple(stack_layout), tuple(local_names), id(child), child_nargs)
    cached = resume._resume_codes.get(key)
    if cached is not None and resume._resume_info[id(cached)][0] is code:
        return cached
    info = code_info(code)
    body = resume._shared_cells(code, info.instrs)
    target = Label()
    body.insert(pc, target)
    names = [f"___chain{i}" for i in range(child_nargs)]
    loads = [Instr("LOAD_CONST", child)] + [i for n in names for i in (Instr("LOAD_FAST", n), Instr("DELETE_FAST", n))]
    call = rules.call_const(run_chained, loads, child_nargs + 1)
    prologue, stack_args = resume._prologue(code, stack_layout, target, before_jump=call)
    chain = resume._assemble(code, info, resume._explicit_super(code, prologue + body), stack_args,
                             list(local_names) + names, extra_stack=child_nargs + 4)
    layout_copy = Bytecode(prologue + body)
    resume._copy_metadata(layout_copy, info.bytecode, code)
    register(chain, layout_copy)
    resume._resume_codes[key] = chain
    resume._resume_info[id(chain)] = (code, len(prologue), chain, pc)
    return chain


def chain_resume(rec, site, top_code, target_pc, temps):
    """(the top frame's resume code, instructions pushing its arguments but the closure, their
    count) for a break whose site has a chain; the innermost resumes at target_pc with the
    native instruction's results in `temps`. The callees' run-time numbers are inputs of the
    chain's first translation, ints too (resume.note_fresh_args): a callee translated on its
    own would have held them symbolic already."""
    inner = site.chain[-1]
    layout = [v.is_null for v in inner.deep] + [False] * len(temps)
    names = sorted(inner.locals)
    code = resume.make_resume_code(inner.code, target_pc, layout, names)
    args, held = _level_args(rec, inner, names)
    below = sum(not null for null in layout[:len(inner.deep)])  # the saved stack items come first
    args[below:below] = [[Instr("LOAD_FAST", t)] for t in temps]
    held = [i if i < below else i + len(temps) for i in held]
    made = list(range(below, below + len(temps)))  # the native instruction's results
    callee = inner
    for level in reversed(site.chain[:-1]):
        child = chain_function(code, callee.f_globals)
        names = sorted(level.locals)
        code = make_chain_code(level.code, level.resume_pc, [v.is_null for v in level.deep], names, child, len(args))
        own, own_held = _level_args(rec, level, names)
        held = own_held + [len(own) + i for i in held]
        made = [len(own) + i for i in made]
        args = own + args
        callee = level
    child = chain_function(code, callee.f_globals)
    names = sorted(n for n in site.locals if not n.startswith("___"))
    code = make_chain_code(top_code, site.caller_pc, [v.is_null for v in site.deep], names, child, len(args))
    top = ChainLevel(top_code, None, site.deep, {}, numbers=list(site.number_items))
    own, top_numbers = _level_args(rec, top, [])
    for n in names:
        value = site.locals[n]
        if n in site.number_locals:
            top_numbers.append(len(own))
        own.append([Instr("LOAD_FAST", n)] if value is None else rec.push(value))
    resume.note_fresh_args(code, top_numbers + [len(own) + i for i in made], ints=[len(own) + i for i in held])
    args = own + args
    return code, [i for arg in args for i in arg], len(args)


def _level_args(rec, level, names):
    """One instruction list per argument pushing a level's saved stack items and locals, and
    the indexes among them of run-time numbers."""
    args, numbers = [], []
    for i, v in enumerate(level.deep):
        if v.is_null:
            continue
        if i < len(level.numbers) and level.numbers[i]:
            numbers.append(len(args))
        args.append(rec.push(v))
    for n in names:
        if n in level.number_locals:
            numbers.append(len(args))
        args.append(rec.push(level.locals[n]))
    return args, numbers
