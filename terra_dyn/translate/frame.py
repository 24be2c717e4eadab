"""Translating one frame: symbolic run -> graph -> backend -> rewritten code.

    translate_frame(frame, options) -> FrameTranslation
        attempt 1: run the whole frame symbolically
            returns          -> one graph, code that calls it and rebuilds the result
            Unsupported at instruction i (top-level pc, n-th visit)
                             -> attempt 2 with stop_at=(i, n): stop *before* i, compile the
                                graph so far, run i natively, resume after it (BreakSite)
        the graph goes to options.backend; codegen builds the code object

A break inside inlined callees stops there when the chain of calls qualifies (attempt 2
with stop_step, nested_breaks.py): the rest of every frame is one chain resume function.
Otherwise it is located at the top frame's CALL (attempt 3, or 2), so the callee runs
natively and is translated on its own.

A break inside a try body or a Python with block (one whose exception would reach a
handler of the user's) runs its instruction in a step code that keeps the original
exception table; the frame then goes on in a resume function, translated like any other
(codegen/resume.py). A frame's cells go to its resume functions as cells: the resume
function reads them through its `___closure` argument, and a function the frame made over
them is guarded by its code and cells, not by identity (a new one every call).

Example: `def f(x): y = x * 2; print(y.sum().item()); return y + 1` translates to a graph
(mul, sum), the native `.item()` call, and a resume function that prints and adds.
"""
import time
import types
from dataclasses import dataclass, field
from typing import Any, List

import torch
from bytecode import Instr

from .. import config, report
from ..real_types import isa
from ..seam import rules

try:
    from .. import _C
except ImportError:  # the C core is not built: translation stays testable
    _C = None
from ..codegen.graph_call import BreakSite, CodePlan, build_code
from ..codegen.resume import CLOSURE_ARG, Step, covering_entries, is_resume_code
from ..codegen.signature import argument_slot_names
from . import autocast, generator_cm, nested_breaks
from .context import TranslationContext
from .example_inputs import ExampleInputs
from .errors import Unsupported
from .executor import StopTranslation, Translator
from .sources import AttrSource, FreeVarSource, ItemSource, LocalSource
from .values import (CellValue, ConstValue, Lazy, ListValue, MethodValue, NullValue,
                     ScalarValue, TensorValue)

# locals(), vars(), frame objects, debuggers: what they show of a rewritten frame is not the
# user's frame
_FRAME_INTROSPECTION = frozenset({"locals", "vars", "_getframe", "currentframe", "settrace", "set_trace",
                                  "breakpoint"})


class FullgraphError(RuntimeError):
    """fullgraph=True and the frame does not fit in one graph."""


@dataclass
class TranslateOptions:
    backend: Any  # callable (gm, example_inputs) -> callable
    backend_name: str = ""
    fullgraph: bool = False
    dynamic: frozenset = frozenset()  # source expressions of numbers to pass as graph inputs
    static: frozenset = frozenset()  # ... never to pass as inputs (one failed as an input)
    # filled by the translation: numbers it made inputs because they changed on their object
    # in another code object's recompile (changing.py), for convert_frame's retry
    changing_inputs: set = field(default_factory=set)


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
    outcomes: List[str] = field(default_factory=list)  # guard texts that are a number branch's outcome


def translate_frame(frame, options) -> FrameTranslation:
    return translate_code(frame.f_code, dict(frame.f_locals), frame.f_globals, options)


def translate_code(code, f_locals, f_globals, options) -> FrameTranslation:
    start = time.perf_counter()
    if not rules.translator_ported:
        raise Unsupported(f"the translator is not yet ported to Python {rules.version[0]}.{rules.version[1]}: "
                          "frames run unmodified", code.co_filename, code.co_firstlineno, breakable=False)
    if code.co_flags & 0x2A0:  # generator, coroutine, async generator
        raise Unsupported("generator and coroutine frames run unmodified", code.co_filename,
                          code.co_firstlineno, breakable=False)
    introspected = _FRAME_INTROSPECTION.intersection(code.co_names)
    if introspected and not is_resume_code(code):
        # locals(), vars() and frame objects would see the rewritten frame's internal names
        # (and a resume function's arguments): the whole frame runs as plain Python
        raise Unsupported(f"the frame calls {sorted(introspected)[0]}(): it runs unmodified",
                          code.co_filename, code.co_firstlineno, breakable=False)
    slots = argument_slot_names(code)
    stop_at = stop_step = None
    native_rest = False
    breaks = []
    for _attempt in range(3):
        # stop_step: inside inlined callees (nested_breaks.py); else stop_at, the top frame's
        ctx = TranslationContext(code, f_globals, len(slots), options, None if stop_step else stop_at, stop_step)
        tx = _make_translator(ctx, code, f_locals, f_globals, slots)
        try:
            try:
                result = tx.run()
                site = None
            except StopTranslation as stop:
                site = nested_breaks.site(stop.tx) if stop_step else _break_site(stop.tx, native_rest)
                result = None
            return _finish(ctx, code, f_globals, tx, result, site, breaks, options, start)
        except (Unsupported, nested_breaks.NotNestable) as exc:
            if stop_step is not None:  # the chain does not qualify: split at the top frame's call
                stop_step = None
                continue
            if options.fullgraph:
                raise FullgraphError(f"fullgraph=True: {exc} ({exc.source_line})") from exc
            if stop_at is not None:
                raise
            if ctx.open_with_blocks and getattr(exc, "at", None) is not None and exc.breakable:
                # inside a @contextmanager block the suspended generator is no real object, and
                # an autocast block's switches live in the graph: break at the outermost such
                # block's with statement instead (generator_cm.py, autocast.py)
                exc.at = ctx.open_with_blocks[0]
                exc.at_with_statement = True
                exc.reason += " (inside a with block: its with statement runs natively)"
            if not _can_break(tx, exc):
                raise
            stop_at = exc.at
            native_rest = getattr(exc, "native_rest", False)
            if not native_rest and not getattr(exc, "at_with_statement", False) and config.nested_breaks:
                stop_step = nested_breaks.stop_step(exc)
            breaks.append(report.GraphBreak(
                reason=exc.reason, filename=exc.filename or code.co_filename, lineno=exc.lineno,
                source_line=exc.source_line, user_stack=list(exc.user_stack), code_name=code.co_name))
        finally:
            ctx.close()
    raise Unsupported("no break point found")


def _never_translated(compiled, backend):
    """A user backend's callable runs with the hook off: translating it again would run its
    Python side effects twice and transform its result twice (the built-in backends return
    generated code the hook already skips, or turn the hook off themselves)."""
    from .. import backends

    if backend in _builtin_backends(backends) or _C is None or isinstance(compiled, _C.DisabledCallable):
        return compiled
    return _C.DisabledCallable(compiled)


def _builtin_backends(backends):
    return {backends.lookup(n) for n in ("interpreter", "auto", "triton")}


def _make_translator(ctx, code, f_locals, f_globals, slots):
    resume = is_resume_code(code)
    local_values = {}
    for i, name in enumerate(slots):
        if name == CLOSURE_ARG and resume:
            continue  # read below, never guarded
        if name in f_locals:
            real, source = f_locals[name], LocalSource(name, i)
            if resume and type(real) is types.MethodType and type(real.__func__) is types.FunctionType:
                local_values[name] = _bound_method(ctx, real, source)
            else:
                local_values[name] = Lazy(real, source)
    # a resume function of a frame with cells also gets its closure as an argument: its
    # cells are read through it (guards over arguments; a closure check would read every
    # cell, and one assigned only after the break is still empty), and an inlined function
    # closing over one of them then reads and writes this frame's CellValue, not a stale
    # copy of the cell's contents
    closure = f_locals.get(CLOSURE_ARG) if resume else None
    cells = {}
    for i, name in enumerate(code.co_freevars):
        if closure is not None:
            source = AttrSource(ItemSource(LocalSource(CLOSURE_ARG, slots.index(CLOSURE_ARG)), i),
                                "cell_contents")
        else:
            source = FreeVarSource(name)
        # an empty cell (a cell variable of the original assigned after the break) is still
        # the frame's own: a write to it is replayed with STORE_DEREF
        content = Lazy(f_locals[name], source) if name in f_locals else None
        cell = CellValue(content)
        cell.real = True
        cell.closure_name = name  # rebuilt as LOAD_CLOSURE (a closure made here shares it)
        cells[name] = cell
    ctx.real_cells = {id(c): cells[n] for n, c in zip(code.co_freevars, closure or ())}
    if closure is not None:
        closure_source = LocalSource(CLOSURE_ARG, slots.index(CLOSURE_ARG))
        for name, value in list(local_values.items()):
            fn = _frame_closure(ctx, value, closure, closure_source)
            if fn is not None:
                local_values[name] = fn
    return Translator(ctx, code, f_globals, local_values, cells)


def _frame_closure(ctx, value, closure, closure_source):
    """A function the original frame made over its own cells (`def layer(h): ... scale`),
    handed to a resume function: a new object on every call, so it is guarded by its code
    and by its cells being this frame's, not by identity (which would recompile every
    call); calls of it read and write the frame's CellValues."""
    real = getattr(value, "real", None)
    if type(real) is not types.FunctionType or not real.__closure__ or real.__kwdefaults__:
        return None
    positions = [next((j for j, c in enumerate(closure) if c is cell), None) for cell in real.__closure__]
    if None in positions:
        return None
    from .values import FunctionValue

    source = value.source
    ctx.guards.type(source, types.FunctionType)
    ctx.guards.identity(AttrSource(source, "__code__"), real.__code__)
    for i, j in enumerate(positions):
        ctx.guards.same_object(ItemSource(AttrSource(source, "__closure__"), i),
                               ItemSource(closure_source, j), real.__closure__[i])
    defaults = None
    if real.__defaults__ is not None:
        defaults = ctx.wrap(real.__defaults__, AttrSource(source, "__defaults__"))
    else:
        ctx.guards.value(AttrSource(source, "__defaults__"), None)
    cells = [ctx.real_cells[id(c)] for c in real.__closure__]
    fn = FunctionValue(real.__code__, real.__globals__, real.__name__, defaults, None, cells)
    fn.qualname = real.__qualname__
    fn.source = source  # rebuilt by loading it: the same object
    return fn


def _bound_method(ctx, real, source):
    """A bound method handed to a resume function (a with block's `__exit__` split by a
    break): a new object on every call, so it is guarded by its function and its self, not
    by identity (which would recompile every call)."""
    ctx.guards.type(source, types.MethodType)
    fn_source = AttrSource(source, "__func__")
    ctx.guards.identity(fn_source, real.__func__)
    self_value = ctx.wrap(real.__self__, AttrSource(source, "__self__"))
    return MethodValue(ConstValue(real.__func__, fn_source), self_value)


def _can_break(tx, exc):
    at = getattr(exc, "at", None)
    if at is None or not exc.breakable:
        return False
    instr = tx.instrs[at[0]]
    if _inside_user_try(tx.info, at[0]) or tx.info.in_with[at[0]] and not _only_grad_mode_blocks(tx):
        # inside a try body (or a Python context manager's block) the instruction must run
        # under the original exception table: the graph so far runs, then a step code runs
        # the instruction and the frame goes on, translated, after it (codegen/resume.py)
        exc.native_rest = True
    if rules.is_with_enter(instr) and getattr(exc, "at_with_statement", False):
        return True  # the block's exception table entry starts after it: resumable
    return instr.name not in rules.not_breakable and not rules.may_push_null(instr)


def _inside_user_try(info, pc):
    """Does an exception at pc reach a try/except or try/finally handler of the user's?
    The exception table is flat: in `try: with no_grad(): <pc>`, pc's entry is the with
    block's handler, whose own instructions are covered by the entry of the try's handler."""
    covering = covering_entries(info.instrs)
    seen = set()
    entry = covering[pc]
    while entry is not None and id(entry) not in seen:
        seen.add(id(entry))
        if not info._is_with_handler(entry):
            return True
        handler = info.label_pc[entry.target]
        while handler < len(info.instrs) and not isinstance(info.instrs[handler], Instr):
            handler += 1
        entry = covering[handler] if handler < len(covering) else None
    return False


def _only_grad_mode_blocks(tx):
    from .opcodes_control import GradModeExit, GradModeRestore

    grad, other = 0, 0
    for v in tx.stack:
        fn = getattr(v, "fn", None) if isinstance(v, MethodValue) else None
        if isinstance(fn, ConstValue) and fn.value is GradModeExit or \
                isinstance(v, ConstValue) and isa(v.value, GradModeRestore):
            grad += 1
        elif isinstance(fn, ConstValue) and getattr(fn.value, "__name__", "") == "__exit__":
            other += 1
    return grad > 0 and other == 0


def _enclosing_grad_restore(deep):
    """The GradModeRestore of the outermost grad-mode block open at a break, or None
    (codegen restores that mode if the native instruction raises)."""
    from .opcodes_control import GradModeExit, GradModeRestore, grad_mode_restore

    for v in deep:
        if isinstance(v, MethodValue) and isinstance(v.fn, ConstValue) and v.fn.value is GradModeExit:
            return grad_mode_restore(v.self_value.previous)
        if isinstance(v, ConstValue) and isa(v.value, GradModeRestore):
            return v.value  # a block opened before an earlier break (a resume frame)
    return None


def _dropped_slots(tx, targets):
    """The rewritten frame's slots holding the values stores into `targets` let go of, in
    the order they let go (the translation may have moved values between names: `a, b = b,
    a` leaves b's argument slot holding a's value)."""
    names, slots = dict(tx.locals), []
    for target in targets:
        old = names.pop(target, None)
        source = getattr(old, "source", None)
        slots.append(source.name if isinstance(source, LocalSource) else target)
        names[target] = None
    return tuple(slots)


def _break_site(tx, native_rest=False):
    """The BreakSite for the top-level translator stopped before its instruction at pc."""
    instr = tx.instrs[tx.pc]
    name = instr.name
    stack = [_carried(v) for v in tx.stack]
    live = _live_locals(tx.locals)
    # the frame's own cells go to resume functions as cells (see codegen/resume.py)
    cells = [tx.cells[n] if n in tx.cells else CellValue(None) for n in tx.code.co_cellvars]
    is_call = rules.is_call(instr)
    drops = ()
    if name in ("STORE_FAST", "STORE_FAST_STORE_FAST", "DELETE_FAST") and not native_rest:
        # a drop that may finalize (opcodes_stack.check_drop): done here, not natively (the
        # rewritten frame's slot of that name is not the one handed on); the dropped value's
        # slot is then released before the resume call (graph_call._released)
        targets = tuple(instr.arg) if name == "STORE_FAST_STORE_FAST" else (instr.arg,)
        drops = _dropped_slots(tx, targets)
        if name != "DELETE_FAST":
            for target in targets:
                value = stack.pop()
                if isinstance(value, NullValue):
                    live.pop(target, None)
                else:
                    live[target] = value
        else:
            live.pop(instr.arg, None)
        is_call, pops, pushes, native, kind = False, 0, 0, [], "plain"
    elif is_call:
        native, pops = rules.native_call(instr, tx.kw_names or ())
        pushes, kind = 1, "plain"
    elif rules.is_cond_jump(instr):
        pops, pushes, native, kind = 1, 0, [instr], "jump"
    elif rules.is_for_iter(instr):
        pops, pushes, native, kind = 1, 0, [instr], "for_iter"
    elif name == "RAISE_VARARGS":
        pops, pushes, native, kind = instr.arg, 0, [instr], "raise"
    elif rules.is_with_enter(instr):  # manager -> __exit__, __enter__()
        pops, pushes, native, kind = 1, 2, [instr], "plain"
    else:
        pre, post = instr.pre_and_post_stack_effect()
        pops, pushes, native, kind = -pre, post, [instr], "plain"
        if pushes < 0 or pops < 0:
            raise Unsupported(f"cannot break at {name}", breakable=False)
    if pops > len(stack):
        raise Unsupported(f"stack underflow at {name}", breakable=False)
    # CALL_FUNCTION_EX needs its [NULL, callable] pair as it is: split, it would call self
    # (`obj.method(x, *args, **kwargs)` whose callee broke called `obj`)
    stack = _split_methods(stack, keep=len(stack) - pops if name == "CALL_FUNCTION_EX" else None)
    jump_pc = -1
    if kind == "jump":
        jump_pc = tx.info.label_pc[instr.arg]
    elif kind == "for_iter":
        jump_pc = tx.info.for_iter_exit_pc(instr.arg)
    if native_rest:
        # inside a try body or a Python with block: a step code runs the instruction (for a
        # call, from its KW_NAMES / PRECALL where the version has them) under the original
        # exception table, and the frame goes on in a resume function after it
        start = tx.pc - (len(native) - 1 if is_call else 0)
        site = BreakSite(kind="native_rest", native=[], deep=stack, top=[], pushes=0, locals=live,
                         cells=cells)
        site.next_pc = start
        site.step = Step(start, tx.pc, kind, pops, pushes, tx.pc + 1, jump_pc)
        return site
    if is_call and _raise_follows(tx):
        # `raise Error(...)` outside any try: the call and the raise run in the rewritten
        # frame itself, not in a resume function reached through the trampoline, whose
        # frames would then be the raising frame's f_back (test_exceptions's
        # testSettingException reads tb.tb_frame.f_back of an exception's __init__)
        native, kind, pushes = native + [tx.instrs[tx.pc + 1]], "raise", 0
    deep, top = stack[: len(stack) - pops], stack[len(stack) - pops:]
    site = BreakSite(kind=kind, native=native, deep=deep, top=top, pushes=pushes, locals=live,
                     cells=cells, grad_restore=_enclosing_grad_restore(deep),
                     number_items=[isinstance(v, ScalarValue) for v in deep],
                     number_locals=frozenset(n for n, v in tx.locals.items() if _run_time_number(tx, v)),
                     drops=drops)
    site.next_pc = tx.pc + 1
    site.jump_pc = jump_pc
    return site


def _live_locals(local_values):
    """name -> the Value a break hands on, or None: still the unread argument in its slot."""
    live = {}
    for n, v in local_values.items():
        own_slot = isinstance(v, Lazy) and isinstance(v.source, LocalSource) and v.source.name == n
        live[n] = None if own_slot else _carried(v)
    return live


def _carried(v):
    """A value the break hands on: an unread argument on the stack or under another name
    (opcodes_stack.LOAD_FAST) is loaded from its slot, with no guard on what it is."""
    if not isinstance(v, Lazy):
        return v
    carried = ConstValue(v.real, v.source)
    carried.by_type = True  # rebuilt from its source, never used as a constant
    return carried


def _run_time_number(tx, v):
    """A local this translation holds as a run-time number: a graph value, or an argument
    still unread in its slot that it takes as a number input (`a3` in its dynamic set)."""
    if isinstance(v, Lazy):
        return type(v.real) in (int, float) and v.source is not None and v.source.expr() in tx.ctx.dynamic
    return isinstance(v, ScalarValue)


def _raise_follows(tx):
    """The instruction right after the one at pc is `raise <it>` (RAISE_VARARGS 1)."""
    nxt = tx.instrs[tx.pc + 1] if tx.pc + 1 < len(tx.instrs) else None
    return isinstance(nxt, Instr) and nxt.name == "RAISE_VARARGS" and nxt.arg == 1


def _split_methods(stack, keep=None):
    """[NULL, bound method] (3.13: [bound method, NULL]) -> [function, self]: the same two
    stack slots, the same CALL, and a resume function then receives a stable function
    object instead of a fresh bound method (which would fail an identity guard on every
    call)."""
    out = list(stack)
    null_at, method_at = (0, 1) if rules.null_before_callable else (1, 0)
    for i in range(len(out) - 1):
        pair = out[i:i + 2]
        v = pair[method_at]
        if i != keep and isinstance(pair[null_at], NullValue) and isinstance(v, MethodValue) and \
                isinstance(v.fn, ConstValue):
            out[i], out[i + 1] = v.fn, v.self_value
    return out


def _finish(ctx, code, f_globals, tx, result, site, breaks, options, start):
    graph = ctx.graph
    live = []
    if site is None:
        _collect_graph_values(result, live)
    else:
        for v in site.handed_on():
            _collect_graph_values(v, live)
        for cell in site.cells:  # the frame's own cells go to the resume function
            _collect_graph_values(cell, live)
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
    number_graph = None
    if gm is not None:
        used = {n for n in gm.graph.nodes if n.op == "placeholder"}
        inputs = [v for v in inputs if v.node in used]
    if gm is not None and _number_arithmetic(gm, inputs):
        # no tensor in it: the rewritten code computes it inline, with no graph call
        compiled, number_graph = gm, gm.graph
    elif gm is not None:
        example_inputs = ExampleInputs(inputs)  # fakes made only if the backend looks
        t0 = time.perf_counter()
        compiled = _never_translated(options.backend(gm, example_inputs), options.backend)
        compile_seconds = time.perf_counter() - t0
        example_inputs.release()
        gm.example_inputs = example_inputs
        graphs.append(gm)
    plan = CodePlan(
        code=code, f_globals=f_globals, graph_fn=compiled, graph_inputs=inputs, number_graph=number_graph,
        pinned_inputs=[ctx.guards.pinned_ref(v.source) for v in inputs],
        output_index={v.node: i for i, v in enumerate(outputs)},
        side_effects=list(graph.side_effects), mutated=list(ctx.mutated),
        closure_check=ctx.guards.closure_predicate(), return_value=result, site=site,
        in_resume=is_resume_code(code), undone_on_error=autocast.STATE_SWITCHES,
        global_state_ops=generator_cm.RNG_STATE_OPS)
    new_code = build_code(plan)
    return FrameTranslation(
        graphs=graphs, guard=ctx.guards.build(), code=new_code, breaks=breaks,
        resume_functions=list(site.resume_codes) if site else [],
        guard_descriptions=ctx.guards.describe(), translate_seconds=translate_seconds,
        compile_seconds=compile_seconds, outcomes=list(ctx.guards.outcomes))


# what Python-number arithmetic on run-time numbers records (operators.py, builtins_ops.py)
_NUMBER_OPS = frozenset([abs, min, max, int, float, bool, round, divmod, pow, torch.sym_max, torch.sym_min,
                         torch.sym_float, torch.sym_int, torch.sym_not])
_NUMBER_MODULES = ("_operator", "math")


def _number_arithmetic(gm, inputs):
    """A graph of Python-number arithmetic only (`total += v * 2 - 1` on a resume function's
    float inputs): every input a number and every node a Python number operation. It is
    spelled as plain bytecode (codegen `number_graph`): a graph call would cost more than
    the arithmetic, once per iteration of a loop that breaks."""
    if not all(isinstance(v, ScalarValue) for v in inputs if v.node.users):
        return False
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        target = node.target
        if node.op != "call_function" or node.kwargs or not (
                target in _NUMBER_OPS or getattr(target, "__module__", None) in _NUMBER_MODULES):
            return False
        if any(isinstance(a, torch.Tensor) for a in list(node.args) + list(node.kwargs.values())):
            return False
    return True


def _collect_graph_values(v, out, depth=0, seen=None):
    # seen: a value reached twice is walked once (a list holding a list twice, 50 deep,
    # was 2**50 steps)
    seen = set() if seen is None else seen
    if depth > 50 or id(v) in seen:
        return
    seen.add(id(v))
    if type(v) is tuple:  # a FormattedValue part
        for c in v:
            _collect_graph_values(c, out, depth + 1, seen)
        return
    if not type(v).__module__.startswith("terra_dyn"):
        return  # a real object (a ConstValue's value, its items): holds no graph value, and
        # reading its attributes here would run its user code
    if isinstance(v, (TensorValue, ScalarValue)):
        out.append(v)
        return
    for attr in ("items", "attrs", "args", "kwargs", "value", "obj", "fn", "self_value", "content", "parts"):
        if attr == "items" and isinstance(v, ListValue):
            child = v.known_items()  # never realize a lazy list just to look at it
        else:
            child = getattr(v, attr, None)
        if child is None or child is v:
            continue
        # by type, through the builtin methods: `child` may be a user object (a ConstValue's value)
        items = dict.values(child) if isa(child, dict) else list.__iter__(child) if isa(child, list) \
            else tuple.__iter__(child) if isa(child, tuple) else None
        if items is not None:
            for c in items:
                _collect_graph_values(c, out, depth + 1, seen)
        else:
            _collect_graph_values(child, out, depth + 1, seen)
