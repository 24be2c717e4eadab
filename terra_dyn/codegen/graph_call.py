"""The rewritten code object: call the compiled graph, replay effects, return or resume.

    COPY_FREE_VARS / RESUME
    [closure check (unless the hook runs it): if the closure's values changed, run the original]
    ___graph_out = compiled(<graph inputs loaded from their sources>)   (protected, see below)
    <replayed side effects: print(...), obj.attr = v, xs[:] = [...]>
    ending:
        return <rebuilt value>                                    (no break)
      | <rebuild the consumed stack items> <native instruction>     (graph break)
        return run_resume(R, <stack>, <locals>)   or   Continue(R, ...) in a resume frame

The signature is flattened (docs/CONTRACTS.md section 1): the argument slots of the
original, positionally. Everything is straight-line; a cached call of a small function
costs one Python-level call of the compiled graph plus a few loads.

A graph that raises at run time (an out-of-range index tensor, a bad target, an op not
implemented for a dtype: errors fake tensors cannot see) leaves through an exception-table
handler (zero cost until it fires; see GraphErrorRerun): nothing the segment does in Python
has happened yet, so the segment runs again natively (the original code with the same
argument slots, or the resume code with the same arguments) and raises the user's error at
the user's line, running its except/finally blocks once, as eager does.

Every call, jump, method call, prologue and return is spelled by the version seam
(terra_dyn/seam), so the same plan assembles on 3.11, 3.12 and 3.13. The plan's values
rebuild themselves (value.rebuild(r), reconstruct.py) and its side-effect records replay
themselves (effect.replay(r)): this package never imports terra_dyn.translate.

Example (f(x, y) = relu(x) + y, no breaks; 3.11's spelling of the call):
    PUSH_NULL; LOAD_CONST <compiled>; LOAD_FAST x; LOAD_FAST y; PRECALL 2; CALL 2
    STORE_FAST ___graph_out; LOAD_FAST ___graph_out; LOAD_CONST 0; BINARY_SUBSCR; RETURN_VALUE
"""
import dis
import inspect
import types
from dataclasses import dataclass, field
from typing import Any, Dict, List

from bytecode import Bytecode, FreeVar, Instr, Label, TryBegin, TryEnd

from .. import config
from ..errors import Unsupported
from ..seam import rules
from . import resume, resume_chain
from .graph_errors import GraphErrorRerun, module_of
from .number_graph import number_graph_code
from .reconstruct import OUT, Reconstructor, call_const
from .signature import argument_slot_names, flatten_signature

try:
    from .. import _C
except ImportError:
    _C = None


@dataclass
class BreakSite:
    """Where the frame leaves translated code: the native instruction and what follows."""

    kind: str  # "plain", "jump", "for_iter", "raise" or "native_rest" (resume at the instruction)
    native: List[Any]  # bytecode Instr(s) run natively
    deep: List[Any]  # stack values below what the native instruction consumes
    top: List[Any]  # stack values the native instruction consumes
    pushes: int  # results the native instruction leaves (plain kind)
    locals: Dict[str, Any]  # live locals: name -> Value (or None: still in its slot)
    next_pc: int = -1  # resume here after the native instruction (fallthrough)
    jump_pc: int = -1  # resume here when the native jump is taken
    resume_codes: List[Any] = field(default_factory=list)
    cells: List[Any] = field(default_factory=list)  # the frame's own cells, passed on as cells
    step: Any = None  # native_rest: the resume.Step a step code runs (see codegen/resume.py)
    # inside `with torch.no_grad():` blocks open at the break: the callable restoring the
    # grad mode the outermost was entered with (translate/frame.py finds it), else None
    grad_restore: Any = None
    # what the translation held as run-time numbers (graph values, not constants): the deep
    # stack items (one bool each) and the names of live locals; resume functions take them
    # as graph inputs from their first translation (resume.note_fresh_args)
    number_items: List[bool] = field(default_factory=list)
    number_locals: frozenset = frozenset()
    # a drop that may finalize (translate/drops.py): the names the instruction lets go of, in
    # CPython's order (STORE_FAST_STORE_FAST: the first name's old value dies first)
    drops: tuple = ()
    # a break inside inlined callees (translate/nested_breaks.py): the callee frames below
    # this one, the innermost last (resume_chain.ChainLevel). Then native / top / pushes /
    # next_pc / jump_pc are the innermost's, deep / locals / cells this frame's, and
    # caller_pc the instruction after this frame's call
    chain: List[Any] = field(default_factory=list)
    caller_pc: int = -1

    def handed_on(self):
        """The values the rewritten code rebuilds: stack items, live locals (not the ones still
        in their slots), the chain's."""
        out = list(self.deep) + list(self.top) + [v for v in self.locals.values() if v is not None]
        for level in self.chain:
            out += list(level.deep) + list(level.locals.values())
        return out


@dataclass
class CodePlan:
    code: types.CodeType
    f_globals: dict
    graph_fn: Any  # compiled callable or None
    graph_inputs: list  # Values (with sources) in placeholder order
    output_index: dict  # fx node -> output position
    side_effects: list  # records with replay(r) -> instructions (translate/side_effects.py)
    mutated: list  # ListValue / DictValue with sources: write_back(r, target) -> instructions
    closure_check: Any  # callable over the closure values or None
    return_value: Any = None  # Value, when the frame returns
    site: BreakSite = None  # when the frame breaks
    in_resume: bool = False
    # per graph input, a weakref.ref that the guard pins its source to (a parameter), or
    # None: the code, run only right after the guard passed, loads ref() instead of the
    # source's chain from the argument (200 parameters of a 12-layer BERT: ~80 us a call)
    pinned_inputs: list = None
    # node targets the translator inserts, for GraphErrorRerun: state switches a raising graph
    # undoes (autocast blocks) and ones changing global state (RNG)
    undone_on_error: frozenset = frozenset()
    global_state_ops: frozenset = frozenset()
    # an fx.Graph of Python-number arithmetic only: computed inline instead of calling
    # graph_fn (number_graph.py); graph_fn stays for the error handler
    number_graph: Any = None


def run_original(code, f_globals, closure, args):
    """The original (or resume) code, natively: when a closure check fails or the graph raised
    (GraphErrorRerun). Calls it makes still reach the hook, so callees stay optimized."""
    return types.FunctionType(code, f_globals, code.co_name, None, closure)(*args)


def _graph_of(plan):
    """The fx.Graph behind the compiled callable: the GraphModule's, or reached via nodes."""
    gm = module_of(plan.graph_fn)
    if gm is not None:
        return gm.graph
    for v in plan.graph_inputs:
        return v.node.graph
    for node in plan.output_index:
        return node.graph
    return None


def _closure_tuple(code):
    if not code.co_freevars:
        return [Instr("LOAD_CONST", None)]
    return [ins for n in code.co_freevars for ins in rules.load_closure(n)] + [
        Instr("BUILD_TUPLE", len(code.co_freevars))]


def build_code(plan: CodePlan) -> types.CodeType:
    code = plan.code
    rec = Reconstructor(plan.output_index)
    slots = list(argument_slot_names(code))
    out = rules.prologue(len(code.co_freevars))
    original = None
    if plan.closure_check is not None or plan.graph_fn is not None:
        # the code run natively instead of this one (a copy: the hook must still see `code`)
        original = flatten_signature(code)
        if _C is not None:
            _C.skip_code(original)
    hook_checked = _closure_guard(plan)
    if plan.closure_check is not None and hook_checked is None:
        out += _closure_check(plan, slots, original)
    handler = allowed = None
    if plan.graph_fn is not None:
        allowed = _allowed(plan)
        out += _pinned_inputs(plan)
        pinned = plan.pinned_inputs or [None] * len(plan.graph_inputs)
        loads, item = [], 0
        tail = _pinned_tail(pinned)
        for value, ref in zip(plan.graph_inputs[:len(pinned) - tail], pinned) if tail else zip(plan.graph_inputs, pinned):
            if ref is None:
                loads += value.source.load()
            elif _C is not None:
                loads += [Instr("LOAD_FAST", PINNED), Instr("LOAD_CONST", item), Instr("BINARY_SUBSCR")]
                item += 1
            else:
                loads += call_const(ref, [], 0)
        handler = Label()
        entry = TryBegin(handler, push_lasti=False)
        if plan.number_graph is not None:
            loads = [list(v.source.load()) for v in plan.graph_inputs]
            out += [entry] + number_graph_code(plan.number_graph, loads) + [TryEnd(entry)]
        elif tail:  # the parameters last: passed as the tuple referents() returned
            out += [entry] + rules.call_const_star(plan.graph_fn, loads, len(pinned) - tail,
                                                   [Instr("LOAD_FAST", PINNED)]) + [TryEnd(entry)]
            out.append(Instr("STORE_FAST", OUT))
        else:
            out += [entry] + call_const(plan.graph_fn, loads, len(plan.graph_inputs)) + [TryEnd(entry)]
            out.append(Instr("STORE_FAST", OUT))
    if plan.side_effects or plan.mutated:
        out += rec.pin_all(_rebuilt_values(plan))
    out += _replay(rec, plan)
    returned = None
    if plan.site is None:
        returned = rec.push(plan.return_value)
        out += returned + rules.return_value()
    else:
        out += _break_ending(rec, plan)
    if handler is not None:
        out += _graph_error_handler(plan, slots, original, handler, allowed)
    _set_lines(out, code.co_firstlineno)
    bc = Bytecode(rules.split_fast_pairs(out))  # a replayed instruction names renumbered slots
    bc.name = code.co_name
    bc.qualname = code.co_qualname
    bc.filename = code.co_filename
    bc.first_lineno = code.co_firstlineno
    bc.argnames = slots
    bc.argcount = len(slots)
    bc.posonlyargcount = 0
    bc.kwonlyargcount = 0
    bc.freevars = list(code.co_freevars)
    bc.cellvars = []
    bc.flags = code.co_flags & ~(inspect.CO_VARARGS | inspect.CO_VARKEYWORDS)
    rewritten = bc.to_code()
    if hook_checked is not None:
        _C.set_closure_guard(rewritten, hook_checked)
    spec = _direct_spec(plan, slots, returned, allowed)
    if spec is not None:
        _C.set_direct_call(rewritten, spec)
    return rewritten


def _ops(instrs):
    return [(i.name, i.arg) for i in instrs if isinstance(i, Instr)]


def _direct_spec(plan, slots, returned, allowed):
    """When the rewritten code is only `return graph(<argument slots>, *<pinned>)[k]`, what the
    hook needs to make that call itself (csrc/direct_call.c): (graph, slot indexes, weakrefs
    of the pinned inputs or None, k, allowed); else None. Saves the rewritten Python frame
    on every cached call of such a frame (a small function, a module's whole forward)."""
    code = plan.code
    if (_C is None or not config.direct_calls or plan.graph_fn is None or plan.number_graph is not None
            or plan.closure_check is not None or plan.side_effects or plan.mutated or plan.site is not None
            or code.co_freevars or code.co_cellvars):
        return None
    ret = _ops(returned)
    if (len(ret) != 3 or ret[0] != ("LOAD_FAST", OUT) or ret[1][0] != "LOAD_CONST" or type(ret[1][1]) is not int
            or ret[2][0] != "BINARY_SUBSCR"):
        return None
    pinned = plan.pinned_inputs or [None] * len(plan.graph_inputs)
    tail = _pinned_tail(pinned)
    if len(pinned) != len(plan.graph_inputs) or sum(r is not None for r in pinned) != tail:
        return None
    indexes = []
    for value in plan.graph_inputs[:len(pinned) - tail]:
        load = _ops(value.source.load()) if value.source is not None else []
        if len(load) != 1 or load[0][0] != "LOAD_FAST" or load[0][1] not in slots:
            return None
        indexes.append(slots.index(load[0][1]))
    refs = tuple(pinned[len(pinned) - tail:]) if tail else None
    return plan.graph_fn, tuple(indexes), refs, ret[1][1], allowed


PINNED = "___pinned_inputs"


def _pinned_inputs(plan):
    """Graph inputs the guard pins weakly (parameters; GuardSet.pinned_ref) are read right
    after it passed, all in one C call: `___pinned_inputs = referents((ref0, ref1, ...))`,
    then each is an item of it (about 200 for a 12-layer BERT: 30 ns a Python call each)."""
    refs = tuple(r for r in plan.pinned_inputs or () if r is not None)
    if _C is None or not refs:
        return []
    return call_const(_C.referents, [Instr("LOAD_CONST", refs)], 1) + [Instr("STORE_FAST", PINNED)]


def _pinned_tail(pinned):
    """How many graph inputs at the end are all the pinned ones (then the call passes
    referents()' tuple as is), or 0."""
    if _C is None:
        return 0
    n = sum(r is not None for r in pinned)
    return n if n and all(r is not None for r in pinned[len(pinned) - n:]) else 0


def _set_lines(instrs, lineno):
    for ins in instrs:
        # an instruction of the user's code keeps its location, even "none" (a code object
        # whose line table was replaced shows f_lineno None: test_exceptions' PEP626Tests)
        if isinstance(ins, Instr) and ins.lineno is None and ins.location is None:
            ins.lineno = lineno


def _run_original(plan, slots, original):
    """Instructions returning run_original(original, globals, closure, (slots...))."""
    return call_const(run_original, [Instr("LOAD_CONST", original), Instr("LOAD_CONST", plan.f_globals)]
                      + _closure_tuple(plan.code) + [Instr("LOAD_FAST", s) for s in slots]
                      + [Instr("BUILD_TUPLE", len(slots))], 4) + rules.return_value()


def _closure_guard(plan):
    """The closure check's Guard when it is one (translate/guards.py closure_predicate: a
    Guard's bound check), which the hook then runs on the frame's cells before the code
    (csrc/eval_frame.c closure_holds; a transformers wrapper's `func` cell: a Python-level
    Guard call per model call saved); else None, and the code checks it itself."""
    check = plan.closure_check
    guard = getattr(check, "__self__", None)
    if _C is None or not isinstance(guard, _C.Guard) or getattr(check, "__name__", None) != "check":
        return None
    return guard


def _closure_check(plan, slots, original):
    """The check over the closure's values; a free variable whose cell is still empty (a class
    the function names, defined after it runs: test_descr's MroTest) makes LOAD_DEREF raise
    NameError, and the original code runs instead, raising it where the user reads it."""
    code = plan.code
    ok, handler, reraise = Label(), Label(), Label()
    loads = [Instr("LOAD_DEREF", FreeVar(n)) for n in code.co_freevars]
    entry = TryBegin(handler, push_lasti=False)
    # handler stack: [exc]; COPY 3 takes it from under the callable and its NULL
    return [entry] + call_const(plan.closure_check, loads, len(loads)) + [TryEnd(entry)] + \
        rules.pop_jump("true", ok) + _run_original(plan, slots, original) + \
        [handler] + call_const(_is_name_error, [Instr("COPY", 3)], 1) + rules.pop_jump("false", reraise) + \
        [Instr("POP_TOP")] + _run_original(plan, slots, original) + [reraise, Instr("RERAISE", 0), ok]


def _is_name_error(exc):
    return isinstance(exc, NameError)


def _allowed(plan):
    """The handler's question for a graph that raised: may the segment run again natively?"""
    rerun = GraphErrorRerun(plan.code, plan.graph_fn, _graph_of(plan), plan.undone_on_error,
                            plan.global_state_ops)
    # hook off while it decides: the report's dataclasses are no user code to translate
    return rerun.allowed if _C is None else _C.DisabledCallable(rerun.allowed)


def _graph_error_handler(plan, slots, original, handler, allowed):
    """stack: [exc]. Re-run the segment natively if allowed, else re-raise exc as it is.
    No PUSH_EXC_INFO: the re-run must not see exc as the exception being handled (an error
    it raises would get exc as its __context__)."""
    reraise = Label()
    # COPY 3: the exception, under the callable and its NULL in either order
    return [handler] + call_const(allowed, [Instr("COPY", 3)], 1) + rules.pop_jump("false", reraise) + [
        Instr("POP_TOP")] + _run_original(plan, slots, original) + [reraise, Instr("RERAISE", 0)]


def _rebuilt_values(plan):
    """What the code rebuilds after the replayed effects: the return value, or at a break
    the stack, the locals and the cells handed on."""
    if plan.site is None:
        return [plan.return_value]
    site = plan.site
    return site.handed_on() + list(site.cells)


def _replay(rec, plan):
    out = []
    # the containers to write back, fetched before the replayed stores: `h.l.append(1);
    # h.l = [5]` must write into the old list, not into whatever `h.l` names afterwards
    for i, container in enumerate(plan.mutated):
        out += list(container.source.load()) + [Instr("STORE_FAST", f"___target{i}")]
    for effect in plan.side_effects:
        out += effect.replay(rec)
    for i, container in enumerate(plan.mutated):
        out += container.write_back(rec, [Instr("LOAD_FAST", f"___target{i}")])
    return out


def _break_ending(rec, plan):
    site = plan.site
    out = []
    # containers made in this frame are built once before any branch, so that the stack,
    # the locals and both sides of a native jump all refer to the same objects
    for v in site.handed_on() + site.cells:
        out += rec.materialize(v)
    for v in site.handed_on():
        out += rec.pin(v)
    if site.kind == "native_rest":
        # the rest of the frame runs natively, under its own exception table
        call = _resume_call(rec, plan, site.next_pc, [])
        if _C is not None:
            _C.skip_code(site.resume_codes[-1])
        return out + call
    for v in site.top:
        out += rec.push(v)
    native = [i.copy() for i in site.native]
    restore = site.grad_restore
    # inside `with torch.no_grad():` split by this break: if the native instruction raises,
    # restore the grad mode the block was entered with, then re-raise
    handler = Label() if restore is not None else None
    if site.kind in ("plain", "raise"):
        native = _protected(native, handler)
    if site.kind == "raise":
        return out + native + _restore_handler(handler, restore)
    return out + _released(plan, _native_and_resume(rec, plan, native, handler), rec.temps.values()) + \
        _restore_handler(handler, restore)


def _native_and_resume(rec, plan, native, handler):
    site = plan.site
    if site.kind == "plain":
        temps = [f"___result{i}" for i in range(site.pushes)]
        return native + [Instr("STORE_FAST", t) for t in reversed(temps)] + \
            _resume_call(rec, plan, site.next_pc, temps)
    jump = site.native[-1]
    if site.kind == "jump":
        taken = Label()
        return _protected([rules.forward_variant(jump, taken)], handler) + \
            _resume_call(rec, plan, site.next_pc, []) + [taken] + _resume_call(rec, plan, site.jump_pc, [])
    if site.kind == "for_iter":
        done = Label()
        return _protected([rules.forward_variant(jump, done)], handler) + [
            Instr("STORE_FAST", "___item"), Instr("STORE_FAST", "___iter")] + \
            _resume_call(rec, plan, site.next_pc, ["___iter", "___item"]) + \
            [done] + rules.for_iter_exit() + _resume_call(rec, plan, site.jump_pc, [])
    raise Unsupported(f"break kind {site.kind}")


_LOCAL_OPS = frozenset(dis.opname[op] for op in dis.haslocal)


def _local_names(arg):
    """The local names an instruction's argument names: one, two for 3.12+'s pairs
    (LOAD_FAST_LOAD_FAST), a cell's on 3.13 (LOAD_FAST of a FreeVar)."""
    if isinstance(arg, tuple):
        return [n for a in arg for n in _local_names(a)]
    return [getattr(arg, "name", arg)]


def _released(plan, tail, temps=()):
    """`tail` (the native instruction and the resume calls) after DELETE_FAST of each of the
    frame's arguments that nothing in `tail` reads: a name the user deleted or rebound
    (`del c; gc.collect()`), a saved stack item the segment consumed. Plain Python no longer
    holds it when the native instruction runs (a weakref is dead, `__del__` has run); the
    rewritten frame would hold it until the resume call. So do the temps nothing in `tail`
    reads, first (set to None: one may be unbound): `[f(y) for y in [a, b]]` on 3.11 called
    the comprehension with iter(___obj0) while ___obj0 kept the list, whose items then died
    after the call, in another order."""
    read = {n for i in tail if isinstance(i, Instr) and i.name in _LOCAL_OPS for n in _local_names(i.arg)}
    if "__class__" in plan.code.co_freevars and plan.code.co_argcount:
        read.add(plan.code.co_varnames[0])  # a native zero-argument super() reads slot 0
    dead = [n for n in argument_slot_names(plan.code) if n not in read]
    order = plan.site.drops  # the dropped names last, in the order the instruction drops them
    dead.sort(key=lambda n: order.index(n) + 1 if n in order else 0)
    unread = [ins for t in temps if t not in read for ins in (Instr("LOAD_CONST", None), Instr("STORE_FAST", t))]
    return unread + [Instr("DELETE_FAST", n) for n in dead] + tail


def _protected(instrs, handler):
    if handler is None:
        return instrs
    entry = TryBegin(handler, push_lasti=False, stack_depth=0)
    return [entry] + instrs + [TryEnd(entry)]


def _restore_handler(handler, restore):
    if handler is None:
        return []
    # stack: [exception]; restore(None, None, None); re-raise the exception
    return [handler] + call_const(restore, [Instr("LOAD_CONST", None)] * 3, 3) + [
        Instr("POP_TOP"), Instr("RERAISE", 0)]


def _resume_call(rec, plan, target_pc, temps):
    site = plan.site
    if site.chain:
        code, args, nargs = resume_chain.chain_resume(rec, site, plan.code, target_pc, temps)
        site.resume_codes.append(code)
        return _call_resume(rec, plan, code, args, nargs)
    layout = [v.is_null for v in site.deep] + [False] * len(temps)
    names = sorted(n for n in site.locals if not n.startswith("___"))
    if site.step is not None:
        code = resume.make_step_code(plan.code, plan.f_globals, site.step, layout, names)
    else:
        code = resume.make_resume_code(plan.code, target_pc, layout, names)
    site.resume_codes.append(code)
    kept = [i for i, v in enumerate(site.deep) if not v.is_null]
    below = len(kept)
    numbers = [j for j, i in enumerate(kept) if i < len(site.number_items) and site.number_items[i]]
    numbers += range(below, below + len(temps))
    numbers += [below + len(temps) + k for k, n in enumerate(names) if n in site.number_locals]
    resume.note_fresh_args(code, numbers)
    args = []
    for v in site.deep:
        if not v.is_null:
            args += rec.push(v)
    args += [Instr("LOAD_FAST", t) for t in temps]
    for n in names:
        value = site.locals[n]
        args += [Instr("LOAD_FAST", n)] if value is None else rec.push(value)
    nargs = sum(not x for x in layout) + len(names)
    return _call_resume(rec, plan, code, args, nargs)


def _call_resume(rec, plan, code, args, nargs):
    """Instructions returning the resume function's result (or Continue in a resume frame)."""
    site = plan.site
    if not code.co_freevars:
        fn = resume.resume_function(code, plan.f_globals)
        if plan.in_resume:
            return resume.moved_continue_call(fn, args, nargs) + rules.return_value()
        return call_const(resume.run_function, [Instr("LOAD_CONST", fn)] + resume.moved_tuple(args, nargs), 2) + \
            rules.return_value()
    helper = resume.continue_at if plan.in_resume else resume.run_resume
    closure = [ins for n in plan.code.co_freevars for ins in rules.load_closure(n)]
    for cell in site.cells:
        closure += rec.push(cell)
    closure.append(Instr("BUILD_TUPLE", len(plan.code.co_freevars) + len(site.cells)))
    pre = [Instr("LOAD_CONST", code), Instr("LOAD_CONST", plan.f_globals)]
    if not plan.in_resume and resume.takes_closure(code):  # the closure moved in as ___closure
        return call_const(helper, pre + [Instr("LOAD_CONST", None)] + resume.moved_tuple(args + closure, nargs + 1),
                          4) + rules.return_value()
    return call_const(helper, pre + closure + resume.moved_tuple(args, nargs), 4) + rules.return_value()
