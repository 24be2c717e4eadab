"""`class` statements inside translated code, when the class is built but never used.

    class Combine(torch.autograd.Function):       LOAD_BUILD_CLASS; MAKE_FUNCTION body;
        @staticmethod                             CALL builtins.__build_class__(body, name, *bases)
        def forward(ctx, x): ...             ->  build_class(tx, args, kwargs)
                                                  -> UnbuiltClassValue(name)

Only in inlined functions (see build_class). Building the class is skipped: the value stands for a class that nobody has looked at yet,
and any use of it (an attribute, a call, passing it on) is Unsupported, so the code that
uses it runs natively and builds the real class there. That is exact only when building
has no effect anyone can observe, so it is accepted only when

    the body only stores functions, constants and staticmethod/classmethod/property of them
    (no other call, no global read or write; it may push its closure's cells and hand
    `__class__` on as `__classcell__` for methods that call super()), the metaclass is `type` or autograd's
    FunctionMeta (which only attaches a backward class), and no base defines
    __init_subclass__.

Example: torch.masked's reductions define a local autograd.Function that they apply only
to MaskedTensor inputs; on plain tensors the class is never used and the op is one graph.
"""
import builtins

import torch

from ..real_types import isa
from ..seam import rules
from .errors import Unsupported
from .values import ConstValue, FunctionValue, Value

_DECORATORS = {"staticmethod": staticmethod, "classmethod": classmethod, "property": property}
_METACLASSES = (type, type(torch.autograd.Function))


class UnbuiltClassValue(Value):
    """A class statement's result whose building was skipped (see the module docstring)."""

    def __init__(self, name):
        self.name = name

    def rebuild(self, r):
        raise Unsupported(f"cannot rebuild {self!r}: its class statement was not run")

    def __repr__(self):
        return f"UnbuiltClassValue({self.name})"


def build_class(tx, args, kwargs):
    if tx.parent is None:
        # in the frame itself the class would stay a live local, which a later break could
        # not rebuild: a break here builds it natively (inlined callees' locals never need it)
        raise Unsupported("class statement (LOAD_BUILD_CLASS) in the translated frame")
    if kwargs or len(args) < 2:
        raise Unsupported("class statement with keywords (metaclass=...)")
    body, name = args[0], args[1]
    if not isinstance(body, FunctionValue) or not isinstance(name, ConstValue):
        raise Unsupported("class statement with an unknown body")
    bases = []
    for b in args[2:]:
        if not isinstance(b, ConstValue) or not isa(b.value, type) or b.by_type:
            raise Unsupported("class statement with an unknown base")
        bases.append(b.value)
    meta = type(bases[0]) if bases else type
    if any(type(b) is not meta for b in bases) or meta not in _METACLASSES:
        raise Unsupported(f"class statement with metaclass {meta.__name__}")
    for base in bases:
        for klass in base.__mro__:
            if klass is not object and "__init_subclass__" in klass.__dict__:
                raise Unsupported(f"class statement: {klass.__name__} defines __init_subclass__")
    _check_body(body.code, body.f_globals)
    return UnbuiltClassValue(str(name.value))


def _check_body(code, f_globals):
    import dis

    cells = set(code.co_cellvars) | set(code.co_freevars)
    for ins in dis.get_instructions(code):
        if ins.opname not in rules.class_body_opcodes:
            raise Unsupported(f"class body does {ins.opname}")
        if ins.opname == rules.cell_load and ins.argval not in cells:
            raise Unsupported(f"class body reads the local {ins.argval}")
        if ins.opname == "STORE_NAME" and ins.argval == "__classcell__":
            continue  # `__class__` for the methods' super(): no class is built to take it
        if ins.opname == "LOAD_NAME" and ins.argval != "__name__":
            if ins.argval not in _DECORATORS or ins.argval in f_globals or \
                    getattr(builtins, ins.argval, None) is not _DECORATORS[ins.argval]:
                raise Unsupported(f"class body reads {ins.argval}")
        if ins.opname == "LOAD_CONST" and hasattr(ins.argval, "co_code"):
            continue  # a method's code: only run when the method is called
