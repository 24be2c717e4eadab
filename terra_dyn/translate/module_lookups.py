"""Attribute reads of an nn.Module whose class has its own lookup: a Python `__getattr__`
(PEFT-style wrappers that forward unknown names to a wrapped model) or `__getattribute__`.

Python's order for `m.name` on such a class (CPython's slot_tp_getattr_hook):

    try:  type(m).__getattribute__(m, name)   # object's: instance dict, then the class
    except AttributeError:
          type(m).__getattr__(m, name)        # nn.Module's: _parameters, _buffers, _modules

A name kept in `_modules` is not found by the first step, so a user `__getattr__` sees it
(and may answer something else). The translation follows the same order: a Python
`__getattribute__` or `__getattr__` is inlined (its reads guarded as any inlined code's,
its side effects replayed per call), `object.__getattribute__(m, name)` inside it is the
generic lookup below (never the override again), an AttributeError it raises is a known
raise that the next step (or an inlined `except AttributeError`) catches, and nn.Module's
own `__getattr__` is inlined as the Python it is (it reads `self.__dict__`, through the
override as in eager). The class's two lookup functions and every name read on the class
are guarded by its version tag. Reads are guarded through `object.__getattribute__`
(sources.GenericAttrSource), so guards and the rewritten code never run the override.

Before, a Python `__getattribute__` on a module class was ignored (its side effects never
ran, a renamed read returned the other attribute) and any `__getattr__` override broke.
"""
import inspect
import types

import torch

from .errors import Unsupported
from .exceptions import KnownRaise
from .sources import GenericAttrSource
from .values import ConstValue, MethodValue
from .wrap import wrap

_MODULE_GETATTR = torch.nn.Module.__getattr__
_ABSENT = object()


def own_lookup(cls):
    """(__getattribute__, __getattr__) of a module class when either is not the default."""
    getattribute = inspect.getattr_static(cls, "__getattribute__")
    getattr_ = inspect.getattr_static(cls, "__getattr__", _MODULE_GETATTR)
    if getattribute is object.__getattribute__ and getattr_ is _MODULE_GETATTR:
        return None
    return getattribute, getattr_


def load(tx, obj, name, getattribute, getattr_):
    """`obj.name` for a module whose class has its own lookup (own_lookup's pair)."""
    from . import calls

    cls = type(obj.value)
    for f in (getattribute, getattr_):
        if f is not object.__getattribute__ and f is not _MODULE_GETATTR and not isinstance(f, types.FunctionType):
            raise Unsupported(f"{cls.__name__}'s attribute lookup is a {type(f).__name__}: read natively")
    if obj.source is None:
        raise Unsupported(f"attribute of a {cls.__name__} made at translate time (its own lookup)")
    tx.ctx.guards.class_attributes(cls, name, "__getattribute__", "__getattr__")
    try:
        if getattribute is object.__getattribute__:
            return generic(tx, obj, name)
        return calls.call_value(tx, ConstValue(getattribute), [obj, ConstValue(name)], {})
    except KnownRaise as exc:
        if not isinstance(exc.exception, AttributeError):
            raise
    return calls.call_value(tx, ConstValue(getattr_), [obj, ConstValue(name)], {})


def has(tx, obj, name):
    """hasattr(obj, name): the same lookup, its value dropped; an AttributeError it raises
    for certain (guarded) is False."""
    try:
        load(tx, obj, name, *own_lookup(type(obj.value)))
    except KnownRaise as exc:
        if isinstance(exc.exception, AttributeError):
            return False
        raise
    return True


def generic(tx, obj, name):
    """`object.__getattribute__(module, name)`: a data descriptor on the class, the instance
    dict, then the class; absent (also a name only in `_modules` and the like): a known
    AttributeError."""
    real = obj.value
    cls = type(real)
    if obj.source is None:
        raise Unsupported(f"object.__getattribute__ of a {cls.__name__} made at translate time")
    tx.ctx.guards.class_attributes(cls, name)
    static = next((vars(k)[name] for k in cls.__mro__ if name in vars(k)), _ABSENT)
    data_descriptor = static is not _ABSENT and (hasattr(type(static), "__set__") or hasattr(type(static), "__delete__"))
    if name == "__dict__" and data_descriptor:
        source = GenericAttrSource(obj.source, "__dict__")
        tx.ctx.guards.type(source, dict)
        view = ConstValue(object.__getattribute__(real, "__dict__"), source)
        view.by_type = True  # read key by key (calls.dict_read_by_key)
        return view
    if isinstance(static, property) and isinstance(static.fget, types.FunctionType):
        from . import calls

        return calls.call_value(tx, ConstValue(static.fget), [obj], {})
    if data_descriptor:
        raise Unsupported(f"{cls.__name__}.{name} is a {type(static).__name__} descriptor: read natively")
    d = object.__getattribute__(real, "__dict__")
    if type(d) is not dict:
        raise Unsupported(f"{cls.__name__}'s __dict__ is not a dict")
    if name in d:
        return wrap(tx.ctx, d[name], GenericAttrSource(obj.source, name))
    tx.ctx.guards.instance_lacks(obj.source, real, name, by_identity=not obj.module_by_type)
    if static is _ABSENT:
        raise KnownRaise(AttributeError(f"'{cls.__name__}' object has no attribute '{name}'"))
    if isinstance(static, types.FunctionType):
        return MethodValue(ConstValue(static), obj)
    if isinstance(static, staticmethod):
        return ConstValue(static.__func__)
    if isinstance(static, classmethod):
        return MethodValue(ConstValue(static.__func__), ConstValue(cls))
    if hasattr(type(static), "__get__"):
        raise Unsupported(f"{cls.__name__}.{name} is a {type(static).__name__} descriptor: read natively")
    return ConstValue(static)  # a plain class attribute: the class's version tag holds it
