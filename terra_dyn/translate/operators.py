"""What Python operators mean on abstract values.

    tensor (or run-time number) involved -> an FX call_function node (operator.add, ...)
    Python values known at translate time -> computed now (constant folding)
    containers -> new container values (tuple + tuple, list * 2, x[1:3], ...)

Example: `x.shape[-1] * 2` folds to ConstValue(6) for a (4, 3) tensor x, while `x * 2` adds
call_function operator.mul(x, 2) to the graph.
"""
import collections
import operator

import torch
from bytecode import BinaryOp, Compare

from ..real_types import isa
from .drops import check_overwrite
from .errors import Unsupported
from .iterators import DictIterator
from .values import (ConstValue, DictValue, DictViewValue, IteratorValue, ListValue, ObjectValue, OpaqueIterator,
                     ScalarValue, SliceValue, TensorValue, TupleValue, Value)

_BINARY = {
    BinaryOp.ADD: operator.add, BinaryOp.SUBTRACT: operator.sub, BinaryOp.MULTIPLY: operator.mul,
    BinaryOp.TRUE_DIVIDE: operator.truediv, BinaryOp.FLOOR_DIVIDE: operator.floordiv,
    BinaryOp.REMAINDER: operator.mod, BinaryOp.POWER: operator.pow,
    BinaryOp.MATRIX_MULTIPLY: operator.matmul, BinaryOp.AND: operator.and_,
    BinaryOp.OR: operator.or_, BinaryOp.XOR: operator.xor, BinaryOp.LSHIFT: operator.lshift,
    BinaryOp.RSHIFT: operator.rshift,
    BinaryOp.INPLACE_ADD: operator.iadd, BinaryOp.INPLACE_SUBTRACT: operator.isub,
    BinaryOp.INPLACE_MULTIPLY: operator.imul, BinaryOp.INPLACE_TRUE_DIVIDE: operator.itruediv,
    BinaryOp.INPLACE_FLOOR_DIVIDE: operator.ifloordiv, BinaryOp.INPLACE_REMAINDER: operator.imod,
    BinaryOp.INPLACE_POWER: operator.ipow, BinaryOp.INPLACE_MATRIX_MULTIPLY: operator.imatmul,
    BinaryOp.INPLACE_AND: operator.iand, BinaryOp.INPLACE_OR: operator.ior,
    BinaryOp.INPLACE_XOR: operator.ixor, BinaryOp.INPLACE_LSHIFT: operator.ilshift,
    BinaryOp.INPLACE_RSHIFT: operator.irshift,
}
_INPLACE_TO_PLAIN = {
    operator.iadd: operator.add, operator.isub: operator.sub, operator.imul: operator.mul,
    operator.itruediv: operator.truediv, operator.ifloordiv: operator.floordiv,
    operator.imod: operator.mod, operator.ipow: operator.pow, operator.imatmul: operator.matmul,
    operator.iand: operator.and_, operator.ior: operator.or_, operator.ixor: operator.xor,
    operator.ilshift: operator.lshift, operator.irshift: operator.rshift,
}
_COMPARE = {
    Compare.LT: operator.lt, Compare.LE: operator.le, Compare.EQ: operator.eq,
    Compare.NE: operator.ne, Compare.GT: operator.gt, Compare.GE: operator.ge,
}
# Python values safe to compute with at translate time (no user __dunder__ code runs)
_FOLDABLE = (int, float, bool, str, bytes, type(None), complex, torch.dtype, torch.device,
             torch.Size, slice, range, type(Ellipsis), type)


def is_graph_value(v):
    return isinstance(v, (TensorValue, ScalarValue))


def python_value(v):
    """The Python object behind a value known at translate time (containers included)."""
    if isinstance(v, ConstValue):
        return v.as_python()  # refuses objects guarded only by type
    if isinstance(v, TupleValue):
        return v.as_python()
    if isinstance(v, ListValue):
        return [python_value(x) for x in v.items]
    if isinstance(v, DictValue):
        return {k: python_value(x) for k, x in v.items.items()}
    if isinstance(v, ScalarValue) and v.symbolic:
        return pin(v)
    if isinstance(v, SliceValue):
        return slice(*map(python_value, v.parts))
    raise Unsupported(f"{v!r} is not known at translate time")


def pin(v):
    """The value of a symbolic number, for code that needs it (`range(n)`, a dict key): the
    ShapeEnv records it, and the translation is redone with it static (graph_state)."""
    try:
        return v.example.node.pytype(v.example)
    except Exception as exc:  # a relation the ShapeEnv cannot decide
        raise Unsupported(f"the value of {v!r}: {type(exc).__name__}") from None


def build_slice(parts):
    """start:stop[:step] with run-time bounds (`x[:n]`)."""
    if all(isinstance(p, (ConstValue, ScalarValue)) for p in parts):
        return SliceValue(*parts, *[ConstValue(None)] * (3 - len(parts)))
    raise Unsupported("slice with a bound that is not a number")


def _foldable(v):
    if isinstance(v, ConstValue):
        if v.by_type:  # e.g. a numpy float (a float subclass): its value is not guarded
            return False
        return isa(v.value, _FOLDABLE) or (
            isa(v.value, tuple) and all(isa(x, _FOLDABLE) for x in v.value))
    return False


def binary(tx, op, a, b):
    fn = _BINARY[op]
    if is_graph_value(a) or is_graph_value(b):
        if fn in _INPLACE_TO_PLAIN and not isinstance(a, TensorValue):
            fn = _INPLACE_TO_PLAIN[fn]  # `n += x` rebinds n; it mutates nothing
        return tx.ctx.graph.call("call_function", fn, [a, b])
    plain = _INPLACE_TO_PLAIN.get(fn, fn)
    if isinstance(a, ListValue) and fn is operator.iadd:
        tx.ctx.mutate(a)
        a.items.extend(unpack(tx, b))
        return a
    if isinstance(a, (TupleValue, ListValue)) or isinstance(b, (TupleValue, ListValue)):
        return _sequence_binary(tx, plain, a, b)
    if _foldable(a) and _foldable(b):
        try:
            return ConstValue(plain(a.value, b.value))
        except Exception as exc:
            raise Unsupported(f"{plain.__name__} raised {type(exc).__name__}") from None
    raise Unsupported(f"operator {plain.__name__} on {a!r} and {b!r}")


def _sequence_binary(tx, fn, a, b):
    if fn is operator.add and isinstance(a, TupleValue) and _foldable(b) and type(b.value) is tuple:
        b = TupleValue([ConstValue(x) for x in b.value])
    if fn is operator.add and isinstance(b, TupleValue) and _foldable(a) and type(a.value) is tuple:
        a = TupleValue([ConstValue(x) for x in a.value])  # gpt2: `(-1,) + input_shape[1:]`
    if fn is operator.add and type(a) is type(b) and isinstance(a, (TupleValue, ListValue)):
        if isinstance(a, TupleValue):
            # torch.Size's __add__ and __radd__ give a Size, even with a plain tuple
            cls = torch.Size if torch.Size in (a.cls, b.cls) else tuple
            return TupleValue(a.items + b.items, cls=cls)
        return ListValue(a.items + b.items)
    if fn is operator.mul and isinstance(b, ConstValue) and isa(b.value, int):
        items = a.items * b.value
        return TupleValue(items) if isinstance(a, TupleValue) else ListValue(items)
    raise Unsupported(f"{fn.__name__} on {a!r} and {b!r}")


def compare(tx, op, a, b):
    fn = _COMPARE[op]
    if is_graph_value(a) or is_graph_value(b):
        return tx.ctx.graph.call("call_function", fn, [a, b])
    try:
        return ConstValue(fn(python_value(a), python_value(b)))
    except Unsupported:
        raise
    except Exception as exc:
        raise Unsupported(f"comparison raised {type(exc).__name__}") from None


def is_same(a, b, guards=None):
    """`a is b`. Two different values reached from the frame's inputs may still be one
    object on a later call (`f(t, t)` after `f(t, u)`): reading them as distinct is
    guarded (`guards`), or unsupported without guards."""
    if a is b:
        return True
    if isinstance(a, ConstValue) and isinstance(b, ConstValue):
        if (a.by_type or b.by_type or a.module_by_type or b.module_by_type) and type(a.value) is type(b.value):
            raise Unsupported("identity of objects guarded only by type")
        # different (guarded) types: never the same object
        return a.value is b.value
    if isinstance(a, TensorValue) and isinstance(b, TensorValue):
        if a.node is b.node:
            return True
        if a.source is None or b.source is None:
            return _same_tensor(a, b)
    if isinstance(a, ConstValue) or isinstance(b, ConstValue):
        other = b if isinstance(a, ConstValue) else a
        const = a if isinstance(a, ConstValue) else b
        if isinstance(other, (TensorValue, TupleValue, ListValue, DictValue)):
            return False if const.value is None or isa(const.value, (int, float, str)) else _unknown()
    if isinstance(a, ScalarValue) or isinstance(b, ScalarValue):
        raise Unsupported("`is` on a run-time number")
    sources = [getattr(v, "source", None) for v in (a, b)]
    if None not in sources:
        if guards is None:
            _unknown()
        guards.distinct(*sources)
    return False


def _same_tensor(a, b):
    """`a is b` where one was made in the graph: an op may hand back its input itself
    (`x.contiguous()` of a contiguous x, `x.float()` of a float one, dropout when not
    training, in-place ops), as the op on the examples does: the same meta (or fake)
    tensor back. Examples of different kinds cannot say: unknown."""
    if a._fake is not None and a._fake is b._fake:
        return True
    if a._meta is not None and b._meta is not None:
        return a._meta is b._meta
    if a._fake is not None and b._fake is not None:
        return False
    return _unknown()


def _unknown():
    raise Unsupported("identity of values unknown at translate time")


def is_none(v):
    return isinstance(v, ConstValue) and v.value is None


def run_time_truth(tx, v):
    """A number whose truth only the run decides (a break), not one that sizes decide."""
    return isinstance(v, ScalarValue) and not (v.symbolic and tx.ctx.graph.only_sizes_in(v.example))


def truth(tx, v):
    if isinstance(v, TensorValue):
        raise Unsupported("branch on a tensor's value (data-dependent control flow)")
    if isinstance(v, ScalarValue):
        if not run_time_truth(tx, v):
            try:  # guards the relation it relies on (`a0.size()[0] > 8`; `== 8` pins the size)
                return tx.ctx.graph.decide(v.example)
            except Exception as exc:
                raise Unsupported(f"branch on {v!r}: {type(exc).__name__}") from None
        # a number input (a loop counter, sdpoint's `if i + 1 == point`): a break is cheaper
        # than a translation per value or outcome
        raise Unsupported("branch on a number known only at run time")
    if isinstance(v, (TupleValue, ListValue, DictValue)):
        return bool(v.items)
    if isinstance(v, ConstValue):
        if _foldable(v) or isa(v.value, (tuple, list, dict)):
            return bool(v.value)
        if isa(v.value, torch.nn.Module) and not hasattr(type(v.value), "__len__"):
            return True
        cls = type(v.value)
        if not hasattr(cls, "__bool__") and not hasattr(cls, "__len__"):
            return True
        if v.by_type or _truth_in_python(cls):  # inlined: a __bool__ run now would run once,
            return _python_truth(tx, v, cls)  # its answer and side effects baked in
        return bool(v.value)
    if isinstance(v, ObjectValue):  # made here: its class's __bool__ / __len__ runs per call
        # (test_bool's test_bool_called_at_least_once counts the calls; True was assumed)
        if hasattr(v.cls, "__bool__") or hasattr(v.cls, "__len__"):
            return _python_truth(tx, v, v.cls)
        return True
    if isinstance(v, Value):
        return True
    raise Unsupported(f"truth of {v!r}")


def _truth_in_python(cls):
    import inspect
    import types

    name = "__bool__" if hasattr(cls, "__bool__") else "__len__"
    return isinstance(inspect.getattr_static(cls, name, None), types.FunctionType)


def _python_truth(tx, v, cls):
    """bool(obj) of an object guarded by type whose class says it in Python (`if cache:`
    on transformers' DynamicCache, whose __len__ counts its layers): inlined."""
    name = "__bool__" if hasattr(cls, "__bool__") else "__len__"
    method = python_dunder(v, name)
    result = method(tx, []) if method is not None else None
    if name == "__bool__" and isinstance(result, ConstValue) and type(result.value) is bool or \
            name == "__len__" and isinstance(result, ConstValue) and type(result.value) is int and result.value >= 0:
        return bool(result.value)
    raise Unsupported(f"truth of a {cls.__name__} argument (depends on its value)")


def unary(tx, kind, v):
    fn = {"neg": operator.neg, "pos": operator.pos, "invert": operator.invert}[kind]
    if is_graph_value(v):
        return tx.ctx.graph.call("call_function", fn, [v])
    if _foldable(v):
        return ConstValue(fn(v.value))
    raise Unsupported(f"unary {kind} on {v!r}")


def contains(tx, container, item):
    if isinstance(container, (TupleValue, ListValue)):
        if is_graph_value(item):
            return any(is_same(item, x) for x in container.items) or _unknown()
        target = python_value(item)
        for x in container.items:
            if is_graph_value(x):
                raise Unsupported("`in` over a container holding tensors")
            if python_value(x) == target:
                return True
        return False
    if isinstance(container, DictValue):
        return python_value(item) in container.items
    from .calls import dict_read_by_key, is_dict_read_by_key

    if is_dict_read_by_key(container) and not is_graph_value(item):  # `"_parameters" in self.__dict__`
        return dict_read_by_key(tx, dict.__contains__, container, [item], {}).value
    if isinstance(container, ConstValue) and not container.by_type and not is_graph_value(item):
        if _foldable(container) or isa(container.value, (tuple, list, dict, set, frozenset)):
            return python_value(item) in container.value
    method = python_dunder(container, "__contains__")
    if method is not None:
        result = method(tx, [item])
        if isinstance(result, ConstValue):
            return bool(result.value)
    raise Unsupported(f"`in` on {container!r}")


# -- subscripts -------------------------------------------------------------------------
def getitem(tx, obj, key):
    from . import model_output

    if isinstance(obj, model_output.ModelOutputValue):
        return model_output.getitem(tx, obj, key)
    if isinstance(obj, TensorValue):
        return tx.ctx.graph.call("call_function", operator.getitem, [obj, key])
    if isinstance(obj, (TupleValue, ListValue)):
        k = python_value(key)
        if isinstance(k, slice):
            items = obj.items[k]
            if isinstance(obj, ListValue):
                return ListValue(items)
            return TupleValue(items, cls=torch.Size if obj.cls is torch.Size else tuple)
        if isinstance(k, (int, bool)) or hasattr(k, "__index__"):
            try:
                return obj.items[k]
            except IndexError:
                raise Unsupported("index out of range (raises natively)") from None
        raise Unsupported(f"index {k!r} into a sequence")
    if isinstance(obj, DictValue):
        k = python_value(key)
        if k not in obj.items and obj.cls is collections.Counter:
            return ConstValue(0)  # Counter's missing keys count zero
        if k not in obj.items:  # its keys are guarded: it raises on every call
            from .exceptions import KnownRaise

            raise KnownRaise(KeyError(k))
        return obj.items[k]
    if isinstance(obj, ConstValue):
        k = python_value(key)
        value = obj.value
        if isa(value, torch.nn.Module):
            from . import modules

            return modules.module_getitem(tx, obj, k)
        from . import deep_copies

        if deep_copies.is_copied(obj) and type(value) in (dict, list, tuple):  # the translation's own
            return deep_copies.container_method(type(value).__getitem__, obj, [key], {})
        if _foldable(obj) or isa(value, (tuple, str)) and not obj.by_type:
            try:
                return ConstValue(value[k])
            except Exception:
                raise Unsupported("subscript raises natively") from None
        from .calls import dict_read_by_key, is_dict_read_by_key

        if is_dict_read_by_key(obj):  # another module's registry dict
            return dict_read_by_key(tx, dict.__getitem__, obj, [key], {})
    method = python_dunder(obj, "__getitem__")
    if method is not None:
        return method(tx, [key])
    raise Unsupported(f"subscript of {obj!r}")


def python_dunder(obj, name):
    """`obj[key]` / `key in obj` on an object whose class implements the operator in Python
    (transformers' attention-function registry, a Mapping): the method is inlined, with
    `obj` as self, as a call `type(obj).name(obj, ...)` would be."""
    if isinstance(obj, ObjectValue):  # made here: a Sequence subclass's view object
        cls = obj.cls
    elif isinstance(obj, ConstValue) and not isa(obj.value, type):
        cls = type(obj.value)
    else:
        return None
    import inspect
    import types

    fn = inspect.getattr_static(cls, name, None)
    if not isinstance(fn, types.FunctionType):
        return None

    def call(tx, args):
        from .calls import call_value

        return call_value(tx, ConstValue(fn), [obj] + list(args), {})
    return call


def setitem(tx, obj, key, value):
    from . import model_output

    if isinstance(obj, model_output.ModelOutputValue):
        return model_output.store(tx, obj, python_value(key), value)
    if isinstance(obj, TensorValue):
        from .index_keys import setitem_key

        key = setitem_key(tx, obj, key) or key  # 0-d index tensors, read as numbers by eager
        tx.ctx.graph.call("call_function", operator.setitem, [obj, key, value])
        return
    if isinstance(obj, ListValue):
        k = python_value(key)
        if not isinstance(k, int) or not -len(obj.items) <= k < len(obj.items):
            raise Unsupported("list assignment outside known indices")
        check_overwrite(tx, [obj.items[k]], "an item assignment")
        tx.ctx.mutate(obj)
        obj.items[k] = value
        return
    if isinstance(obj, DictValue):
        check_overwrite(tx, [obj.items.get(python_value(key))], "an item assignment")
        tx.ctx.mutate(obj)
        obj.items[python_value(key)] = value
        return
    raise Unsupported(f"item assignment on {obj!r}")


def delitem(tx, obj, key):
    if isinstance(obj, (ListValue, DictValue)):
        k = python_value(key)
        try:
            old = obj.items[k]
        except (KeyError, IndexError, TypeError):
            raise Unsupported("del raises natively") from None
        check_overwrite(tx, old if isinstance(k, slice) else [old], "del of an item")
        tx.ctx.mutate(obj)
        del obj.items[k]
        return
    raise Unsupported(f"del on {obj!r}")


# -- iteration --------------------------------------------------------------------------
def unpack(tx, v):
    """The items of an iterable value, as a list of Values."""
    if isinstance(v, (TupleValue, ListValue)):
        return list(v.items)
    if isinstance(v, DictValue):
        return [ConstValue(k) for k in v.items]
    if isinstance(v, (IteratorValue, DictViewValue)):
        return v.unpack_items()
    if isinstance(v, TensorValue):
        n = v.facts.shape[0] if v.facts.dim() else None
        if n is None:
            raise Unsupported("iteration over a 0-d tensor")
        return [tx.ctx.graph.call("call_function", operator.getitem, [v, ConstValue(i)]) for i in range(n)]
    if isinstance(v, ConstValue) and not v.by_type:  # by_type: its items are not guarded
        value = v.value
        if isa(value, (tuple, list, range, str, torch.Size, dict)):
            from .wrap import wrap_child

            if v.source is not None and isa(value, (list, tuple)):
                return [wrap_child(tx.ctx, v, i) for i in range(len(value))]
            return [ConstValue(x) for x in value]
        if isa(value, (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict,
                              torch.nn.ParameterList)):
            from . import modules

            return modules.iterate_module(tx, v)
    it = _python_iter(tx, v)
    if it is not None:
        return it.unpack_items()
    raise Unsupported(f"iteration over {v!r}")


def _python_iter(tx, v, live=False):
    """iter(obj) for an object whose class defines __iter__ in Python (a Sequence subclass
    gets Sequence.__iter__, a generator over obj[i] until IndexError): inlined, lazily.
    live: the iterator outlives this call (a for loop); only in an inlined function, where
    a break goes to the caller's call: a generator in progress in the top-level frame
    cannot be rebuilt at a break (the frame would run as plain Python), so its loop breaks
    at GET_ITER and iterates natively."""
    if isinstance(v, ConstValue) and isa(v.value, (torch.nn.Module, tuple, list, dict, range, str)):
        return None
    method = python_dunder(v, "__iter__")
    if method is None:
        return None
    if live and tx.parent is None:
        raise Unsupported(f"a loop over {v!r}, whose __iter__ is Python code, iterates natively here")
    it = method(tx, [])
    if not isinstance(it, IteratorValue):
        raise Unsupported(f"{v!r}.__iter__ returned {it!r}")
    return it


def loop_break(exc):
    """A break that a loop's own frame handles best (loop specialization, run-time counters):
    never kept inside an inlined callee (nested_breaks.py)."""
    exc.loop = True
    return exc


def get_iter(tx, v):
    if isinstance(v, (IteratorValue, OpaqueIterator)):
        return v
    if isinstance(v, ListValue):  # live: sees the list's later appends and assignments
        return IteratorValue([], live=v)
    if isinstance(v, DictValue):  # live: raises if the dict changes size (iterators.py)
        return DictIterator(v)
    if isinstance(v, DictViewValue):
        return v.iterate()
    it = _python_iter(tx, v, live=True)
    if it is not None:
        return it
    if isinstance(v, TensorValue) and v.facts.dim() and isinstance(v.facts.shape[0], torch.SymInt):
        # yolov3's `for i, anchor_ious in enumerate(ious.t())` over its target count: unrolled,
        # the loop pins the count (a translation per count); run natively, its body is one
        # resume function for every count
        raise loop_break(Unsupported("a loop over the rows of a tensor of symbolic length (runs natively)"))
    it = IteratorValue(unpack(tx, v))
    it.tensor_rows = isinstance(v, TensorValue)
    if isinstance(v, ConstValue) and type(v.value) in (range, str, tuple, bytes) or \
            isinstance(v, TupleValue) and v.cls is tuple:
        it.origin = v  # rebuilt as iter(v) at its index at a break: CPython's iterator type
    return it


def dict_items(tx, v):
    if isinstance(v, DictValue):
        return dict(v.items)
    if isinstance(v, ConstValue) and isa(v.value, dict):
        return {k: ConstValue(x) for k, x in v.value.items()}
    raise Unsupported(f"mapping expected, got {v!r}")


