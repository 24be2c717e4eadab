"""The hook's callback: turn a frame into a cache entry (guard + rewritten code).

    hook (C) --miss--> callback(frame)
        library code (stdlib, torch, terra_dyn, tooling) -> SKIP (code_location.py)
        recompile limit reached                          -> SKIP, one warning naming the guard
        translate.translate_frame(frame, options)        -> graphs, guard, code, breaks
            record graphs / breaks / guards / recompiles (report.py)
            -> CacheEntry(guard, code)                    (the hook runs it now)
        any failure inside terra_dyn                     -> record a Fallback, SKIP
            (strict: raise an error naming the user's file and line)

A recompile (a miss on a code object that has entries) records which guard failed; a
number whose value changed (an argument, or a deeper source such as `a0.sum`, an
AverageMeter's running total, or a global) becomes a graph input instead of a constant
on the next translation (so a loop counter handed to a resume function, or a statistic
updated every step, does not exhaust the recompile limit). A number that changed on an
object's attribute or item is noted for every code object that reads it next
(translate/changing.py: the drop probability a train step saw change is an input of the
module's forward from its next translation on). If the new inputs make the translation
fail, it is retried with them constant (and they stay constant).
"""
import ast
import atexit
import gc
import re
import sys
import warnings
import weakref

import torch

from . import _C, config, dynamic_marks, logs, recompiles, report, torch_compat, tracebacks
from .backends import backend_name, lookup
from .code_location import is_library_code  # noqa: F401  (the decision lives there)
from .codegen.resume import current_run, fresh_args, is_resume_code, original_code
from .real_types import is_numpy_scalar, isa
from .translate import FullgraphError, TranslateOptions, Unsupported, translate_frame
from .translate import changing
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
                 "as_written", "hook_off", "family_entries", "run", "run_entries", "outcomes", "flipped_at")

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


def _slot_values(frame, code):
    from .codegen.signature import argument_slot_names

    f_locals = frame.f_locals
    return [f_locals.get(n) for n in argument_slot_names(code)]


def _own_guards(state):
    """The guards of the entries made under the callback asked now (other wrappers' entries
    fail on their callback check, which explains nothing)."""
    installed = _C.current_callback()
    return [g for cb, g in state.guards if cb is installed]


def _failing_guard(state, frame, code):
    args = _slot_values(frame, code)
    for guard in _own_guards(state):
        try:
            why = guard.explain(*args)
        except Exception as exc:  # a guard that cannot even run counts as failing
            why = f"guard raised {type(exc).__name__}"
        if why:
            return why
    return "unknown guard"


def _note_dynamic(state, why, frame, code):
    """An `eq` check on a number slot failed: pass that number as a graph input next time.
    An `id` check on a module failed for another instance of its type: guard it by type.
    A tensor check failed on sizes alone: keep those sizes symbolic (`a1.size()[0]`)."""
    all_args = _slot_values(frame, code)
    before = set(state.dynamic)
    steps = {}  # size or attribute number expression -> how much it changed
    for guard in _own_guards(state):
        checks = getattr(guard, "checks", ()) or ()
        # an argument of another type than the entry's is another kind of object: no number
        # of it changed, and reading the entry's attribute paths on it would run its code (a
        # __getattribute__ logging each read: test_descr's test_module_subclasses)
        args = [_MISSING if _another_type(checks, i, a) else a for i, a in enumerate(all_args)]
        for check in checks:
            if check[0] == "snapshot":  # facts about a module pinned by identity
                state.dynamic.update(check[4].changed(_is_number))
                for owner, key, now, holder in check[4].changed_numbers(_is_number):
                    changing.note(owner, key, now, holder)
                continue
            if check[0] == "paths":  # facts along attribute / item chains, read as the predicate's
                state.dynamic.update(_changed_objects(check[2], args, steps))
                continue
            if check[0] not in ("eq", "id", "id_weak", "tensor") or check[1] >= len(args):
                continue
            i = check[1]
            if check[0] == "id_weak":  # a module guarded without keeping it alive
                check = ("id", i, check[2]())
            if check[0] == "eq" and check[2] is not None and _is_number(check[2]):
                if type(args[i]) is type(check[2]) and args[i] != check[2]:
                    state.dynamic.add(f"a{i}")
            elif check[0] == "id" and _another_instance(args[i], check[2]):
                state.dynamic.add(f"a{i}")
            elif check[0] == "tensor":
                state.dynamic.update(_changed_sizes(f"a{i}", args[i], check[2:], steps))
                state.dynamic.update(_like_sizes(args[i], check[2:]))
        state.dynamic.update(_changed_objects(getattr(guard, "fallback", None), args, steps))
    _revive_pinned(state, before, steps)
    state.dynamic -= state.static


def _another_type(checks, i, value):
    wanted = [c[2] for c in checks if c[0] == "type" and c[1] == i]
    return bool(wanted) and type(value) not in wanted


def _revive_pinned(state, before, steps):
    """Sizes pinned because they met a size that was constant then are symbolic again when a
    size never seen changing changes with them. Mistral's decoder loop: at token 2 the mask's
    length changed but the cache's did not (the entry before made the cache), so `attn_weights +
    mask` pinned the mask to the cache's length + 1; from token 3 the cache grows too, and with
    both symbolic the broadcast is a relation (guarded), not a constant: the loop settles instead
    of translating once per token. Only a pinned size that moved by the same step as a new one
    (both one token longer) is revived: sdpoint's block width, pinned, changes with the pooled
    height, and revived it made a different specialization that translated again later; a
    parameter's size counts for nothing (it steps with the block's width: another module).
    A pinned number read from an attribute or item is revived the same way: with a one-token
    prompt, mistral's second token met the cache at length 1 (static: sizes 0 and 1 always
    are), so `scores + mask` pinned the window layer's `cumulative_length` (1) that the mask's
    length is made from; at token 3 the counter and the cache's length both step by one, and
    with both symbolic their equality is a guarded relation (it was a translation per token
    until the recompile limit). Bounded: each revival needs a size not seen before."""
    new = {steps.get(e) for e in state.dynamic - before - state.static
           if ".size()[" in e and "._parameters[" not in e and "._buffers[" not in e} - {None}
    revived = {e for e in state.dynamic & state.pinned_sizes if steps.get(e) in new}
    if new and revived:
        state.static -= revived
        state.pinned_sizes -= revived


def _fresh_floats(frame, code):
    """A resume function's floats that the instruction run natively before it just made
    (`loss.item()`, `random.choice(ratios)`, an accuracy): graph inputs from its first
    translation. Held constant first, each changed at the next call and cost a recompile
    per resume function after the first steps of resnet50, gpt2, sdpoint and
    music_transformer. Ints stay constant first: they are sizes, indexes and counts as often."""
    fresh = fresh_args(code)
    if not fresh:
        return set()
    args = _slot_values(frame, code)
    return {f"a{i}" for i in fresh if i < len(args) and changing.is_float(args[i])}


def _changed_sizes(expr, now, then, steps=None):
    """The sizes of `now` that differ from the guarded facts `then`; with `steps`, note by how much."""
    changes = _size_changes(expr, now, then)
    if steps is not None:
        for e, old in changes:
            if isinstance(old, int):
                steps[e] = _size_of(now, e) - old
    return [e for e, _ in changes]


def _size_of(t, expr):
    return int(t.shape[int(expr.rsplit("[", 1)[1][:-1])])


def _size_changes(expr, now, then):
    """(`expr.size()[d]`, the size guarded) for each size of tensor `now` that differs from the guarded tensor
    facts `then` = (cls, dtype, device, sizes, ..., requires_grad), when only sizes (and the
    strides and offset that follow them) do. Sizes of a symbolic input's guard
    (check_tensor_layout) may be FREE (None): those are symbolic already."""
    if not isa(now, torch.Tensor):
        return []
    cls, dtype, device, sizes = then[:4]
    requires_grad = then[-1]
    if type(now) is not cls or now.dtype != dtype or now.device != device or now.dim() != len(sizes) \
            or now.requires_grad != requires_grad:
        return []
    return [(f"{expr}.size()[{d}]", b) for d, (a, b) in enumerate(zip(now.shape, sizes)) if a != b]


def _like_sizes(now, then):
    """`size==8` for each size 8 (at least 2) that changed: another input's dim of that size
    not seen changing yet is kept symbolic too. A decoder's second token changes the
    sequence length of input_ids from the prompt's 8 to 1, while the cache it gets for the
    first time holds 8 positions: that dim grows on every later token (graph_state)."""
    return {f"size=={old}" for _, old in _size_changes("", now, then) if isinstance(old, int) and old >= 2}


def _is_number(v):
    return type(v) in (int, float) or is_numpy_scalar(v)


def _another_instance(now, then):
    return isa(then, torch.nn.Module) and type(now) is type(then) and now is not then


_EQ_EXPR = re.compile(r"^(.+) (==|is) (c\d+)(\(\))?$")  # `is c4()`: a weakly held module
# check_tensor(x, cls, dtype, device, sizes, strides, requires_grad), or check_tensor_layout
# with the storage offset before requires_grad
_TENSOR_EXPR = re.compile(r"^check_tensor(?:_layout)?\((.+?), ((?:c\d+, )+c\d+)\)$")


def _changed_objects(predicate, args, steps=None):
    """Deeper sources (`a0.total == c3`: an attribute, a global) whose number changed, or
    (`a0.block is c4`) that hold another module of the same type."""
    changed = []
    for expr in getattr(predicate, "exprs", ()):
        tensor = _TENSOR_EXPR.match(expr)
        if tensor is not None:  # a tensor reached through an attribute, item or global
            facts = [predicate.namespace.get(c) for c in tensor.group(2).split(", ")]
            now = _evaluate(predicate, tensor.group(1), args)
            changed += _changed_sizes(tensor.group(1), now, facts, steps)
            changed += _like_sizes(now, facts)
            continue
        match = _EQ_EXPR.match(expr)
        if match is None:
            continue
        op, const = match.group(2), predicate.namespace.get(match.group(3))
        if match.group(4) and isa(const, weakref.ref):
            const = const()
        if op == "==" and not _is_number(const):
            continue
        if op == "is" and not isa(const, torch.nn.Module):
            continue
        now = _evaluate(predicate, match.group(1), args)
        if now is _MISSING:  # the attribute vanished: not a changing number
            continue
        if type(now) is type(const) and (now is not const if op == "is" else now != const):
            changed.append(match.group(1))
            if op == "==":
                _note_changing(predicate, match.group(1), args, now)
                if steps is not None and type(now) is int:
                    steps[match.group(1)] = now - const
    return changed


_ATTR_EXPR = re.compile(r"^(.+)\.([A-Za-z_]\w*)$")
_ITEM_EXPR = re.compile(r"^(.+)\[([^\[\]]+)\]$")


def _note_changing(predicate, expr, args, now):
    """`a0.opt.param_groups[0]['lr']` changed: note (that dict, 'lr') for every code object
    that reads it next (translate/changing.py)."""
    attr = _ATTR_EXPR.match(expr)
    item = None if attr else _ITEM_EXPR.match(expr)
    if attr:
        base, key = attr.group(1), attr.group(2)
    elif item:
        base = item.group(1)
        try:
            key = ast.literal_eval(item.group(2))
        except (ValueError, SyntaxError):
            return
    else:
        return
    owner = _evaluate(predicate, base, args)
    if owner is _MISSING:
        return
    holder = None
    attr = _ATTR_EXPR.match(base) if item else None
    if attr:  # `a0.metrics['loss']`: the dict's holder and name
        holder = (_evaluate(predicate, attr.group(1), args), attr.group(2))
        holder = None if holder[0] is _MISSING else holder
    changing.note(owner, key, now, holder)


_MISSING = object()


def _evaluate(predicate, expr, args):
    env = dict(predicate.namespace)
    env.update(zip(predicate.params, args))
    try:
        return eval(expr, env)
    except Exception:
        return _MISSING


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
                return None
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
    `i % 2`, a threshold crossed for good) is translated at that second flip."""
    predicate = getattr(guard, "fallback", None)  # the ShapeEnv's facts are its expressions
    if not state.outcomes or not hasattr(predicate, "explain"):
        return False
    try:
        failed = predicate.explain(*_slot_values(frame, code))  # the first that fails
    except Exception:
        return False
    if failed not in state.outcomes:
        return False
    now, last = _C.entry_calls(), state.flipped_at
    state.flipped_at = now
    if last is not None and now - last <= config.rare_outcome_calls:
        return False
    logs.fallback(report.Fallback(code.co_name, code.co_filename, code.co_firstlineno,
                                  f"`{failed}` is false this call, for the first time in a while"))
    return True


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
    try:
        return attempt()
    except DynamicShapesFailed as exc:  # sizes or numbers kept symbolic in an earlier round are read now
        _pin(state, exc)
        return attempt()


_PIN_ROUNDS = 3  # translations that pin what failed, before every new input is made static


def _pin(state, exc):
    """Make static what a DynamicShapesFailed names (or, naming none of them, every size);
    False when nothing was left to pin."""
    # a stride or offset of a non-contiguous input cannot be static alone: its sizes are
    owners = tuple(_layout_owner(e) + ".size()[" for e in exc.exprs if _layout_owner(e))
    pinned = {e for e in state.dynamic if e in exc.exprs or e.startswith(owners)}
    guesses = {e for e in state.dynamic if e.startswith("size==")}  # _like_sizes
    if not pinned and not (guesses and exc.exprs):
        pinned = {e for e in state.dynamic if ".size()[" in e}
    # the guesses go in any case; naming only sizes a guess made symbolic (mistral's cache
    # heads, 2 like the mask's old length), they are all that goes
    pinned |= guesses
    state.static |= pinned
    state.pinned_sizes |= {e for e in pinned if not e.startswith("size==")}
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
