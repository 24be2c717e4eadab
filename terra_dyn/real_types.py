"""Classifying user objects by their real type, never by what they say they are.

`isinstance(obj, T)` reads `obj.__class__` whenever type(obj) is not a subclass of T, and a
class with a Python `__getattribute__` or a `__class__` property answers that read with user
code: a log entry per check (CPython's test_descr test_module_subclasses logs every lookup of
a module subclass), run at translate time where Python ran nothing. The translator's own
decisions about a user object go through these instead:

    isa(obj, T)        issubclass(type(obj), T)   (no attribute of obj is read)
    instance_dict(obj) getattr(obj, "__dict__", None) through object's lookup
    plain_slice(x)     not a slice holding another object (`slice(o)`)
    is_numpy_scalar(x) a numpy number or bool (np.float64(0.5), np.int64(3))
    asks_user_code(cls) isinstance() of its instances may run user code (code that does
                       isinstance on constants it is handed, the `bytecode` package's
                       Instr, gets such an object wrapped in a tuple)
    held_by_its_module(obj) a function or class its imported module reaches by its
                       `__qualname__` (made once, at import): not one made per call

Example: for `class Lying: __class__ = property(lambda self: int)`, isinstance(Lying(), int)
is True and runs the property; isa(Lying(), int) is False and runs nothing.
"""
import inspect
import sys
import types


def isa(obj, cls):
    return issubclass(type(obj), cls)


def instance_dict(obj):
    try:
        return object.__getattribute__(obj, "__dict__")
    except (AttributeError, TypeError):
        return None


def plain_slice(x):
    """A slice an `==` guard and a code constant may stand for: its parts are ints or None.
    `slice(o)` is not: the guard compared o with its __eq__, and the constant kept o alive
    and handed every call the first call's o (test_slice's test_cycle)."""
    return type(x) is not slice or all(type(p) in (int, bool, type(None)) for p in (x.start, x.stop, x.step))


def is_numpy_scalar(x):
    numpy = sys.modules.get("numpy")  # never imported here: a program without numpy has none
    return numpy is not None and isa(x, numpy.generic) and not isa(x, numpy.object_)


def asks_user_code(cls):
    lookup = inspect.getattr_static(cls, "__getattribute__", None)
    return not isinstance(lookup, types.WrapperDescriptorType) or \
        inspect.getattr_static(cls, "__class__", None) is not _OBJECT_CLASS


_OBJECT_CLASS = object.__dict__["__class__"]
_TYPE_DICT = type.__dict__["__dict__"]
_TYPE_MODULE = type.__dict__["__module__"]
_TYPE_QUALNAME = type.__dict__["__qualname__"]


def held_by_its_module(obj):
    """A function or class that its imported module holds where its `__qualname__` says
    (`mod.f`, `mod.Cls.method`, a decorated def whose wrapper copied the name): made once,
    so guards and code constants may keep it. A `<locals>` def, a `functools.wraps`
    wrapper built per call, a class made per call by `type(...)` are not. Only
    dictionaries are read: no user `__getattr__` or metaclass runs."""
    if isa(obj, type):
        module, qualname = _TYPE_MODULE.__get__(obj), _TYPE_QUALNAME.__get__(obj)
        name = type.__dict__["__name__"].__get__(obj)
    elif isa(obj, (types.FunctionType, types.BuiltinFunctionType)):
        module, qualname, name = obj.__module__, obj.__qualname__, obj.__name__
    else:
        return False
    holder = sys.modules.get(module) if isinstance(module, str) else None
    if not isa(holder, types.ModuleType) or type(holder.__dict__) is not dict:
        return False
    if holder.__dict__.get(name) is obj:  # `torch.where`, whose qualname names a C class
        return True
    if not isinstance(qualname, str) or "<locals>" in qualname:
        return False
    found = holder
    for part in qualname.split("."):
        space = found.__dict__ if isa(found, types.ModuleType) else _TYPE_DICT.__get__(found) if isa(found, type) else None
        if type(space) not in (dict, types.MappingProxyType):
            return False
        found = space.get(part)
        if isa(found, (staticmethod, classmethod)):
            found = found.__func__
    return any(held is obj for held in _held_through(found))


def _held_through(found, depth=4):
    """`found` and what it holds for good: a property's accessors, and what a decorator's
    wrapper wraps (`__wrapped__`, set by functools.wraps: transformers' forwards)."""
    if type(found) is property:
        return found.fget, found.fset, found.fdel
    held = [found]
    while depth and type(found) is types.FunctionType:
        found = (instance_dict(found) or {}).get("__wrapped__")
        held.append(found)
        depth -= 1
    return held
