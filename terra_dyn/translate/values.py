"""Abstract values: what the translator's stack and locals hold.

    TensorValue     an FX node + its facts: a meta tensor (shape/dtype) and a device
    ConstValue      a Python object known at translate time (int, str, dtype, function,
                    module, class, range, ...); `source` says where it lives at run time
    TupleValue      tuple / torch.Size / namedtuple of values
    ListValue       a list of values (mutations are tracked, replayed on the real list)
    DictValue       a dict with constant keys
    IteratorValue   an iterator over known values, and DictViewValue: see iterators.py
    FunctionValue   a function made by MAKE_FUNCTION during translation
    MethodValue     a bound method: function value + self value
    NullValue       the NULL that PUSH_NULL / LOAD_GLOBAL push before a callable
    ScalarValue     a Python number known only at run time (an FX node), e.g. a loop counter
                    or a symbolic size read as a number (`n = x.shape[0]`)
    SliceValue      a slice with a run-time bound (`x[:n]`)
    ContextValue    torch.no_grad() / enable_grad() / set_grad_enabled(b) objects
    OpaqueIterator  a real iterator object (e.g. handed to a resume function): FOR_ITER breaks

Example: `x.shape[0] + 1` on a (4, 3) tensor gives ConstValue(5): shapes are static and
guarded, so arithmetic on them folds at translate time. Once x's size 0 changed between
calls it is symbolic, and the same code gives ScalarValue(add: s0 + 1).
"""
from collections.abc import Sequence

import torch


class Value:
    source = None  # sources.Source: where the real object is at run time (None: made here)

    def as_python(self):
        """The real Python object, when it is known at translate time."""
        from .errors import Unsupported

        raise Unsupported(f"{self!r} has no value known at translate time")

    def is_const(self):
        return False


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
    if grad:
        base = base.requires_grad_(True).clone()  # a non-leaf, like t
    return base.as_strided(size, stride, offset)


class ExampleInputs(Sequence):
    """A graph's example inputs for its backend, made on first use: fake tensors (and the
    numbers of ScalarValues). Making a fake tensor starts FakeTensorMode, which imports
    torch._dynamo's config and sympy; the interpreter backend never looks, and
    `tensor_facts()` answers the auto backend's questions without fakes. release() drops the
    translation's values (they hold the real inputs: a dropped model must be freed)."""

    def __init__(self, values):
        self._values = list(values)
        self._made = {}

    def __len__(self):
        return len(self._values)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(len(self))[i]]
        i = range(len(self))[i]
        if i not in self._made:
            v = self._values[i]
            if isinstance(v, ScalarValue):
                self._made[i] = v.example
            elif isinstance(v, TensorValue):
                self._made[i] = v.fake
            else:  # released: (meta, device), in a fake mode of its own
                from torch._subclasses.fake_tensor import FakeTensorMode
                mode = FakeTensorMode()
                self._made[i] = mode.fake_tensor_converter.from_meta_and_device(mode, *v)
        return self._made[i]

    def tensor_facts(self):
        """(device, numel) of each tensor input."""
        return [(v.device, v.facts.numel()) if isinstance(v, TensorValue) else (v[1], v[0].numel())
                for v in self._values if isinstance(v, (TensorValue, tuple))]

    def release(self):
        for i, v in enumerate(self._values):
            if isinstance(v, TensorValue):
                # symbolic sizes: only its own fake mode knows them, so make that fake now
                self._values[i] = (self[i], v.device) if v.slow else (v.meta, v.device)
            elif isinstance(v, ScalarValue):
                self._values[i] = ScalarValue(None, v.example)


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

    def __repr__(self):
        return f"ScalarValue({self.node.name}: {self.example if self.symbolic else type(self.example).__name__})"


SYMBOLIC_NUMBERS = (torch.SymInt, torch.SymFloat, torch.SymBool)


class SliceValue(Value):
    """`a[i:n]` with a bound known only at run time: start, stop, step as Values."""

    def __init__(self, start, stop, step):
        self.parts = [start, stop, step]

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

    def __repr__(self):
        from .errors import safe_repr

        return f"ConstValue({safe_repr(self.value)})"


class NullValue(Value):
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

    def __repr__(self):
        if self.is_lazy():
            return f"ListValue(<{self.source!r}, not read>)"
        return f"ListValue([{', '.join(map(repr, self.items))}])"


class DictValue(Value):
    def __init__(self, items, source=None):
        self.items = dict(items)  # python key -> Value
        self.source = source

    def __repr__(self):
        inner = ", ".join(f"{k!r}: {v!r}" for k, v in self.items.items())
        return f"DictValue({{{inner}}})"


class OpaqueIterator(Value):
    """A real iterator object whose remaining items are unknown without consuming it."""

    def __init__(self, value, source):
        self.value = value
        self.source = source

    def __repr__(self):
        return f"OpaqueIterator({type(self.value).__name__})"


class FunctionValue(Value):
    """A function created during translation (a lambda, a nested def, a closure)."""

    def __init__(self, code, f_globals, name, defaults=None, kwdefaults=None, closure=None):
        self.code = code
        self.f_globals = f_globals
        self.name = name
        self.qualname = code.co_qualname  # as MAKE_FUNCTION sets it
        self.defaults = defaults  # TupleValue or None
        self.kwdefaults = kwdefaults  # DictValue or None
        self.closure = closure  # list of CellValue or None

    def __repr__(self):
        return f"FunctionValue({self.name})"


class CellValue(Value):
    """A closure cell created during translation."""

    def __init__(self, content=None):
        self.content = content

    def __repr__(self):
        return f"CellValue({self.content!r})"


class MethodValue(Value):
    def __init__(self, fn, self_value, source=None):
        self.fn = fn  # a Value (ConstValue of a function, or FunctionValue)
        self.self_value = self_value
        self.source = source

    def __repr__(self):
        return f"MethodValue({self.fn!r} of {self.self_value!r})"


class ContextValue(Value):
    """A grad-mode context manager; entering sets grad mode inside the graph."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.previous = None

    def __repr__(self):
        return f"ContextValue(grad_enabled={self.enabled})"


class FormattedValue(Value):
    """An f-string with run-time numbers in it, built when a recorded print replays.
    `parts`: ConstValue strings and (ScalarValue, conversion, format spec) triples."""

    def __init__(self, parts):
        self.parts = list(parts)

    def __repr__(self):
        return f"FormattedValue({len(self.parts)} parts)"


class ObjectValue(Value):
    """A user object created during translation: class + attribute values (dataclasses)."""

    def __init__(self, cls, attrs):
        self.cls = cls
        self.attrs = dict(attrs)

    def __repr__(self):
        return f"ObjectValue({self.cls.__name__})"


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


# iterators.py builds on the classes above; imported here so that every value class
# is importable from this module
from .iterators import DictViewValue, IteratorValue  # noqa: E402,F401
