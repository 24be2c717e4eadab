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
