"""Why a function was translated again, in the user's words: the variable, old -> new, the line.

convert_frame calls `describe(code, guards, args)` on a cache miss of a code object that
already has translations; the answer becomes the report's `Recompile` record:

    guard of the last translation: ('eq', 2, 'a')  +  args[2] == 'b'  +  co_varnames[2] == "mode"
        -> Change(variable="mode", old="'a'", new="'b'", line=12)
        -> "mode changed: 'a' -> 'b' (line 12)"

Guards are typed C checks over the argument slots (`("tensor", 0, cls, dtype, device, sizes,
strides, requires_grad)`, `("eq", i, value)`, ...) plus a Python predicate over expressions
(`a3.count == c1`, `check_tensor(a0.weight, c2, ...)`) for deeper sources; both are read
here as data: `aN` is argument slot N's name, `cN` a constant of the predicate's namespace.
The line is the first line of the function that reads the variable (where it enters).
"""
import dis
import re
from dataclasses import dataclass

import torch

from .codegen.signature import argument_slot_names
from .seam import rules
from .translate.guard_checks import UNCHECKED, fits_layout, referent, run_check

_SLOT = re.compile(r"\ba(\d+)\b")
_CONST = re.compile(r"\bc(\d+)\b")
_GLOBAL = re.compile(r"""\b(?:F?G\d*)\[['"]([^'"]+)['"]\]""")
# checks only the C core can evaluate (a class's version tag, a hook callback): run_check
# answers "failed" or "passed" for them without looking, so they name no change
_C_ONLY_CHECKS = frozenset(("type_version", "callback"))
_CALL_ID = {"is_grad_enabled": "grad mode (torch.no_grad / enable_grad)",
            "get_default_dtype": "the default dtype", "_is_any_autocast_enabled": "autocast state"}


@dataclass
class Change:
    """One fact that no longer holds: what changed, from what, to what, where it is read."""

    variable: str
    old: str = ""
    new: str = ""
    what: str = "value"  # value, shape, dtype, device, type, object, length, ...
    line: int = 0

    def text(self) -> str:
        if self.variable.startswith("___stack"):  # a resume function's saved stack item
            rest = self.variable.split("]", 1)[0] + "]" if "[" in self.variable else ""
            rest = rest[rest.index("["):] if rest else ""
            at = f" on line {self.line}" if self.line else ""
            return Change(f"a value computed{at}{' ' + rest if rest else ''}", self.old, self.new, self.what).text()
        if self.what == "object":
            body = f"{self.variable} is another object ({self.new})" if self.new else f"{self.variable} is another object"
        elif self.old or self.new:
            noun = "" if self.what == "value" else f" {self.what}"
            body = f"{self.variable}{noun} changed: {self.old} -> {self.new}"
        else:
            body = f"{self.variable} changed"
        return body + (f" (line {self.line})" if self.line else "")


def describe(code, guard, args):
    """The changes that made `guard` (of `code`'s last translation) fail for `args`."""
    names = argument_slot_names(code)
    changes = []
    for check in getattr(guard, "checks", ()) or ():
        if check[0] in _C_ONLY_CHECKS:
            continue
        try:
            ok = run_check(check, args)
        except Exception:
            ok = False
        if not ok:
            if check[0] == "paths":  # facts along chains: their Python text (translate/guard_paths.py)
                changes += _describe_predicate(check[2], args, names)
            else:
                changes.append(_describe_check(check, args, names))
            break  # the first failing check: later ones are often consequences of it
    fallback = getattr(guard, "fallback", None)
    if not changes and fallback is not None:
        changes += _describe_predicate(fallback, args, names)
    for change in changes:
        change.line = change.line or first_line_reading(code, change.variable)
    return changes


def _describe_check(check, args, names):
    kind = check[0]
    if kind == "call_id":
        fn = check[1]
        label = _CALL_ID.get(getattr(fn, "__name__", ""), f"{getattr(fn, '__name__', fn)}()")
        return Change(label, _short(check[2]), _short(_call(fn)))
    if kind == "global_id":
        return Change(f"global {check[2]}", what="object", new=_kind_of(check[1].get(check[2])))
    if kind == "snapshot":  # a fact about a module pinned by identity (translate/guard_snapshot.py)
        where, what, old, new = check[4].failure() or ("a module", "value", "", "")
        variable = _readable(where, names, {})
        if what == "object":
            return Change(variable, what="object", new=_kind_of(new))
        if what == "type":
            return Change(variable, old.__name__, new.__name__, what="type")
        return Change(variable, _short(old), _short(new), what=what)
    i = check[1]
    name = names[i] if i < len(names) else f"argument {i}"
    now = args[i] if i < len(args) else None
    if kind == "tensor":
        return _tensor_change(name, now, check[2:])
    if kind == "eq":
        return Change(name, _short(check[2]), _short(now))
    if kind == "type":
        return Change(name, getattr(referent(check[2]), "__name__", "a dead class"), type(now).__name__, what="type")
    if kind == "len":
        return Change(name, str(check[2]), _short(_len(now)), what="length")
    if kind == "id":
        return Change(name, what="object", new=_kind_of(now))
    return Change(name)


def _tensor_change(name, now, facts):
    cls, dtype, device, sizes, strides, requires_grad = facts
    if not isinstance(now, torch.Tensor):
        return Change(name, cls.__name__, type(now).__name__, what="type")
    if tuple(now.shape) != tuple(sizes):
        return Change(name, _shape(sizes), _shape(now.shape), what="shape")
    for what, old, new in (("dtype", dtype, now.dtype), ("device", device, now.device),
                           ("requires_grad", requires_grad, now.requires_grad), ("type", cls, type(now)),
                           ("strides", tuple(strides), now.stride())):
        if old != new:
            return Change(name, _short(getattr(old, "__name__", old)), _short(getattr(new, "__name__", new)), what=what)
    return Change(name, what="tensor metadata")


def _layout_change(name, now, facts):
    """A symbolic input's guard (translate/guard_checks.check_tensor_layout) failed: sizes shown
    with `s` where any size of at least 2 fits."""
    cls, dtype, device, sizes, strides, offset, requires_grad = facts
    if not isinstance(now, torch.Tensor) or type(now) is not cls:
        return Change(name, cls.__name__, type(now).__name__, what="type")

    def pattern(items):
        return "(" + ", ".join("s" if s is None or s is ... else str(s) for s in items) + ("," if len(items) == 1 else "") + ")"

    if not fits_layout(now.shape, sizes):
        return Change(name, pattern(sizes), _shape(now.shape), what="shape")
    if strides is None and not now.is_contiguous():
        return Change(name, "contiguous", str(now.stride()), what="strides")
    if strides is not None and not fits_layout(now.stride(), strides):
        return Change(name, pattern(strides), str(now.stride()), what="strides")
    if offset is not UNCHECKED and not fits_layout((now.storage_offset(),), (offset,)):
        return Change(name, "s" if offset is None else str(offset), str(now.storage_offset()), what="storage offset")
    return _tensor_change(name, now, (cls, dtype, device, now.shape, now.stride(), requires_grad))


def _describe_predicate(predicate, args, names):
    env = dict(predicate.namespace)
    env.update(zip(predicate.params, args))
    for expr in predicate.exprs:
        try:
            ok = eval(expr, env)
        except Exception as exc:
            return [Change(_readable(expr, names, env), what=f"lookup ({type(exc).__name__})")]
        if ok:
            continue
        tensor = re.match(r"^check_tensor(?:_layout)?\((.+?), (c\d+(?:, c\d+)*)\)$", expr)
        if tensor:
            facts = [env.get(c) for c in tensor.group(2).split(", ")]
            now = _eval(tensor.group(1), env)
            variable = _readable(tensor.group(1), names, env)
            if len(facts) == 6:
                return [_tensor_change(variable, now, facts)]
            return [_layout_change(variable, now, facts)]
        compare = re.match(r"^(.+?) (==|is) (c\d+)$", expr)
        if compare:
            lhs, op, const = compare.groups()
            variable = _readable(lhs, names, env)
            now = _eval(lhs, env)
            if op == "is":
                return [Change(variable, what="object", new=_kind_of(now))]
            return [Change(variable, _short(env.get(const)), _short(now))]
        typed = re.match(r"^type\((.+)\) is (c\d+)$", expr)
        if typed:
            lhs, const = typed.groups()
            old = env.get(const)
            return [Change(_readable(lhs, names, env), getattr(old, "__name__", str(old)),
                           type(_eval(lhs, env)).__name__, what="type")]
        return [Change(_readable(expr, names, env), what="condition")]
    return []


def _readable(expr, names, env):
    """`a3.count` -> `meter.count`; `G['lr']` -> `lr`; `c4` -> its value."""
    text = _SLOT.sub(lambda m: names[int(m.group(1))] if int(m.group(1)) < len(names) else m.group(0), expr)
    text = _GLOBAL.sub(lambda m: m.group(1), text)
    return _CONST.sub(lambda m: _short(env.get(m.group(0))), text)


def first_line_reading(code, variable):
    """The first line of `code` that reads `variable`'s root name (0 if none does)."""
    root = re.split(r"[.\[( ]", variable.replace("global ", ""), maxsplit=1)[0]
    lines = [instr.positions.lineno for instr in dis.get_instructions(code)
             if instr.opname in rules.name_loads and root in _names(instr.argval)
             and instr.positions and instr.positions.lineno]
    # a resume function's prologue carries the def line: the first real use is after it
    body = [n for n in lines if n != code.co_firstlineno]
    return (body or lines or [0])[0]


def _names(argval):
    return argval if isinstance(argval, tuple) else (argval,)  # LOAD_FAST_LOAD_FAST: two


def _eval(expr, env):
    try:
        return eval(expr, env)
    except Exception:
        return None


def _call(fn):
    try:
        return fn()
    except Exception as exc:
        return f"<{type(exc).__name__}>"


def _len(obj):
    try:
        return len(obj)
    except Exception:
        return type(obj).__name__


def _shape(sizes):
    return str(tuple(int(s) for s in sizes))


def _kind_of(obj):
    return f"a {type(obj).__name__}" if obj is not None else "None"


def _short(value, limit=60):
    """repr, but a module or a big object by its type: a report line, not a dump."""
    if isinstance(value, (torch.nn.Module, dict, list, set)) and not isinstance(value, (str, bytes)):
        text = f"<{type(value).__name__}>" if isinstance(value, torch.nn.Module) else repr(value)
    elif isinstance(value, float):
        text = f"{value:.6g}"
    else:
        text = repr(value)
    return text if len(text) <= limit else f"<{type(value).__name__} of {len(text)} characters>"


def record(code, guard, args, failed_guard):
    """Describe the miss and record it (report.Recompile); returns the record."""
    from . import report

    try:
        changes = describe(code, guard, args)
    except Exception:  # a report must never break the user's call
        changes = []
    rec = report.Recompile(code.co_name, code.co_filename, code.co_firstlineno, failed_guard,
                           [c.text() for c in changes], changes[0].variable if changes else "",
                           changes[0].line if changes else 0)
    report.record_recompile(rec)
    return rec
