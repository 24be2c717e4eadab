"""A break inside inlined callees that stays there: the callers are not split at their calls.

    def forward(self, x):  a = self.pre(x); b = self.inner(a); return self.post(b)
    Inner.forward(a):      y = self.lin(a); z = helper(y); return z - 1
    helper(y):             s = y.sum().item(); return y * 2 + s

Split at the top frame's call (frame.py's attempt 2), the inner module runs natively and is
translated on its own, breaking at its call of helper, which breaks at `.item()`: 3 breaks
and 6 graphs, one on each side of the call at each level. Stopped *inside* the callees, the
translation of forward ends at `.item()` with the chain of frames it is in; the rewritten
forward runs one graph (pre, lin, sum), calls `.item()` natively, and continues in one
chain resume function (codegen/resume_chain.py) that holds the rest of helper, of
Inner.forward and of forward: 1 break, 2 graphs.

    attempt 1: Unsupported, annotated at each level it passes (executor._annotate):
               (depth, ctx.steps when that level's instruction began, chained, code)
    stop_step(exc): the deepest level reached through chained calls only
    attempt 2: ctx.stop_step: the translator at that step stops before its instruction
    site(tx):  the chain checked and turned into a BreakSite with `chain` levels;
               NotNestable -> attempt 3 splits at the top frame's call, as before

Where it applies (else NotNestable, and the break splits at the top frame's call):
- each link is a call whose result is the callee's return value as it is (calls.py marks
  such inlines `chained`: a function, a method, a module's forward without hooks; not a
  constructor's __init__, a hook or a key function);
- no level is inside a try body or a with block (the handler's frame would be gone);
- callees have no cells or free variables (their resume codes take no closure), name no
  frame-introspection function, and are not stdlib / torch / tooling code, which runs as
  written when called natively (sdpoint's `random.randint`);
- the breaking instruction reads nothing of its frame but the stack (a call, a jump,
  attribute and item ops), since it runs in the top frame, and is no call that reads its
  caller's frame (warnings, logging, inspect) or makes an object with `__del__`;
- no level (the top frame included) breaks inside a loop, and no callee pinned a symbolic
  size or holds an object that may finalize: their own frames handle those (loop
  specialization, symbolic sizes, drops).

A traceback through the native instruction shows the top frame's call line; the callee
frames between do not exist at that point.
"""
import logging
import warnings

from bytecode import Instr

from ..code_location import is_library_code
from ..codegen.graph_call import BreakSite
from ..codegen.resume import original_code
from ..codegen.resume_chain import ChainLevel
from ..seam import rules
from .drops import _finalizes
from .size_exprs import DynamicShapesFailed
from ..real_types import isa
from .values import ConstValue, MethodValue, ScalarValue


class NotNestable(Exception):
    """The chain does not qualify: the break goes to the top frame's call instead."""


# instructions that read nothing of their frame but the stack, beyond calls and jumps (not
# GET_ITER: a loop over a run-time iterator in a callee is its own frame's to specialize)
_STACK_ONLY = frozenset({
    "BINARY_SUBSCR", "STORE_SUBSCR", "DELETE_SUBSCR", "LOAD_ATTR", "STORE_ATTR", "DELETE_ATTR",
    "BINARY_OP", "COMPARE_OP", "CONTAINS_OP", "IS_OP", "UNARY_NEGATIVE", "UNARY_NOT", "UNARY_INVERT",
    "UNARY_POSITIVE", "UNPACK_SEQUENCE", "FORMAT_VALUE", "BUILD_STRING", "BINARY_SLICE",
    "STORE_SLICE", "TO_BOOL", "FORMAT_SIMPLE", "FORMAT_WITH_SPEC", "CONVERT_VALUE"})


def stop_step(exc):
    """The step at which attempt 2 stops inside callees, or None (the top frame's call)."""
    if getattr(exc, "loop", False):
        return None
    levels = sorted(getattr(exc, "levels", ()), key=lambda level: level[0])
    step = None
    for expected, (depth, instr_step, chained, code) in enumerate(levels):
        # stdlib, torch internals and tooling run as written when called natively (code_location):
        # the chain ends at the call into them (sdpoint's random.randint -> _randbelow)
        if depth != expected or (depth and not (chained and not is_library_code(original_code(code) or code))):
            break
        if depth:
            step = instr_step
    return step


def site(tx):
    """The BreakSite for a translation stopped at tx, a callee inlined by a chain of calls."""
    from .frame import (_FRAME_INTROSPECTION, _break_site, _enclosing_grad_restore, _inside_user_try,
                        _live_locals, _run_time_number, _split_methods)

    levels = []
    t = tx
    while t is not None:
        levels.append(t)
        t = t.parent
    levels.reverse()
    top = levels[0]
    if len(levels) < 2 or tx.ctx.open_with_blocks:
        raise NotNestable("no chain, or a with block open")
    for caller, callee in zip(levels, levels[1:]):
        instr = caller.instrs[caller.pc]
        if not callee.chained or not (rules.is_call(instr) or instr.name == "CALL_FUNCTION_EX"):
            raise NotNestable(f"{callee.name} is not a plain call's callee")
        if callee.code.co_cellvars or callee.code.co_freevars:
            raise NotNestable(f"{callee.name} has cells")
        if _FRAME_INTROSPECTION.intersection(callee.code.co_names):
            raise NotNestable(f"{callee.name} reads frames")  # its callers' frames must be real
    for level in levels:
        if _inside_user_try(level.info, level.pc) or level.info.in_with[level.pc]:
            raise NotNestable(f"{level.name} is inside a try or with block")
        if _inside_loop(level):
            # a loop's state (its counter, the list it fills) would reach the chain as
            # constants, one translation per iteration; the frame's own resume functions
            # treat them as run-time values (loop specialization, fresh numbers). The top
            # frame's too: examples/train_loop.py's main, calling train_step in its loop,
            # went from 3 graphs, 25 breaks and 2 recompiles to 6, 39 and 6
            raise NotNestable(f"{level.name} breaks inside a loop")
    instr = tx.instrs[tx.pc]
    if not (rules.is_call(instr) or instr.name == "CALL_FUNCTION_EX" or rules.is_cond_jump(instr)
            or rules.is_for_iter(instr) or instr.name in _STACK_ONLY) or instr.name in rules.not_breakable \
            or rules.may_push_null(instr):
        raise NotNestable(f"{instr.name} reads its frame")
    if (rules.is_call(instr) or instr.name == "CALL_FUNCTION_EX") and _calls_frame_reader(tx, instr):
        # run in the top frame, it would see the top frame as its caller: a warning's or a
        # log record's line, super()'s class, an inspected stack
        raise NotNestable("the call reads its caller's frame")
    try:
        tx.ctx.graph._stop_if_pinned()
    except DynamicShapesFailed:
        # a callee pinned a size (an unrolled loop over a tensor's rows): the caller would
        # retranslate per size; split at its call, the callee alone is (yolov3's build_targets)
        raise NotNestable("a callee pinned a size") from None
    for level in levels[1:]:
        level.realize_locals()  # handed on as values: no slot of the top frame holds them
    inner = _break_site(tx)
    if inner.kind not in ("plain", "jump", "for_iter") or inner.grad_restore is not None:
        raise NotNestable(f"a {inner.kind} break")
    for level in levels[1:]:
        if any(_finalizes(v, 2) for v in list(level.stack) + list(level.locals.values())):
            # an object with __del__ (or a user's weakref callback) handed to the chain died
            # later than in eager (at the end of the top frame's call, not at `del o`)
            raise NotNestable(f"{level.name} holds an object that may finalize")
    chain = [_level(level, _split_methods(level.stack), dict(level.locals), level.pc + 1) for level in levels[1:-1]]
    last = _level(tx, inner.deep, inner.locals, -1)
    last.numbers = list(inner.number_items)
    chain.append(last)
    deep = _split_methods(top.stack)
    if _enclosing_grad_restore(deep) is not None:
        raise NotNestable("a grad-mode block open at the call")
    live = _live_locals(top.locals)
    cells = [top.cells[n] if n in top.cells else _empty_cell() for n in top.code.co_cellvars]
    # the native instruction runs in the top frame: a traceback through it shows the top
    # frame's call line (the callees' frames between are not there)
    native = [i.copy() for i in inner.native]
    for i in native:
        i.location = top.instrs[top.pc].location
    out = BreakSite(kind=inner.kind, native=native, deep=deep, top=inner.top, pushes=inner.pushes,
                    locals=live, cells=cells, number_items=[isinstance(v, ScalarValue) for v in deep],
                    number_locals=frozenset(n for n, v in top.locals.items() if _run_time_number(top, v)),
                    chain=chain, caller_pc=top.pc + 1)
    out.next_pc, out.jump_pc = inner.next_pc, inner.jump_pc
    return out


def _inside_loop(tx):
    """Is tx's instruction inside a loop of its code: a backward jump after it to a place at
    or before it?"""
    info = tx.info
    for j in range(tx.pc, len(tx.instrs)):
        ins = tx.instrs[j]
        if isinstance(ins, Instr) and ins.has_jump() and info.label_pc.get(ins.arg, j + 1) <= tx.pc:
            return True
    return False


def _level(tx, deep, local_values, resume_pc):
    return ChainLevel(tx.code, tx.f_globals, list(deep), dict(local_values), resume_pc,
                      numbers=[isinstance(v, ScalarValue) for v in deep],
                      number_locals=frozenset(n for n, v in local_values.items() if isinstance(v, ScalarValue)))


_FRAME_READERS = frozenset({super, locals, vars, dir, eval, exec, globals, breakpoint, warnings.warn,
                            warnings.warn_explicit})
_FRAME_MODULES = frozenset({"inspect", "traceback", "logging", "warnings", "pdb", "sys"})


def _calls_frame_reader(tx, instr):
    """Is the callable of the call at tx.pc one that reads its caller's frame (or a class
    whose instances have __del__)?"""
    n = instr.arg if isinstance(instr.arg, int) else 0
    for v in tx.stack[-(n + 3):]:
        f = getattr(getattr(v, "fn", None), "value", None) if isinstance(v, MethodValue) else \
            v.value if isinstance(v, ConstValue) else None
        owner = getattr(v, "self_value", None) if isinstance(v, MethodValue) else None
        if isa(getattr(owner, "value", None), logging.Logger) or isa(getattr(f, "__self__", None), logging.Logger):
            return True
        if isinstance(f, type) and getattr(f, "__del__", None) is not None:
            return True  # the object it makes would outlive its last name (see _finalizes below)
        try:
            if f in _FRAME_READERS or getattr(f, "__module__", None) in _FRAME_MODULES:
                return True
        except TypeError:  # an unhashable callable
            continue
    return False


def _empty_cell():
    from .values import CellValue

    return CellValue(None)
