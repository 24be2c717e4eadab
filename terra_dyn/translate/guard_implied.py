"""Facts other checks of the same guard imply: dropped, so that each call reads fewer.

    guards.GuardSet._finish -> implied(guard_set) -> ids of the Python facts to drop

- `type(x) is T` beside `x is c`, T = type(c) a class whose instances cannot change
  `__class__` (a builtin type other than a module's: bool, None, functions);
- a fact about a part of a function f that f's `func` check fixes, f known by identity
  (`f is c`, checked in the same guard or its closure guard):
    `f.__defaults__[i]` and below it: the defaults tuple is the very one (`is`);
    `f.__code__` and below it (`f.__code__.co_varnames[3] == 'return_dict'`): the code
    object is the very one, and code objects are immutable.
  Only through immutable values (a code object's `co_*` attributes, tuple items): the
  value a check would read is then the one read here. The fact is dropped when it holds
  on that value: `is`, its type (a fixed class, as above), `==` of an atomic value, `len`.

Example: transformers' output-capturing wrapper reads `func.__code__.co_varnames` of the
`func` in its closure. On 3.11 every read of `co_varnames` builds a new tuple, and the
closure guard checked 27 facts on it (its type and length, each of its 12 names' type and
value, the code's type) on every call; the `func` check on that function already fixes
them. BERT-12's closure guard: 42 facts -> 9.
"""
import types
import weakref

from . import guard_snapshot
from .sources import AttrSource, DefaultSource, ItemSource

_ABSENT = object()
_ATOMIC = (bool, int, float, str, bytes, type(None))


def fixed_class(cls):
    """Instances of cls can never be given another class: `obj.__class__ = X` needs a heap
    type (a class statement's) or a module."""
    return isinstance(cls, type) and not cls.__flags__ & (1 << 9) and not issubclass(cls, types.ModuleType)


def implied(guards):
    """ids of the items of guards.exprs / closure_exprs whose facts other checks imply."""
    ids = guards._ids
    funcs = {}  # id(fn) -> (fn, code, defaults) of each `func` check
    for c in guards.checks:
        if c[0] == "func":
            fn = c[1]() if isinstance(c[1], weakref.ref) else c[1]
            if fn is not None:
                funcs[id(fn)] = (fn, c[2], c[3])
    out = set()
    for item, source, (kind, expected) in guards._facts:
        if kind == guard_snapshot.TYPE and source in ids:
            if type(ids[source]) is expected and fixed_class(expected):
                out.add(id(item))
            continue
        value = _function_part(guards, source, funcs)
        if value is _ABSENT:
            continue
        if kind == guard_snapshot.ID and value is expected or \
                kind == guard_snapshot.TYPE and type(value) is expected and fixed_class(expected) or \
                kind == guard_snapshot.EQ and type(value) in _ATOMIC and type(value) is type(expected) \
                and value == expected and value == value or \
                kind == "len" and type(value) in (tuple, str, bytes) and len(value) == expected:
            out.add(id(item))
    return out


def _function_part(guards, source, funcs):
    """The value `source` reads if it is `f.__defaults__` or `f.__code__`, or a part of one
    reached through immutable values, of a function f known by identity whose `func` check
    fixes it; else _ABSENT."""
    steps = []  # from the value up to the function's attribute
    while True:
        if isinstance(source, DefaultSource) and not source.kw:  # an inlined function's default
            steps.append((ItemSource, source.key))
            fn_source, field = source.base, "__defaults__"
            break
        if isinstance(source, AttrSource) and source.name in ("__defaults__", "__code__"):
            fn_source, field = source.base, source.name
            break
        if isinstance(source, (AttrSource, ItemSource)):  # (not `__kwdefaults__`: a dict)
            steps.append((type(source), source.name if isinstance(source, AttrSource) else source.key))
            source = source.base
        else:
            return _ABSENT
    fn = _known_function(guards, fn_source)
    if fn is None or id(fn) not in funcs:
        return _ABSENT
    _, code, defaults = funcs[id(fn)]
    value = code if field == "__code__" else defaults
    if value is None or value is not getattr(fn, field):
        return _ABSENT
    for step, arg in reversed(steps):
        if step is AttrSource and type(value) is types.CodeType and isinstance(arg, str) and arg.startswith("co_"):
            value = getattr(value, arg, _ABSENT)
        elif step is ItemSource and type(value) is tuple and type(arg) is int and 0 <= arg < len(value):
            value = value[arg]
        else:
            return _ABSENT
        if value is _ABSENT:
            return _ABSENT
    return value


def _known_function(guards, source):
    """The function an identity fact in the guard fixes at `source`, or None."""
    fn = guards._ids.get(source)
    if fn is None:  # a pinned source (its fact may be elsewhere: a global, a slot)
        const = guards._pinned.get(source)
        fn = guards.namespace.get(const) if const is not None else None
    return fn if isinstance(fn, types.FunctionType) else None
