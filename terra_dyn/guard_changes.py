"""After a recompile: which guard failed, and which numbers and sizes to pass as graph inputs next.

convert_frame asks on a cache miss of a code object that has entries:

    _failing_guard(state, frame, code)  -> the first failing guard's explanation (the report's)
    _note_dynamic(state, why, frame, code)
        ("eq", 2, 0.1) fails on a float        -> state.dynamic += {"a2"}
        ("tensor", 0, ..., sizes (8, 4), ...)  -> state.dynamic += {"a0.size()[0]"} (only sizes changed)
        predicate `a0.total == c3` fails       -> "a0.total", and changing.note(a0, "total", now)
    _fresh_floats(frame, code)           -> floats a resume function is handed fresh: inputs at once
    unit_size_miss(guard, args)          -> True where only symbolic sizes (>= 2) now hold 0 or 1

Guards are read as data (typed checks over argument slots, a predicate's expressions over
`aN` and constants `cN`); nothing here changes a cache entry.
"""
import ast
import re
import weakref

import torch

from . import _C
from .codegen.resume import fresh_args, fresh_int_args
from .real_types import is_numpy_scalar, isa
from .translate import changing
from .translate.guard_checks import referent
from .translate.unit_sizes import GROW


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
    wanted = [referent(c[2]) for c in checks if c[0] == "type" and c[1] == i]  # weak: a class made per call
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
    ints = fresh_int_args(code)  # a callee's run-time numbers in a chain: already symbolic there
    return {f"a{i}" for i in fresh if i < len(args) and (changing.is_float(args[i]) or
                                                           i in ints and type(args[i]) is int)}


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
                changed += _growing_with(predicate, match.group(1), args, now)
    return changed


def _growing_with(predicate, expr, args, now):
    """An int counter kept beside tensors (a window cache layer's `cumulative_length` beside
    its keys and values) that changed and is now n >= 1: the sizes n of the tensors under the
    object holding that layer (the cache: `a2['cache']`) other than dim 0 grow with it
    (graph_state: symbolic, symbols that may be 1 at 1). A decoder's second token meets the
    cache at length 1 beside a counter 0 -> 1; with only the counter changing, the length
    stayed a static 1 and the third token translated again (mistral, gemma2)."""
    attr = _ATTR_EXPR.match(expr)
    if type(now) is not int or now < 1 or attr is None:
        return []
    owner = _evaluate(predicate, attr.group(1), args)
    fields = getattr(owner, "__dict__", None)
    if owner is _MISSING or isa(owner, torch.nn.Module) or type(fields) is not dict \
            or not any(type(v) is torch.Tensor for v in fields.values()):
        return []
    scope = attr.group(1)
    while _ITEM_EXPR.match(scope):  # `.layers[0]` -> `.layers` -> the cache holding them
        scope = _ITEM_EXPR.match(scope).group(1)
    if scope != attr.group(1) and _ATTR_EXPR.match(scope):
        scope = _ATTR_EXPR.match(scope).group(1)
    return [f"{GROW}{now}@{scope}"]


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


def unit_size_miss(guard, args):
    """Does `guard` (an entry translated with symbolic sizes) fail this call where a symbolic
    size, which the translation assumed to be at least 2 (the ShapeEnv's 0/1 specialization),
    now holds 0 or 1, and nowhere else that its explanations show? faster_rcnn's box count
    per image (1..5): image 0 brings one box at step 12 while its symbolic entry covers 2..
    Read from each predicate's first failing expression (a guard stops at its first)."""
    predicates = [c[2] for c in (getattr(guard, "checks", ()) or ()) if c[0] == "paths"]
    predicates.append(getattr(guard, "fallback", None))
    unit = False
    for predicate in predicates:
        if not hasattr(predicate, "explain"):
            continue
        try:
            failed = predicate.explain(*args)
        except Exception:
            return False
        if failed is None:
            continue
        tensor = _TENSOR_EXPR.match(failed)
        if tensor is None or not failed.startswith("check_tensor_layout("):
            return False
        facts = [predicate.namespace.get(c) for c in tensor.group(2).split(", ")]
        if not _only_unit_sizes(_evaluate(predicate, tensor.group(1), args), facts):
            return False
        unit = True
    return unit


def _only_unit_sizes(now, facts):
    """`now` matches the layout facts (cls, dtype, device, sizes, strides, offset,
    requires_grad) but for symbolic sizes (None) that hold 0 or 1 (strides and offset follow
    the sizes and are not compared)."""
    if not isa(now, torch.Tensor) or len(facts) != 7:
        return False
    cls, dtype, device, sizes, _, _, requires_grad = facts
    if type(now) is not cls or now.dtype != dtype or now.device != device \
            or now.requires_grad != requires_grad or now.dim() != len(sizes):
        return False
    units = [want is None and got < 2 for got, want in zip(now.shape, sizes)]
    fits = all(got == want or want is None for got, want in zip(now.shape, sizes))
    return fits and any(units)
