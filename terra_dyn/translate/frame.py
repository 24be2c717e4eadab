"""Translating one frame: symbolic run -> graph -> backend -> rewritten code.

    translate_frame(frame, options) -> FrameTranslation
        attempt 1: run the whole frame symbolically
            returns          -> one graph, code that calls it and rebuilds the result
            Unsupported at instruction i (top-level pc, n-th visit)
                             -> attempt 2 with stop_at=(i, n): stop *before* i, compile the
                                graph so far, run i natively, resume after it (BreakSite)
        the graph goes to options.backend; codegen builds the code object

A break inside an inlined callee is located at the caller's CALL (the Translator that
catches it is the top-level one), so the callee runs natively and is translated on its own.

Example: `def f(x): y = x * 2; print(y.sum().item()); return y + 1` translates to a graph
(mul, sum), the native `.item()` call, and a resume function that prints and adds.
"""
import time
import types
from dataclasses import dataclass, field
from typing import Any, List

from bytecode import Instr

from .. import report
from ..codegen.graph_call import BreakSite, CodePlan, build_code
from ..codegen.resume import is_resume_code
from ..codegen.signature import argument_slot_names
from .context import TranslationContext
from .errors import Unsupported
from .executor import StopTranslation, Translator
from .sources import FreeVarSource, LocalSource
from .values import (CellValue, ConstValue, Lazy, ListValue, MethodValue, NullValue, ScalarValue,
                     TensorValue)

_JUMPS = {"POP_JUMP_FORWARD_IF_TRUE", "POP_JUMP_FORWARD_IF_FALSE", "POP_JUMP_BACKWARD_IF_TRUE",
          "POP_JUMP_BACKWARD_IF_FALSE", "POP_JUMP_FORWARD_IF_NONE", "POP_JUMP_FORWARD_IF_NOT_NONE",
          "POP_JUMP_BACKWARD_IF_NONE", "POP_JUMP_BACKWARD_IF_NOT_NONE"}
_NOT_BREAKABLE = {"RETURN_VALUE", "JUMP_IF_TRUE_OR_POP", "JUMP_IF_FALSE_OR_POP", "BEFORE_WITH",
                  "MAKE_FUNCTION", "LOAD_CLOSURE", "STORE_DEREF", "LOAD_DEREF", "MAKE_CELL",
                  "COPY_FREE_VARS", "RESUME", "KW_NAMES", "PRECALL", "LIST_APPEND", "MAP_ADD",
                  "LIST_EXTEND", "DICT_UPDATE", "DICT_MERGE", "SET_ADD", "YIELD_VALUE",
                  "SEND", "GET_AWAITABLE", "PUSH_EXC_INFO", "POP_EXCEPT", "RERAISE"}


class FullgraphError(RuntimeError):
    """fullgraph=True and the frame does not fit in one graph."""


@dataclass
class TranslateOptions:
    backend: Any  # callable (gm, example_inputs) -> callable
    backend_name: str = ""
    fullgraph: bool = False
    dynamic: frozenset = frozenset()  # source expressions of numbers to pass as graph inputs


@dataclass
class FrameTranslation:
    graphs: List[Any] = field(default_factory=list)
    guard: Any = None
    code: types.CodeType = None
    breaks: List[report.GraphBreak] = field(default_factory=list)
    resume_functions: List[types.CodeType] = field(default_factory=list)
    guard_descriptions: List[str] = field(default_factory=list)
    translate_seconds: float = 0.0
    compile_seconds: float = 0.0


def translate_frame(frame, options) -> FrameTranslation:
    return translate_code(frame.f_code, dict(frame.f_locals), frame.f_globals, options)


def translate_code(code, f_locals, f_globals, options) -> FrameTranslation:
    start = time.perf_counter()
    if code.co_flags & 0x2A0:  # generator, coroutine, async generator
        raise Unsupported("generator and coroutine frames run unmodified", code.co_filename,
                          code.co_firstlineno, breakable=False)
    slots = argument_slot_names(code)
    stop_at = None
    native_rest = False
    breaks = []
    for _attempt in range(2):
        ctx = TranslationContext(code, f_globals, len(slots), options, stop_at)
        tx = _make_translator(ctx, code, f_locals, f_globals, slots)
        try:
            try:
                result = tx.run()
                site = None
            except StopTranslation as stop:
                result, site = None, _break_site(stop.tx, native_rest)
            return _finish(ctx, code, f_globals, tx, result, site, breaks, options, start)
        except Unsupported as exc:
            if options.fullgraph:
                raise FullgraphError(f"fullgraph=True: {exc} ({exc.source_line})") from exc
            if stop_at is not None or not _can_break(tx, exc):
                raise
            stop_at = exc.at
            native_rest = getattr(exc, "native_rest", False)
            breaks.append(report.GraphBreak(
                reason=exc.reason, filename=exc.filename or code.co_filename, lineno=exc.lineno,
                source_line=exc.source_line, user_stack=list(exc.user_stack), code_name=code.co_name))
        finally:
            ctx.close()
    raise Unsupported("no break point found")


def _make_translator(ctx, code, f_locals, f_globals, slots):
    local_values = {}
    for i, name in enumerate(slots):
        if name in f_locals:
            local_values[name] = Lazy(f_locals[name], LocalSource(name, i))
    cells = {}
    for name in code.co_freevars:
        if name in f_locals:
            cell = CellValue(Lazy(f_locals[name], FreeVarSource(name)))
            cell.real = True
            cells[name] = cell
    return Translator(ctx, code, f_globals, local_values, cells)


def _can_break(tx, exc):
    at = getattr(exc, "at", None)
    if at is None or not exc.breakable:
        return False
    instr = tx.instrs[at[0]]
    if tx.info.in_try[at[0]] or tx.info.in_with[at[0]] and not _only_grad_mode_blocks(tx):
        # inside a try body (or a Python context manager's block) the rest of the frame
        # must run under the original exception table: the graph so far runs, then a
        # resume function starting *at* this instruction runs natively to the end
        exc.native_rest = True
    if tx.code.co_cellvars and _writes_cells(tx):
        # cells are passed to resume functions by value: only safe if never reassigned
        return False
    return instr.name not in _NOT_BREAKABLE


def _only_grad_mode_blocks(tx):
    from .opcodes_control import GradModeExit, GradModeRestore

    grad, other = 0, 0
    for v in tx.stack:
        fn = getattr(v, "fn", None) if isinstance(v, MethodValue) else None
        if isinstance(fn, ConstValue) and fn.value is GradModeExit or \
                isinstance(v, ConstValue) and isinstance(v.value, GradModeRestore):
            grad += 1
        elif isinstance(fn, ConstValue) and getattr(fn.value, "__name__", "") == "__exit__":
            other += 1
    return grad > 0 and other == 0


def _writes_cells(tx):
    return any(getattr(i, "name", "") in ("STORE_DEREF", "DELETE_DEREF") for i in tx.instrs)


def _break_site(tx, native_rest=False):
    """The BreakSite for the top-level translator stopped before its instruction at pc."""
    instr = tx.instrs[tx.pc]
    name = instr.name
    stack = list(tx.stack)
    live = {}
    for n, v in tx.locals.items():
        live[n] = None if isinstance(v, Lazy) else v
    for n in tx.code.co_cellvars:  # passed by value (see _can_break)
        cell = tx.cells.get(n)
        if cell is not None and cell.content is not None:
            live[n] = None if isinstance(cell.content, Lazy) else cell.content
    if name == "CALL":
        pops, pushes = instr.arg + 2, 1
        native = []
        if tx.kw_names:
            native.append(Instr("KW_NAMES", tx.kw_names, location=instr.location))
        native += [Instr("PRECALL", instr.arg, location=instr.location), instr]
        kind = "plain"
    elif name in _JUMPS:
        pops, pushes, native, kind = 1, 0, [instr], "jump"
    elif name == "FOR_ITER":
        pops, pushes, native, kind = 1, 0, [instr], "for_iter"
    elif name == "RAISE_VARARGS":
        pops, pushes, native, kind = instr.arg, 0, [instr], "raise"
    else:
        pre, post = instr.pre_and_post_stack_effect()
        pops, pushes, native, kind = -pre, post, [instr], "plain"
        if pushes < 0 or pops < 0:
            raise Unsupported(f"cannot break at {name}", breakable=False)
    if pops > len(stack):
        raise Unsupported(f"stack underflow at {name}", breakable=False)
    stack = _split_methods(stack)
    if native_rest:
        # resume at the instruction itself (for a call: at its KW_NAMES / PRECALL)
        target = tx.pc - (len(native) - 1 if name == "CALL" else 0)
        site = BreakSite(kind="native_rest", native=[], deep=stack, top=[], pushes=0, locals=live)
        site.next_pc = target
        return site
    deep, top = stack[: len(stack) - pops], stack[len(stack) - pops:]
    site = BreakSite(kind=kind, native=native, deep=deep, top=top, pushes=pushes, locals=live)
    site.next_pc = tx.pc + 1
    if kind in ("jump", "for_iter"):
        site.jump_pc = tx.info.label_pc[instr.arg]
    return site


def _split_methods(stack):
    """[NULL, bound method] -> [function, self]: the same two stack slots, the same CALL,
    and a resume function then receives a stable function object instead of a fresh
    bound method (which would fail an identity guard on every call)."""
    out = list(stack)
    for i in range(len(out) - 1):
        v = out[i + 1]
        if isinstance(out[i], NullValue) and isinstance(v, MethodValue) and isinstance(v.fn, ConstValue):
            out[i], out[i + 1] = v.fn, v.self_value
    return out


def _finish(ctx, code, f_globals, tx, result, site, breaks, options, start):
    graph = ctx.graph
    live = []
    if site is None:
        _collect_graph_values(result, live)
    else:
        for v in site.deep + site.top:
            _collect_graph_values(v, live)
        for v in site.locals.values():
            _collect_graph_values(v, live)
    for effect in graph.side_effects:
        _collect_graph_values(effect, live)
    for container in ctx.mutated:
        _collect_graph_values(container, live)
    outputs = []
    seen = set()
    for v in live:
        if v.node.op == "placeholder" and v.source is not None:
            continue  # an input rebuilt from its source
        if v.node not in seen:
            seen.add(v.node)
            outputs.append(v)
    gm = graph.finish(outputs)
    translate_seconds = time.perf_counter() - start
    compiled, compile_seconds = None, 0.0
    graphs = []
    inputs = [v for v, _ in graph.inputs]
    if gm is not None:
        used = {n for n in gm.graph.nodes if n.op == "placeholder"}
        inputs = [v for v in inputs if v.node in used]
        example_inputs = [_example(v) for v in inputs]
        t0 = time.perf_counter()
        compiled = options.backend(gm, example_inputs)
        compile_seconds = time.perf_counter() - t0
        gm.example_inputs = example_inputs
        graphs.append(gm)
    plan = CodePlan(
        code=code, f_globals=f_globals, graph_fn=compiled, graph_inputs=inputs,
        output_index={v.node: i for i, v in enumerate(outputs)},
        side_effects=list(graph.side_effects), mutated=list(ctx.mutated),
        closure_check=ctx.guards.closure_predicate(), return_value=result, site=site,
        in_resume=is_resume_code(code))
    new_code = build_code(plan)
    return FrameTranslation(
        graphs=graphs, guard=ctx.guards.build(), code=new_code, breaks=breaks,
        resume_functions=list(site.resume_codes) if site else [],
        guard_descriptions=ctx.guards.describe(), translate_seconds=translate_seconds,
        compile_seconds=compile_seconds)


def _example(v):
    if isinstance(v, ScalarValue):
        return v.example
    return v.fake


def _collect_graph_values(v, out, depth=0):
    if depth > 50:
        return
    if isinstance(v, (TensorValue, ScalarValue)):
        out.append(v)
        return
    if isinstance(v, tuple):  # a FormattedValue part
        for c in v:
            _collect_graph_values(c, out, depth + 1)
        return
    for attr in ("items", "attrs", "args", "kwargs", "value", "obj", "fn", "self_value", "content", "parts"):
        if attr == "items" and isinstance(v, ListValue):
            child = v.known_items()  # never realize a lazy list just to look at it
        else:
            child = getattr(v, attr, None)
        if child is None or child is v:
            continue
        if isinstance(child, dict):
            child = list(child.values())
        if isinstance(child, (list, tuple)):
            for c in child:
                _collect_graph_values(c, out, depth + 1)
        elif hasattr(child, "__dict__") and type(child).__module__.startswith("terra_dyn"):
            _collect_graph_values(child, out, depth + 1)
