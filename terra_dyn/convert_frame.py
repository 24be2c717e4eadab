"""The hook's callback: turn a frame into a cache entry (guard + rewritten code).

    hook (C) --miss--> callback(frame)
        library code (stdlib, torch, terra_dyn, tooling) -> SKIP (code_location.py)
        recompile limit reached                          -> SKIP, one warning naming the guard
        translate.translate_frame(frame, options)        -> graphs, guard, code, breaks
            record graphs / breaks / guards / recompiles (report.py)
            -> CacheEntry(guard, code)                    (the hook runs it now)
        any failure inside terra_dyn                     -> record a Fallback, SKIP
            (strict: raise an error naming the user's file and line)

A recompile (a miss on a code object that has entries) records which guard failed (guard_changes.py); a
number whose value changed (an argument, or a deeper source such as `a0.sum`, an
AverageMeter's running total, or a global) becomes a graph input instead of a constant
on the next translation (so a loop counter handed to a resume function, or a statistic
updated every step, does not exhaust the recompile limit). A number that changed on an
object's attribute or item is noted for every code object that reads it next
(translate/changing.py: the drop probability a train step saw change is an input of the
module's forward from its next translation on). If the new inputs make the translation
fail, it is retried with them constant (and they stay constant).
"""
import atexit
import gc
import sys
import warnings
import weakref

import torch

from . import _C, config, dynamic_marks, logs, recompiles, report, torch_compat, tracebacks
from .backends import backend_name, lookup
from .code_location import is_library_code  # noqa: F401  (the decision lives there)
from .codegen.resume import current_run, is_resume_code, original_code
from .guard_changes import _failing_guard, _fresh_floats, _note_dynamic, _own_guards, _slot_values, unit_size_miss
from .translate import FullgraphError, TranslateOptions, Unsupported, translate_frame
from .translate import changing
from .translate import unit_sizes
from .translate.graph_state import DynamicShapesFailed


@atexit.register
def _hook_off_at_exit():
    """Interpreter shutdown sets module globals to None while weakref callbacks and logging's
    cleanup still run Python frames: none of them may reach the translator then."""
    _C.set_eval_frame(None)


class TranslationError(RuntimeError):
    """strict mode: terra_dyn could not translate a frame (names the user's file and line)."""


_DICT_ITERATORS = tuple(type(it) for it in (iter({}), iter({}.values()), iter({}.items())))


def _iterates_sys_modules(frame, code):
    """`[m for m in sys.modules if ...]`: the comprehension's frame gets a live iterator over
    sys.modules, and translating imports modules (fake tensors, sympy), which would make the
    user's own next() raise "dictionary changed size". Such a frame runs as it is."""
    if not code.co_argcount:
        return False
    first = frame.f_locals.get(code.co_varnames[0])
    return type(first) in _DICT_ITERATORS and any(d is sys.modules for d in gc.get_referents(first))


_HEAP_WALKS = frozenset({"get_objects", "get_referrers", "get_referents"})


def _walks_the_heap(code):
    """Does the frame call gc.get_objects / get_referrers / get_referents? Then the objects
    that translating it, or what it calls, makes or holds would show in them (test_descr's
    test_slots counts gc.get_objects() around a loop of `g == g`, whose `__eq__` would be
    translated in between): the frame and its callees run with the hook off."""
    return not is_resume_code(code) and not _HEAP_WALKS.isdisjoint(code.co_names)


def _generated_by_library(code, frame):
    """Code made with exec() by a library (a dataclass's `__init__` in torch, namedtuple
    helpers): its filename is "<string>", its globals are the library module's."""
    if code.co_filename != "<string>":
        return False
    module_file = frame.f_globals.get("__file__") or ""
    return is_library_code(code.replace(co_filename=module_file)) if module_file else False


class CodeState:
    """What convert_frame remembers about one code object between its translations."""

    __slots__ = ("code_ref", "entries", "dynamic", "static", "pinned_sizes", "warned", "guards", "gains",
                 "as_written", "hook_off", "family_entries", "run", "run_entries", "outcomes", "flipped_at",
                 "unit_at")

    def __init__(self, code):
        # weakly: a function made and dropped in a loop must take its code, cache entries
        # and compiled graphs with it (its state goes when its code does)
        key = id(code)
        self.code_ref = weakref.ref(code, lambda _, key=key, state=self, forget=_forget: forget(key, state))
        self.entries = 0
        self.dynamic = set()
        self.static = set()  # numbers that broke the translation as graph inputs: constants
        self.pinned_sizes = set()  # those of `static` a DynamicShapesFailed named (_revive_pinned)
        self.warned = False
        self.guards = []
        self.gains = False  # of an original code: a translation of it or of a resume function
        # cut from it made a graph with tensor work
        self.as_written = False  # of an original code: it and its resume functions run as written
        self.hook_off = False  # ... and so does everything it calls (_specializes_per_iteration)
        self.family_entries = 0  # of an original code: translations of it and its resume functions
        self.run = None  # of a resume code: the call of its original (trampoline) it was last
        self.run_entries = 0  # translated in, and how many times in that call
        self.outcomes = set()  # guard texts that are a number branch's outcome (_rare_outcome)
        self.flipped_at = None  # _C.entry_calls() when such an outcome last flipped
        self.unit_at = None  # _C.entry_calls() when a symbolic size last met 0 or 1 (_rare_unit_size)


_states = {}  # id(code) -> CodeState (dropped when the code dies, before its id is reused)


def _forget(key, state, states=_states):
    if states.get(key) is state:
        del states[key]


def state_of(code):
    state = _states.get(id(code))
    if state is None or state.code_ref() is not code:
        state = _states[id(code)] = CodeState(code)
    return state


def reset():
    _states.clear()
    changing.reset()


_callbacks = weakref.WeakValueDictionary()  # (backend, fullgraph, strict, dynamic) -> callback


def make_callback(backend="auto", fullgraph=False, strict=False, dynamic=None):
    """The callback installed by `optimize` for one set of options: one per set of options,
    so that wrappers with the same options share translations and wrappers with other
    options never do (each cache entry checks that its own callback is the one installed)."""
    try:
        key = (backend, bool(fullgraph), bool(strict), dynamic)
        known = _callbacks.get(key)
    except TypeError:  # an unhashable backend object: a callback of its own
        key, known = None, None
    if known is not None:
        return known
    callback = _new_callback(backend, fullgraph, strict, dynamic)
    if key is not None:
        _callbacks[key] = callback
    return callback


def _new_callback(backend, fullgraph, strict, dynamic=None):
    compile_fn = lookup(backend)
    name = backend_name(backend)

    def callback(frame):
        code = frame.f_code
        if is_library_code(code) and not is_resume_code(code) or _generated_by_library(code, frame):
            return _C.SKIP
        disabled = torch_compat.disabled_frame(frame)  # a @torch.compiler.disable function's body
        if disabled is not None:
            return _C.OFF if disabled == "recursive" else _C.SKIP
        state = state_of(code)
        if not state.as_written and _walks_the_heap(code):
            state.as_written = state.hook_off = True
            report.record_as_written(report.Fallback(code.co_name, code.co_filename, code.co_firstlineno,
                                                     "it walks gc's heap: it and what it calls run as written"))
        if state.as_written:
            return _C.OFF if state.hook_off else _C.SKIP
        # translations made under this callback (backend, options): another wrapper's entries
        # of the same code are no recompile of this one, nor count towards its limit (a
        # benchmark running terra:interpreter and terra:cpu in one process counted each
        # first translation of the second as a recompile, and reached the limit twice as fast)
        own = _own_guards(state)
        if own:
            why = _failing_guard(state, frame, code)
            last = own[-1]
            family = state_of(original_code(code) or code)
            if not family.gains and family.family_entries >= 2:
                return _run_as_written(code, last, _slot_values(frame, code), why)
            if _specializes_per_iteration(state):
                return _run_as_written(code, last, _slot_values(frame, code), why, per_iteration=True)
            if _rare_outcome(state, last, frame, code):
                return _C.OFF
            if _rare_unit_size(state, own, frame, code):
                return _C.OFF
            why = recompiles.record(code, last, _slot_values(frame, code), why).cause()
            if len(own) >= config.recompile_limit:
                if not state.warned:
                    state.warned = True
                    warnings.warn(
                        f"terra_dyn: {code.co_name} ({code.co_filename}:{code.co_firstlineno}) was "
                        f"translated {len(own)} times (recompile_limit); running it eagerly from "
                        f"now on. The guard that kept failing: {why}", RuntimeWarning, stacklevel=2)
                return _C.SKIP
        if _iterates_sys_modules(frame, code):
            return None
        wanted, pinned = dynamic_marks.marked_sizes(_slot_values(frame, code), dynamic)
        state.static |= pinned
        before = frozenset(state.dynamic)
        if own:
            _note_dynamic(state, why, frame, code)
        else:
            state.dynamic |= _fresh_floats(frame, code) - state.static
        state.dynamic |= wanted - state.static  # user marks: symbolic from the first translation
        try:
            result = _translate(frame, state, compile_fn, name, fullgraph, before)
        except Exception as exc:
            return _fallback(code, exc, strict or fullgraph)
        # the entry is valid only under the callback that made it (backend, options): under
        # TERRA_DYN=1 that is the entry-point filter wrapping this function
        installed = _C.current_callback()
        guard = _C.Guard([("callback", installed)] + list(result.guard.checks), result.guard.fallback)
        state.entries += 1
        state.guards.append((installed, guard))
        family = state_of(original_code(code) or code)
        family.family_entries += 1
        family.gains = family.gains or any(map(_has_tensor_work, result.graphs))
        state.outcomes.update(result.outcomes)
        _count_run_entry(state, code)
        _record(code, result, name)
        tracebacks.note_translation(result.code, code)
        return _C.CacheEntry(guard, result.code)

    return callback


def _count_run_entry(state, code):
    """Count a resume code's translations per call of its original frame."""
    run = current_run() if is_resume_code(code) else None
    if run is None:
        return
    if state.run != run:
        state.run, state.run_entries = run, 0
    state.run_entries += 1


def _specializes_per_iteration(state):
    """A resume code asking for its third translation within one call of its original: a
    loop whose body breaks, resumed with another object every iteration (sdpoint's
    `for i, block in enumerate(self.blocks): if i + 1 == point:` resumes once per block,
    each a module of other shapes). Numbers and sizes that change become graph inputs at
    the first recompile, so a loop that can settle does so by its second translation; one
    that cannot would need a translation per iteration, and each block's own frames per
    instance and shape after it, spread over every call until the recompile limit."""
    return state.run is not None and state.run == current_run() and state.run_entries >= 2


def _rare_outcome(state, guard, frame, code):
    """Does this call flip the outcome of a branch on a number input that the last
    translation guarded (graph_state.decide), for the first time in config.rare_outcome_calls
    calls? Then it runs as written, untranslated: resnet50's `if self.iteration % print_freq
    == 0: log.info(...)` is taken one step in ten, and translating that way cost a
    translation at step 10. An outcome that flips again within those calls (a branch on
    `i % 2`, a threshold crossed for good) is translated at that second flip. So is the clamp
    of a slice bound on a symbolic size (symbolic_rules): gemma2's window cache cuts its first
    slice one token before its `is_full` branch flips. What it calls runs as written too (the
    hook off): the frames its translations inlined have no entries, and translating each of
    them for one call cost more than the call (gemma2's forward, 0.4 s)."""
    predicate = getattr(guard, "fallback", None)  # the ShapeEnv's facts are its expressions
    if not state.outcomes or not hasattr(predicate, "explain"):
        return False
    try:
        failed = predicate.explain(*_slot_values(frame, code))  # the first that fails
    except Exception:
        return False
    if failed not in state.outcomes:
        return False
    return _first_in_a_while(state, "flipped_at", code, f"`{failed}` is false this call")


def _first_in_a_while(state, slot, code, what):
    """Note this call in `state.<slot>`; True (and log why the frame runs as written) when the
    last such call was more than config.rare_outcome_calls entry calls ago."""
    now, last = _C.entry_calls(), getattr(state, slot)
    setattr(state, slot, now)
    if last is not None and now - last <= config.rare_outcome_calls:
        return False
    logs.fallback(report.Fallback(code.co_name, code.co_filename, code.co_firstlineno,
                                  f"{what}, for the first time in a while: it runs as written"))
    return True


def _rare_unit_size(state, own, frame, code):
    """Does this call miss only because a size its symbolic entries assumed to be at least 2
    (0/1 specialization) holds 1 (or 0), for the first time in config.rare_outcome_calls
    calls? Then it runs as written, with the hook off for what it calls (their own entries
    were made inside this frame's translation, not for a 1): faster_rcnn's box count per image
    is 1..5, its forward and select_training_samples settle symbolic by step 3 and were
    translated again, 2-5 s each, whenever an image brought a single box (step 12, ...).
    A 1 that comes back within those calls (a last batch of one, a one-token decoder
    step) is translated as before: a static 1 beside the symbolic entries."""
    args = _slot_values(frame, code)
    if not any(unit_size_miss(guard, args) for guard in own):
        return False
    return _first_in_a_while(state, "unit_at", code, "a symbolic size is 1 (or 0) this call")


def _run_as_written(code, guard, args, why, per_iteration=False):
    """A recompile of a function none of whose translations so far (two at least, its
    resume functions' included) did tensor work (no graph, or graphs of number arithmetic
    and size reads only): translating it again per value gains nothing over Python. faster_rcnn's NMS in numpy and the `<dictcomp>` that
    logs its losses recompiled on every new number: from now on the function runs as
    written. Its own rewritten code is dropped too (a resume function is reached only
    from it), so the next call runs the original from the top.

    per_iteration (_specializes_per_iteration): the function and everything it calls run
    as written, with the hook off (_C.OFF): the frames its loop calls would otherwise be
    translated per iteration in turn."""
    original = original_code(code)
    state = state_of(original or code)
    state.as_written = True
    state.hook_off = per_iteration
    if original is not None:
        _C.clear_code(original)
    try:
        why = "; ".join(change.text() for change in recompiles.describe(code, guard, args)) or why
    except Exception:  # a report must never break the user's call
        pass
    reason = (f"its loop needs a new translation on every iteration ({why}): it and what it calls run as written"
              if per_iteration else
              f"none of its translations did tensor work, and {why}: it runs as written")
    report.record_as_written(report.Fallback(code.co_name, code.co_filename, code.co_firstlineno, reason))
    return _C.OFF if per_iteration else _C.SKIP


def _has_tensor_work(gm):
    return any(n.op in ("call_function", "call_method", "call_module")
               and isinstance(n.meta.get("example_value"), torch.Tensor) for n in gm.graph.nodes)


def _translate(frame, state, compile_fn, name, fullgraph, before):
    """Translate with the numbers noted as changing as graph inputs; if those new inputs
    break the translation (a number used as a size or an index), again with them constant.
    A branch on such a number (`if i + 1 == point`) becomes a graph break: measured on
    sdpoint, cheaper than one more translation per value."""
    def attempt():
        options = TranslateOptions(backend=compile_fn, backend_name=name, fullgraph=fullgraph,
                                   dynamic=frozenset(state.dynamic), static=frozenset(state.static))
        try:
            return translate_frame(frame, options)
        except Exception:
            if not options.changing_inputs:
                raise
        # numbers made inputs because they changed elsewhere (translate/changing.py):
        # constant in this code object from now on
        state.static |= options.changing_inputs
        return translate_frame(frame, TranslateOptions(
            backend=compile_fn, backend_name=name, fullgraph=fullgraph,
            dynamic=frozenset(state.dynamic), static=frozenset(state.static)))

    if state.dynamic != before:
        for _ in range(_PIN_ROUNDS):
            try:
                return attempt()
            except DynamicShapesFailed as exc:
                # only what it names (and the like-size guesses) becomes static: yolov3's
                # target count, changed, was pinned with a grid size a guess had made
                # symbolic again, and the forward translated once per count
                if not _pin(state, exc):
                    break
            except Exception:
                break
        state.static |= state.dynamic - before
        state.dynamic -= state.static
    for _ in range(_PIN_ROUNDS):
        try:
            return attempt()
        except DynamicShapesFailed as exc:  # sizes or numbers kept symbolic in an earlier round are read now
            # an attempt stops at the first op that pins a symbol (graph_state): gemma2's
            # window fill pins its keys' length, then its values' in the next attempt
            if not _pin(state, exc):
                raise
    return attempt()


_PIN_ROUNDS = 3  # translations that pin what failed, before every new input is made static


def _pin(state, exc):
    """Make static what a DynamicShapesFailed names (or, naming none of them, every size);
    False when nothing was left to pin."""
    # a stride or offset of a non-contiguous input cannot be static alone: its sizes are
    owners = tuple(_layout_owner(e) + ".size()[" for e in exc.exprs if _layout_owner(e))
    pinned = {e for e in state.dynamic if e in exc.exprs or e.startswith(owners)}
    if exc.unit and pinned:  # sizes of 1 kept symbolic (unit_sizes): static when 1 from now on,
        # symbolic (at least 2) for other values as before; the rest as it was
        state.static |= {unit_sizes.NOT_UNIT + e for e in pinned}
        return True
    guesses = {e for e in state.dynamic if e.startswith(("size==", unit_sizes.GROW))}  # _like_sizes, _growing_with
    if not pinned and not (guesses and exc.exprs):
        pinned = {e for e in state.dynamic if ".size()[" in e}
    # the guesses go in any case; naming only sizes a guess made symbolic (mistral's cache
    # heads, 2 like the mask's old length), they are all that goes
    pinned |= guesses
    state.static |= pinned
    state.pinned_sizes |= {e for e in pinned if not e.startswith(("size==", unit_sizes.GROW))}
    state.dynamic -= pinned
    return bool(pinned)


def _layout_owner(expr):
    """`a0` for `a0.stride()[1]` or `a0.storage_offset()`; None for anything else."""
    for mark in (".stride()[", ".storage_offset()"):
        if mark in expr:
            return expr.rsplit(mark, 1)[0]
    return None


def _fallback(code, exc, strict):
    reason = f"{type(exc).__name__}: {exc}"
    report.record_fallback(report.Fallback(code.co_name, code.co_filename, code.co_firstlineno, reason))
    if strict or config.strict or isinstance(exc, FullgraphError):
        if isinstance(exc, (FullgraphError, TranslationError)):
            raise exc
        where = f"{getattr(exc, 'filename', '') or code.co_filename}:{getattr(exc, 'lineno', 0) or code.co_firstlineno}"
        line = getattr(exc, "source_line", "")
        raise TranslationError(
            f"terra_dyn could not translate {code.co_qualname} at {where}: "
            f"{getattr(exc, 'reason', reason)}" + (f"\n    {line}" if line else "")
            + "\n(run without strict mode to fall back to eager for this frame)") from exc
    if config.verbose:
        warnings.warn(f"terra_dyn: running {code.co_name} eagerly: {reason}", RuntimeWarning, stacklevel=2)
    if getattr(exc, "per_call", False):  # this call's arguments only: ask again next call
        return None
    return _C.SKIP


def _record(code, result, backend):
    for gm in result.graphs:
        op_count = sum(1 for n in gm.graph.nodes if n.op in ("call_function", "call_method", "call_module"))
        report.record_graph(report.GraphRecord(
            code_name=code.co_name, filename=code.co_filename, lineno=code.co_firstlineno,
            op_count=op_count, graph=gm, backend=backend,
            translate_seconds=result.translate_seconds, compile_seconds=result.compile_seconds))
    for brk in result.breaks:
        report.record_break(brk)
    report.record_guards(result.guard_descriptions)
    report.record_translation(code, result)
