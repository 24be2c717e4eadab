"""`super()`: the proxy object and attribute lookups on it, resolved at translate time.

    super()                  -> SuperValue(the frame's __class__ cell, its first argument)
    super(C, obj)            -> SuperValue(C, obj)
    SuperValue.name          -> the attribute found in type(obj).__mro__ after C:
        function             -> MethodValue bound to obj (inlined when called)
        classmethod          -> MethodValue bound to type(obj)
        staticmethod         -> the function
        object.__init__      -> a no-op without arguments (object.__init__ with some)
        a C method / slot    -> bound to obj; calling it breaks and runs it natively
        anything else        -> Unsupported (the call runs natively)

The lookup depends only on type(obj) and C, which the translation already relies on
(a module's guard pins its identity or type; an ObjectValue is made here with its class).
Example: `class Norm(nn.LayerNorm): def forward(self, x): return super().forward(x) * 2`
inlines LayerNorm.forward into the caller's graph.
"""
import types

from bytecode import Instr

from ..real_types import isa
from .errors import Unsupported
from .values import CellValue, ConstValue, Lazy, MethodValue, ObjectValue, Value


class SuperValue(Value):
    """super(cls, obj) made during translation; at a break it is rebuilt as that call."""

    def __init__(self, cls, obj):
        self.cls = cls
        self.obj = obj

    def children(self):
        return [self.obj]

    def rebuild(self, r):
        return r.call_const(super, [Instr("LOAD_CONST", self.cls)] + r.push(self.obj), 2)

    def __repr__(self):
        return f"SuperValue({self.cls.__name__}, {self.obj!r})"


class SuperMethodValue(MethodValue):
    """A method found through super(): rebuilt as types.MethodType(fn, obj), never as
    `obj.name` (which would find the override the super() call skips)."""

    def rebuild(self, r):
        if not isinstance(self.fn, ConstValue):
            return super().rebuild(r)
        return r.call_const(types.MethodType, [Instr("LOAD_CONST", self.fn.value)] + r.push(self.self_value), 2)


def _object_init(self, *args, **kwargs):
    """object.__init__ reached through super(): nothing to do with no arguments; with some,
    object.__init__ itself raises its own TypeError (test_class's testConstructorErrorMessages)."""
    if args or kwargs:
        object.__init__(self, *args, **kwargs)


def make_super(tx, args, kwargs):
    if kwargs:
        raise Unsupported("super() with keyword arguments")
    if not args:
        cls, obj = _zero_argument_super(tx)
    elif len(args) == 2 and isinstance(args[0], ConstValue) and isinstance(args[0].value, type):
        cls, obj = args[0].value, args[1]
    else:
        raise Unsupported("super() with these arguments")
    obj_type = _type_of(obj)
    if not (isinstance(obj_type, type) and issubclass(obj_type, cls)):
        raise Unsupported("super(type, obj): obj is not an instance of type (raises natively)")
    return SuperValue(cls, obj)


def _zero_argument_super(tx):
    """What CPython reads: the `__class__` cell and the frame's first argument, by the name
    it has in the original code (a resume function keeps the name, not the slot)."""
    from ..codegen.resume import original_pc

    code = original_pc(tx.code, 0)[0]
    cell = tx.cells.get("__class__")
    if not code.co_argcount or not isinstance(cell, CellValue):
        raise Unsupported("super() without __class__ or a first argument")
    content = cell.content
    if isinstance(content, Lazy):  # read as LOAD_DEREF reads it: guarded through its source
        content = cell.content = tx.ctx.wrap(content.real, content.source)
    if not (isinstance(content, ConstValue) and isa(content.value, type)):
        raise Unsupported("super(): __class__ is not known at translate time")
    first = code.co_varnames[0]
    if first in code.co_cellvars:
        raise Unsupported("super() in a frame whose first argument is a cell")
    if tx.locals.get(first) is None:
        # `del self; super()` raises RuntimeError; run natively at a break, super() would
        # read the rewritten frame's first slot, which still holds the argument
        # (test_super's test_obscure_super_errors): the frame runs as plain Python
        raise Unsupported("super() after its first argument was deleted", breakable=False)
    return content.value, tx.get_local(first)


def _type_of(obj):
    if isinstance(obj, ObjectValue):
        return obj.cls
    if isinstance(obj, ConstValue):
        return type(obj.value)
    raise Unsupported(f"super() of {obj!r}")


def load_attr(tx, sup, name):
    obj_type = _type_of(sup.obj)
    mro = obj_type.__mro__
    for klass in mro[mro.index(sup.cls) + 1:]:
        if name in klass.__dict__:
            attr = klass.__dict__[name]
            break
    else:
        raise Unsupported(f"super().{name} not found (raises natively)")
    if isinstance(attr, types.FunctionType):
        return SuperMethodValue(ConstValue(attr), sup.obj)
    if isinstance(attr, classmethod):
        return MethodValue(ConstValue(attr.__func__), ConstValue(obj_type))
    if isinstance(attr, staticmethod):
        return ConstValue(attr.__func__)
    if attr is object.__init__:
        return SuperMethodValue(ConstValue(_object_init), sup.obj)
    if isinstance(attr, (types.MethodDescriptorType, types.WrapperDescriptorType)):
        # dict.get, object.__getattribute__, OrderedDict.__setitem__: the call is not
        # captured, so it breaks at the CALL (the frame stays translated) and runs natively
        # as attr(obj, ...), which is what the super() call does
        return SuperMethodValue(ConstValue(attr), sup.obj)
    raise Unsupported(f"super().{name} is a {type(attr).__name__}")
