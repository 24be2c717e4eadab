"""Abstract values: what the translator's stack and locals hold.

    TensorValue     an FX node + its facts: a meta tensor (shape/dtype) and a device
    ConstValue      a Python object known at translate time (int, str, dtype, function,
                    module, class, range, ...); `source` says where it lives at run time
    TupleValue      tuple / torch.Size / namedtuple of values
    ListValue       a list of values (mutations are tracked, replayed on the real list)
    DictValue       a dict with constant keys
    IteratorValue   an iterator over known values, and DictViewValue: see iterators.py
    FunctionValue   a function made by MAKE_FUNCTION during translation (function_values.py)
    MethodValue     a bound method: function value + self value
    NullValue       the NULL that PUSH_NULL / LOAD_GLOBAL push before a callable
    ScalarValue     a Python number known only at run time (an FX node), e.g. a loop counter
                    or a symbolic size read as a number (`n = x.shape[0]`)
    SliceValue      a slice with a run-time bound (`x[:n]`)
    ContextValue    torch.no_grad() / enable_grad() / set_grad_enabled(b) objects
    OpaqueIterator  a real iterator object (e.g. handed to a resume function): FOR_ITER breaks

Each kind says how it is rebuilt in emitted code and how it becomes an FX argument (the
protocol on Value below: children, fresh_mutable, rebuild, fill, as_fx_arg); codegen's
Reconstructor drives rebuild() and knows no value class (docs/VERSIONS.md).

Example: `x.shape[0] + 1` on a (4, 3) tensor gives ConstValue(5): shapes are static and
guarded, so arithmetic on them folds at translate time. Once x's size 0 changed between
calls it is symbolic, and the same code gives ScalarValue(add: s0 + 1).
"""
import types

import torch
from bytecode import Instr

from ..real_types import is_numpy_scalar, isa
from ..errors import Unsupported
from ..seam import rules


class Value:
    source = None  # sources.Source: where the real object is at run time (None: made here)

    def as_python(self):
        """The real Python object, when it is known at translate time."""
        from .errors import Unsupported

        raise Unsupported(f"{self!r} has no value known at translate time")

    def is_const(self):
        return False

    # -- the rebuild protocol: codegen/reconstruct.py's Reconstructor `r` drives it ------
    is_null = False  # True only for the NULL before a callable (a resume call skips it)

    def children(self):
        """The values to build before this one when it is fresh (a leaf: none)."""
        return []

    def fresh_mutable(self):
        """True for an object made during translation that the program may mutate or compare
        by identity: built once per run into a temp local, and every push loads that temp."""
        return False

    def rebuild(self, r):
        """Instructions leaving the real object on the stack, through r.push(child),
        r.items(values), r.call_const(fn, instrs, n), r.output(node), r.load_source(source),
        r.const(value, source); version-specific instructions come from seam `rules`. Every
        value kind implements it or raises Unsupported saying why (tests/seam checks)."""
        raise Unsupported(f"cannot rebuild {self!r}")

    def fill(self, r, load):
        """Instructions completing a fresh value after its temp is stored (`load` pushes it)."""
        return []

    def as_fx_arg(self):
        """This value as an FX node argument: a node, a constant, or a container of them."""
        raise Unsupported(f"cannot pass {self!r} to a graph op")

    def seen_by_op(self, facts):
        """The Python object an op sees at translate time: tensors as their `facts` tensor
        ("meta" or "fake"), containers rebuilt from their items, constants themselves."""
        return self


class TensorValue(Value):
    """A tensor in the graph: its FX node and its facts (shape, strides, dtype, requires_grad
    from `meta`, a tensor on the meta device, plus `device`, the device it stands for).

    Built from a meta tensor and a device (the fast path: ops propagate on meta tensors), or
    from a fake tensor (`TensorValue(node, fake)`: the device is the fake's). The other form
    is made on first use: `.fake` for ops that need FakeTensorMode, `.meta` for shape facts.
    """

    real = None  # the real tensor, for graph inputs
    slow = False  # True: every op on it propagates under FakeTensorMode

    def __init__(self, node, example, source=None, device=None, owner=None):
        self.node = node
        self.source = source
        if device is None:  # a fake tensor
            self._fake, self._meta, self.device = example, None, example.device
        else:
            self._fake, self._meta, self.device = None, example, device
        meta = getattr(node, "meta", None)
        if meta is not None:  # backends read a node's device here: its example may be a meta tensor
            meta["device"] = self.device
        self._owner = owner  # the GraphState, whose fake mode makes `.fake` on demand

    @property
    def meta(self):
        if self._meta is None:
            self._meta = meta_like(self._fake)
        return self._meta

    @property
    def facts(self):
        """The tensor to read shapes and dtypes from: the fake one for values that propagate
        under FakeTensorMode (their sizes may be symbolic), else the meta one."""
        return self.fake if self.slow else self.meta

    @property
    def fake(self):
        if self._fake is None:
            mode = self._owner.fake_mode
            if self.real is not None:
                self._fake = mode.from_tensor(self.real, static_shapes=True)
            else:
                self._fake = mode.fake_tensor_converter.from_meta_and_device(mode, self._meta, self.device)
        return self._fake

    def rebuild(self, r):
        if self.node.op == "placeholder" and self.source is not None:
            return r.load_source(self.source)  # a graph input: load it where it came from
        return r.output(self.node)

    def as_fx_arg(self):
        return self.node

    def seen_by_op(self, facts):
        return getattr(self, facts)

    def __repr__(self):
        f = self.meta
        return f"TensorValue({self.node.name}: {str(f.dtype).replace('torch.', '')}{list(f.shape)})"


def meta_like(t):
    """A fresh meta tensor with t's sizes, strides, storage offset, dtype, requires_grad and
    leafness (an in-place op on a leaf that requires grad fails; on a non-leaf it does not)."""
    size, stride = tuple(t.shape), tuple(t.stride())
    offset = t.storage_offset()
    grad = t.requires_grad
    if not offset and (t.is_leaf or not grad):
        out = torch.empty_strided(size, stride, dtype=t.dtype, device="meta")
        return out.requires_grad_(True) if grad else out
    extent = offset + sum((s - 1) * st for s, st in zip(size, stride)) + 1 if all(size) else offset
    base = torch.empty(extent, dtype=t.dtype, device="meta")
    if not grad:
        return base.as_strided(size, stride, offset)
    # a non-leaf, like t, also when grad mode is off here: a resume function translated
    # after a native call that switched grad mode off got facts saying a product made
    # before the switch did not require grad (its real tensor does); inference mode too
    with torch.inference_mode(False), torch.enable_grad():
        return base.requires_grad_(True).clone().as_strided(size, stride, offset)


class ScalarValue(Value):
    """A Python int/float/bool only known at run time: an FX node (a graph input, a size of a
    tensor with symbolic sizes, or arithmetic on them). Tensor ops may use it.

    `example` is either a plain number (the value seen at translate time; control flow on
    it is a graph break) or, for a *symbolic* value, a torch.SymInt/SymBool/SymFloat of the
    translation's ShapeEnv (`s0 // 2`): branching on it guards the relation the branch
    relied on (`a0.size()[0] // 2 > 8`), and needing its value pins it (graph_state)."""

    def __init__(self, node, example, source=None):
        self.node = node
        self.example = example
        self.source = source

    @property
    def symbolic(self):
        return isinstance(self.example, SYMBOLIC_NUMBERS)

    rebuild = TensorValue.rebuild
    as_fx_arg = TensorValue.as_fx_arg

    def seen_by_op(self, facts):
        return self.example

    def __repr__(self):
        return f"ScalarValue({self.node.name}: {self.example if self.symbolic else type(self.example).__name__})"


SYMBOLIC_NUMBERS = (torch.SymInt, torch.SymFloat, torch.SymBool)


class SliceValue(Value):
    """`a[i:n]` with a bound known only at run time: start, stop, step as Values."""

    def __init__(self, start, stop, step):
        self.parts = [start, stop, step]

    def children(self):
        return list(self.parts)

    def rebuild(self, r):
        return r.call_const(slice, r.items(self.parts), 3)

    def as_fx_arg(self):
        return slice(*[fx_arg(x) for x in self.parts])

    def seen_by_op(self, facts):
        return slice(*[seen_by_op(x, facts) for x in self.parts])

    def __repr__(self):
        return f"SliceValue({', '.join(map(repr, self.parts))})"


class ConstValue(Value):
    by_type = False  # True: an object guarded only by its type (attributes are guarded as read)
    fresh = False  # True: a mutable set made during translation (rebuilt per call, not shared)
    module_by_type = False  # True: a module guarded by type (wrap.modules_by_type)

    def __init__(self, value, source=None):
        self.value = value
        self.source = source

    def as_python(self):
        if self.by_type:
            from .errors import Unsupported

            raise Unsupported(f"the value of a {type(self.value).__name__} argument is not guarded")
        return self.value

    def is_const(self):
        return True

    def fresh_mutable(self):
        return self.fresh

    def rebuild(self, r):
        if (self.by_type or self.module_by_type) and self.source is not None:  # only its type is guarded
            return r.load_source(self.source)
        if self.fresh:  # a new set on every call: one baked-in set would collect every call's adds
            return r.call_const(set, [Instr("LOAD_CONST", frozenset(self.value))], 1)
        return r.const(self.value, self.source)

    def as_fx_arg(self):
        value = self.value
        if self.by_type:  # its value is not guarded: baking it in would reuse a stale value
            raise Unsupported(f"cannot pass a {type(value).__name__} guarded only by type to a graph op")
        if isa(value, FX_CONSTANTS) or isa(value, torch.Size):
            return python_numbers(value)
        if isa(value, (tuple, list)) and all(isa(x, FX_CONSTANTS) for x in value):
            return python_numbers(value)
        raise Unsupported(f"cannot pass {type(value).__name__} to a graph op")

    def seen_by_op(self, facts):
        return self.value

    def __repr__(self):
        from .errors import safe_repr

        return f"ConstValue({safe_repr(self.value)})"


class NullValue(Value):
    is_null = True

    def rebuild(self, r):
        return rules.push_null()

    def __repr__(self):
        return "NULL"


NULL = NullValue()


class TupleValue(Value):
    """A tuple; `cls` is tuple, torch.Size or a namedtuple class."""

    def __init__(self, items, cls=tuple, source=None):
        self.items = list(items)
        self.cls = cls
        self.source = source

    def as_python(self):
        vals = [v.as_python() for v in self.items]
        if self.cls is tuple:
            return tuple(vals)
        if self.cls is torch.Size:
            return torch.Size(vals)
        if hasattr(self.cls, "n_fields"):
            return self.cls(vals)
        return self.cls(*vals)

    def is_const(self):
        return all(v.is_const() for v in self.items)

    def children(self):
        return list(self.items)

    def fresh_mutable(self):
        return self.source is None  # tuples too: `is` tells two equal ones apart

    def rebuild(self, r):
        if self.source is not None:
            return r.load_source(self.source)
        items = r.items(self.items)
        packed = items + [Instr("BUILD_TUPLE", len(self.items))]
        if self.cls is tuple:
            return packed
        if self.cls is torch.Size or hasattr(self.cls, "n_fields"):  # a structseq takes one sequence
            return r.call_const(self.cls, packed, 1)
        return r.call_const(self.cls, items, len(self.items))

    def as_fx_arg(self):
        return tuple(fx_arg(x) for x in self.items)

    def seen_by_op(self, facts):
        items = tuple(seen_by_op(x, facts) for x in self.items)
        return torch.Size(items) if self.cls is torch.Size else items

    def __repr__(self):
        name = self.cls.__name__
        return f"TupleValue[{name}]({', '.join(map(repr, self.items))})"


class ListValue(Value):
    """A list. A list from outside the frame starts *lazy*: its items are wrapped (and its
    length guarded) only when read, so a loop that only appends to it (`losses.append(v)`)
    does not need a new translation each time the list grows."""

    def __init__(self, items, source=None, realize=None):
        self._items = list(items) if items is not None else None
        self.source = source
        self._realize = realize
        self.pending = []  # appended while lazy (also recorded as replayed appends)

    @property
    def items(self):
        if self._items is None:
            self._items = self._realize(self) + self.pending
        return self._items

    @items.setter
    def items(self, value):
        self._items = list(value)

    def is_lazy(self):
        return self._items is None

    def known_items(self):
        """The items, without realizing a lazy list."""
        return self.pending if self._items is None else self._items

    def as_python(self):
        if self.source is not None:
            return super().as_python()
        return [v.as_python() for v in self.items]

    def children(self):
        return list(self.items)

    def fresh_mutable(self):
        return self.source is None

    def rebuild(self, r):
        if self.source is not None:
            return r.load_source(self.source)
        return r.items(self.items) + [Instr("BUILD_LIST", len(self.items))]

    def write_back(self, r, target):
        """`target[:] = <the items now>`: a list from outside the frame that was mutated."""
        return r.push(ListValue(self.items)) + target + [Instr("LOAD_CONST", slice(None)), Instr("STORE_SUBSCR")]

    def as_fx_arg(self):
        return [fx_arg(x) for x in self.items]

    def seen_by_op(self, facts):
        return [seen_by_op(x, facts) for x in self.items]

    def __repr__(self):
        if self.is_lazy():
            return f"ListValue(<{self.source!r}, not read>)"
        return f"ListValue([{', '.join(map(repr, self.items))}])"


class DictValue(Value):
    def __init__(self, items, source=None, cls=dict):
        self.items = dict(items)  # python key -> Value
        self.source = source
        self.cls = cls  # dict, collections.OrderedDict or collections.Counter

    def children(self):
        return list(self.items.values())

    def fresh_mutable(self):
        return self.source is None

    def rebuild(self, r):
        if self.source is not None:
            return r.load_source(self.source)
        if self.cls is not dict:  # `od.copy()`, an OrderedDict made here: its own type
            return r.call_const(self.cls, r.build_dict(self.items), 1)
        return r.build_dict(self.items)

    def write_back(self, r, target):
        """`target.clear(); target.update(<the items now>)`, the new contents built first:
        they may read the old ones."""
        out = r.push(DictValue(self.items)) + [Instr("STORE_FAST", "___fresh")]
        out += rules.call_method(target, "clear", [], 0) + [Instr("POP_TOP")]
        return out + rules.call_method(target, "update", [Instr("LOAD_FAST", "___fresh")], 1) + [Instr("POP_TOP")]

    def __repr__(self):
        inner = ", ".join(f"{k!r}: {v!r}" for k, v in self.items.items())
        return f"DictValue({{{inner}}})"


class MethodValue(Value):
    def __init__(self, fn, self_value, source=None):
        self.fn = fn  # a Value (ConstValue of a function, or FunctionValue)
        self.self_value = self_value
        self.source = source

    def rebuild(self, r):
        from .opcodes_control import GradModeExit, grad_mode_restore

        fn = self.fn.value if isinstance(self.fn, ConstValue) else None
        if fn is GradModeExit:  # a no_grad block split by a break: restore on exit
            return [Instr("LOAD_CONST", grad_mode_restore(self.self_value.previous))]
        if isinstance(fn, types.FunctionType) or isinstance(self.fn, FunctionValue):
            # the function itself, bound: `obj.name` may find another one (an override, when
            # the method came from super() or from a bound method handed to a resume function:
            # test_descr's test_bound_method_repr)
            return r.call_const(types.MethodType, r.push(self.fn) + r.push(self.self_value), 2)
        name = getattr(fn, "__name__", None)
        if name is None:
            raise Unsupported(f"cannot rebuild {self!r}")
        return r.push(self.self_value) + rules.load_attr(name)

    def __repr__(self):
        return f"MethodValue({self.fn!r} of {self.self_value!r})"


class ContextValue(Value):
    """A grad-mode context manager; entering sets grad mode inside the graph."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.previous = None

    def rebuild(self, r):
        raise Unsupported(f"cannot rebuild {self!r} after a graph break")

    def __repr__(self):
        return f"ContextValue(grad_enabled={self.enabled})"


class ObjectValue(Value):
    """A user object created during translation: class + attribute values (dataclasses)."""

    def __init__(self, cls, attrs):
        self.cls = cls
        self.attrs = dict(attrs)

    def children(self):
        return list(self.attrs.values())

    def fresh_mutable(self):
        return self.source is None

    def rebuild(self, r):
        keys = list(self.attrs)
        args = [Instr("LOAD_CONST", self.cls)] + r.items([self.attrs[k] for k in keys]) + [
            Instr("LOAD_CONST", tuple(keys)), Instr("BUILD_CONST_KEY_MAP", len(keys))]
        return r.call_const(rebuild_object, args, 2)

    def __repr__(self):
        return f"ObjectValue({self.cls.__name__})"


def rebuild_object(cls, attrs):
    """The emitted construction of an ObjectValue: its attributes, no __init__ run again."""
    obj = object.__new__(cls)
    obj.__dict__.update(attrs)
    return obj


FX_CONSTANTS = (int, float, bool, str, type(None), torch.dtype, torch.device, torch.memory_format,
                torch.layout, type(Ellipsis), slice, range)


def python_numbers(value):
    """numpy scalars in an FX constant as Python numbers, which torch's ops take alike: FX's
    generated code writes a constant as its repr (`np.float64(0.5)` under numpy 2) and has no
    `np` in its globals (the graph raised NameError on every call, then re-ran eagerly)."""
    if is_numpy_scalar(value):
        return value.item()
    if type(value) is slice:
        return slice(python_numbers(value.start), python_numbers(value.stop), python_numbers(value.step))
    if type(value) in (tuple, list):
        return type(value)(python_numbers(x) for x in value)
    return value


def fx_arg(v):
    """v as an FX node argument (Value.as_fx_arg); anything else passes as it is."""
    return v.as_fx_arg() if isinstance(v, Value) else v


def seen_by_op(v, facts):
    """What an op sees for v at translate time (Value.seen_by_op); anything else is itself."""
    return v.seen_by_op(facts) if isinstance(v, Value) else v


def const(value, source=None):
    return ConstValue(value, source)


def is_namedtuple_class(cls):
    return isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")


class Lazy:
    """A real object in a local slot, wrapped into a Value (and guarded) on first read."""

    __slots__ = ("real", "source")

    def __init__(self, real, source):
        self.real, self.source = real, source

    def __repr__(self):
        return f"Lazy({self.source!r})"


# iterators.py and formatted.py build on the classes above; imported here so that every
# value class is importable from this module
from .formatted import FormattedValue  # noqa: E402,F401
from .iterators import DictViewValue, IteratorValue, OpaqueIterator  # noqa: E402,F401


# the function kinds live in their own module; importers keep finding them here
from .function_values import CellValue, FunctionValue  # noqa: E402
