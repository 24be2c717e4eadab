"""`copy.deepcopy(obj)` of a plain Python object (a config), made at translate time.

    cfg = copy.deepcopy(self.config)           whisper's decoder forward, and transformers'
    cfg.num_hidden_layers = 2                  `get_text_config(decoder=True)` that every
    for key in cfg.to_dict(): ...              `DynamicCache(config=...)` runs (T5, whisper)

The copy is made now from the real object, whose whole state is guarded equal to what was
copied (one check, `same_state(source, snapshot)`: types, dict keys in order, values). The
copy is the translation's own: nothing else can reach it, so writes to it (setattr,
delattr through the class's own Python hooks, inlined) happen now, and what is read from it
is a constant. A container copied (`copy.deepcopy(self.__dict__)`) becomes the translator's
own dict / list, built per call. Where the copy must exist at run time (live at a break,
returned) it is rebuilt per call as a deep copy of its state then; a mutable part read out of
it (a dict attribute) cannot be rebuilt apart from it and is Unsupported there.

Only objects whose deep copy is a function of their state: no __deepcopy__ / __reduce__ /
__getstate__ / __setstate__ / __slots__ / __new__ of their own, no tensors; containers are
exact dicts, lists and tuples; leaves are numbers, strings, None, classes, functions, enums
and dtypes (copied as themselves).
"""
import copy
import enum
import types

import torch

from ..real_types import isa
from .errors import Unsupported
from .values import ConstValue, DictValue, ListValue, TupleValue

_ATOMIC = (int, float, bool, complex, str, bytes, type(None), type, types.FunctionType,
           types.BuiltinFunctionType, torch.dtype, enum.Enum)


class CopiedValue(ConstValue):
    """An object deep-copied during translation (part: read out of one, not a copy itself)."""

    fresh = True  # owned by the translation: bound methods rebind, id() is not a constant

    def __init__(self, value, part=False, origin=None):
        super().__init__(value)
        self.part = part
        self.origin = origin  # where the copied object lives (class attributes are read there)

    def rebuild(self, r):
        if self.part:
            raise Unsupported("a mutable part of a deep copy made in the translation is live at a break")
        return r.call_const(copy.deepcopy, r.const(copy.deepcopy(self.value), None), 1)

    def __repr__(self):
        return f"CopiedValue({type(self.value).__name__})"


def is_copied(v):
    return isinstance(v, CopiedValue)


def deepcopy(tx, v):
    if not isinstance(v, ConstValue) or (v.source is None and not is_copied(v)):
        raise Unsupported(f"copy.deepcopy of {v!r}")
    ids = set()
    plain_state(v.value, ids)
    if v.source is not None:
        _no_pending_writes(tx, ids)
        tx.ctx.guards.same_state(v.source, v.value)
    made = as_value(copy.deepcopy(v.value))
    if is_copied(made):
        made.origin = v.source if v.source is not None else v.origin
    return made


def from_class(obj, name):
    return name != "__dict__" and name not in getattr(obj, "__dict__", {})


def read(tx, obj, name):
    """`copy.name` found by the generic lookup: the copy's own entries are the translation's;
    a class attribute is read, guarded, on the class of the object it was copied from."""
    value = object.__getattribute__(obj.value, name)
    if not from_class(obj.value, name):
        return as_value(value, part=True)
    if _immutable(value):
        return ConstValue(value)  # the class's version tag is guarded (generic_attr)
    if obj.origin is None:
        raise Unsupported(f"class attribute {name} read through a deep copy made in the translation")
    from .sources import AttrSource

    return tx.ctx.wrap(value, AttrSource(AttrSource(obj.origin, "__class__"), name))


def as_value(obj, part=False):
    """A value for an object the translation owns (a copy, or read out of one)."""
    if isa(obj, _ATOMIC) or isa(obj, tuple) and all(isa(x, _ATOMIC) for x in obj):
        return ConstValue(obj)
    if not part and type(obj) is dict:
        return DictValue({k: as_value(x) for k, x in obj.items()})
    if not part and type(obj) is list:
        return ListValue([as_value(x) for x in obj])
    if not part and type(obj) is tuple:
        return TupleValue([as_value(x) for x in obj])
    return CopiedValue(obj, part)


def _no_pending_writes(tx, ids):
    """The translation's writes to the original (`config.x = 1`, `config.names[k] = v`) are
    replayed after the graph: a copy made now from the real object would miss them."""
    written = {i for i, _ in tx.ctx.graph.attr_overlay} | {
        i for i, v in tx.ctx._mutables.items() if any(v is m for m in tx.ctx.mutated)}
    if ids & written:
        raise Unsupported("copy.deepcopy of an object this frame wrote to")


def plain_state(obj, ids, depth=0):
    """Raise Unsupported unless deep-copying `obj` reads only what same_state compares;
    collect the ids of the objects and containers in it."""
    if depth > 20:
        raise Unsupported("copy.deepcopy of a deeply nested object")
    if isa(obj, _ATOMIC):
        return
    ids.add(id(obj))
    kind = type(obj)
    if kind in (dict, list, tuple):
        items = obj.items() if kind is dict else enumerate(obj)
        for k, x in items:
            if kind is dict and not isa(k, (int, str, bool, type(None), float)):
                raise Unsupported("copy.deepcopy of a dict with non-constant keys")
            plain_state(x, ids, depth + 1)
        return
    if kind.__module__ == "builtins" or isa(obj, (torch.Tensor, torch.nn.Module)) \
            or not isinstance(getattr(obj, "__dict__", None), dict) or not _default_copy(kind):
        raise Unsupported(f"copy.deepcopy of a {kind.__qualname__}")
    for x in obj.__dict__.values():
        plain_state(x, ids, depth + 1)


def _default_copy(cls):
    return (cls.__reduce_ex__ is object.__reduce_ex__ and cls.__reduce__ is object.__reduce__
            and getattr(cls, "__getstate__", None) is getattr(object, "__getstate__", None)
            and cls.__new__ is object.__new__ and not hasattr(cls, "__deepcopy__")
            and not hasattr(cls, "__setstate__") and not any("__slots__" in c.__dict__ for c in cls.__mro__[:-1]))


IDENTITY_TYPES = (type, types.FunctionType, types.BuiltinFunctionType, torch.dtype, enum.Enum)


def same_state(a, b):
    """The guard: `a` (the object now) has the state `b` (the copy made at translation).
    csrc/same_state.c is the same reading in C (`_C.same_state(a, b, IDENTITY_TYPES)`), what
    guards run; this one is for PyGuard and the tests that hold the two alike."""
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is dict:
        return list(a) == list(b) and all(same_state(a[k], b[k]) for k in a)
    if kind in (list, tuple):
        return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b))
    if isinstance(a, IDENTITY_TYPES):
        return a is b
    if isinstance(a, _ATOMIC):
        return a == b
    dict_of = object.__getattribute__  # not a config's own __getattribute__
    return same_state(dict_of(a, "__dict__"), dict_of(b, "__dict__"))


def store(obj, name, value, write):
    """`write(copy, name, value)` now (object.__setattr__, setattr, object.__delattr__):
    the copy is the translation's own, so a later read sees it, as it would natively."""
    if value is None:  # a delete
        write(obj.value, name)
        return None
    # only what the translation owns or cannot change: a shared list stored here and then
    # appended to through the copy would be appended to once, at translate time
    write(obj.value, name, _python(value))
    return None


def _immutable(x):
    return isa(x, _ATOMIC) or isa(x, tuple) and all(_immutable(i) for i in x)


def delete(tx, obj, name):
    """`delattr(copy, name)`: the class's Python __delattr__ inlined, object's done now."""
    hook = type(obj.value).__delattr__
    if hook is object.__delattr__:
        return store(obj, name, None, object.__delattr__)
    if isinstance(hook, types.FunctionType):
        from . import calls

        return calls.call_value(tx, ConstValue(hook), [obj, ConstValue(name)], {})
    raise Unsupported(f"delattr on a {type(obj.value).__qualname__}")


def container_method(f, obj, args, kwargs):
    """`d.get(k)`, `d.pop(k)` on a dict read out of a copy: run now on the translation's own."""
    if f is dict.get and len(args) == 2 and not kwargs:  # the default itself, whatever it is
        key = _python(args[0])
        return as_value(obj.value[key], part=True) if key in obj.value else args[1]
    python = [_python(a) for a in args]
    try:
        result = f(obj.value, *python, **{k: _python(v) for k, v in kwargs.items()})
    except Exception as exc:
        raise Unsupported(f"{f.__qualname__} raised {type(exc).__name__} (raises natively)") from None
    return as_value(result, part=True)


def _python(v):
    if is_copied(v) or isinstance(v, ConstValue) and not v.by_type and _immutable(v.value):
        return v.value
    raise Unsupported(f"passing {v!r} to a deep copy made in the translation")
