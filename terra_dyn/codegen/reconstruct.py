"""Rebuilding abstract values as real objects in the rewritten code: the driver.

Each value kind says how it is rebuilt (translate/values.py and its neighbours implement
the protocol); this module only drives it, and knows no value class:

    value.rebuild(r)      instructions leaving the real object on the stack
    value.children()      the values its rebuild pushes (built first, see materialize)
    value.fresh_mutable() made during translation and shared by identity: built once per
                          run into a temp local, every later push loads that temp
    value.fill(r, load)   instructions run after the temp is stored (a cell's contents)

    Reconstructor(outputs).push(value) -> instructions; r.items, r.call_const, r.output,
    r.load_source, r.const, r.is_simple, r.build_dict are what rebuild() implementations call back.

Example: returning `(y, x.shape[0], [y, 1])` with y graph output 0 emits
    LOAD_FAST ___out; LOAD_CONST 0; BINARY_SUBSCR; LOAD_CONST 4; <y again>; LOAD_CONST 1;
    BUILD_LIST 2; BUILD_TUPLE 3
(TupleValue.rebuild pushes its items; the list is fresh, so it goes through a temp.)
"""
import collections
import types

import torch
from bytecode import Instr

from ..errors import Unsupported
from ..real_types import asks_user_code, held_by_its_module, instance_dict, isa, plain_slice
from ..seam import rules

OUT = "___graph_out"
_SIMPLE = (int, float, bool, str, bytes, complex, type(None), range, slice, type(Ellipsis),
           torch.dtype, torch.device, torch.layout, torch.memory_format)
_BY_IDENTITY = (types.FunctionType, types.BuiltinFunctionType, types.ModuleType, type,
                torch.nn.Module, types.MethodType, types.MethodDescriptorType,
                types.WrapperDescriptorType, types.MethodWrapperType)


# the objects a bound builtin method of which is typically made per call (`box.append`,
# `t.add_` passed as a callback): held, it would keep its object alive
_PER_CALL_SELF = (list, dict, set, bytearray, collections.deque, torch.Tensor)
_HEAPTYPE = 1 << 9


def is_per_call_callable(obj):
    """A callable object made per call that identity guards hold weakly: a builtin method
    bound to a container or a tensor, or an instance of a Python class with `__call__`,
    weak references and no `__dict__` (its slots hold nothing a guard could read)."""
    kind = type(obj)
    if kind is types.BuiltinMethodType:
        return isinstance(getattr(obj, "__self__", None), _PER_CALL_SELF)
    return bool(kind.__flags__ & _HEAPTYPE) and kind.__weakrefoffset__ != 0 and callable(obj) and \
        not kind.__module__.startswith("torch") and not isinstance(obj, type) and instance_dict(obj) is None


def held_weakly(obj):
    """Guards and emitted code must not keep `obj` alive: a function or class its module does
    not hold (a local one, a `functools.wraps` wrapper or a `type(...)` class made per
    call), or another callable made per call."""
    if isa(obj, type) and not type.__dict__["__flags__"].__get__(obj) & _HEAPTYPE:
        return False  # a static type (NoneType, a C extension's class): never made per call
    if isa(obj, (type, types.FunctionType)):
        return not held_by_its_module(obj)
    return is_per_call_callable(obj)


def call_const(fn, arg_instrs, nargs):
    """Instructions calling the constant `fn` with `nargs` arguments pushed by arg_instrs."""
    return rules.call_const(fn, arg_instrs, nargs)


class Reconstructor:
    def __init__(self, output_index):
        self.output_index = output_index  # fx node -> index in the graph's output tuple
        self.temps = {}  # id(mutable value made during translation) -> local holding it
        self._alive = []
        self._building = {}  # id(value) -> how many materialize() calls are inside it

    # -- the driver ------------------------------------------------------------------
    def push(self, v):
        name = self.temps.get(id(v))
        if name is not None:
            return [Instr("LOAD_FAST", name)]
        if v.fresh_mutable():
            return self.materialize(v) + [Instr("LOAD_FAST", self.temps[id(v)])]
        return v.rebuild(self)

    def materialize(self, v):
        """Build a list/dict/object made during translation once, into a temp local, so
        that every later push gives the same object (`return xs, xs`, a bound xs.append)."""
        if not v.fresh_mutable() or id(v) in self.temps:
            return []
        # entered again for v while building v: once is a cell's fill() reaching its own
        # function (below); twice is a cycle through children (`x.me = x`), no order of
        # which builds the children first
        depth = self._building.get(id(v), 0)
        if depth >= 2:
            raise Unsupported("a cycle of objects made in the frame cannot be rebuilt")
        self._building[id(v)] = depth + 1
        out = []
        try:
            for child in v.children():
                out += self.materialize(child)
        finally:
            self._building[id(v)] = depth
        if id(v) in self.temps:  # reached again through a child (a cell holding its closure)
            return out
        out += v.rebuild(self)
        name = self._temp(v)
        # a cell fills in its contents only now: a function stored in the cell it closes
        # over (a recursive inner def) then finds the cell already built
        return out + [Instr("STORE_FAST", name)] + v.fill(self, [Instr("LOAD_FAST", name)])

    def pin(self, v):
        """Load a value reached through a path (`h.l`, `xs[0]`) into a temp local now, before
        a native instruction that may rebind the path (`h.l = [5]` after `l = h.l`)."""
        source = v.source
        if source is None or not source.is_path or id(v) in self.temps:
            return []
        try:
            code = v.rebuild(self)
        except Unsupported:
            return []
        if code != list(source.load()):
            return []  # a constant or a rebuilt value: no path to go stale
        name = self._temp(v)
        return code + [Instr("STORE_FAST", name)]

    def pin_all(self, values):
        """pin() every value reached from `values` (their children too), before the replayed
        side effects: a source names the state at the frame's entry, which a replayed store
        may change (`x = obj.v; obj.v = x + 1; return x` must return the old obj.v)."""
        out, seen, todo = [], set(), list(values)
        while todo:
            v = todo.pop()
            if v is None or id(v) in seen:
                continue
            seen.add(id(v))
            if getattr(v, "source", None) is not None:
                out += self.pin(v)  # rebuilt from its source, not from its children
            else:
                todo.extend(v.children())
        return out

    def _temp(self, v):
        name = f"___obj{len(self.temps)}"
        self.temps[id(v)] = name
        self._alive.append(v)  # ids stay unique while this reconstructor lives
        return name

    # -- what rebuild() implementations call back --------------------------------------
    def items(self, values):
        """Each value pushed, in order."""
        out = []
        for item in values:
            out += self.push(item)
        return out

    def call_const(self, fn, arg_instrs, nargs):
        return call_const(fn, arg_instrs, nargs)

    def output(self, node):
        """Load graph output `node` from the compiled graph's result tuple."""
        index = self.output_index.get(node)
        if index is None:
            raise Unsupported(f"{node.name} is not a graph output")
        return [Instr("LOAD_FAST", OUT), Instr("LOAD_CONST", index), Instr("BINARY_SUBSCR")]

    def load_source(self, source):
        return list(source.load())

    def is_simple(self, value):
        """A value LOAD_CONST may bake into the code: immutable, equal on every run."""
        return isa(value, _SIMPLE) and plain_slice(value)

    def const(self, value, source=None):
        """LOAD_CONST where baking the object in is safe (simple, or kept by identity, but
        for a local class, which the code would keep alive), else the load of where it lives
        at run time."""
        if isa(value, _SIMPLE) and plain_slice(value) or isa(value, _BY_IDENTITY) and not held_weakly(value) \
                or source is None:
            if asks_user_code(type(value)):  # the bytecode package's isinstance() checks on
                # an argument would run its __getattribute__ / __class__ property
                return [Instr("LOAD_CONST", (value,)), Instr("LOAD_CONST", 0), Instr("BINARY_SUBSCR")]
            return [Instr("LOAD_CONST", value)]
        return list(source.load())

    def build_dict(self, items):
        """A dict with constant keys from {key: Value}."""
        keys = list(items)
        return self.items(list(items.values())) + [
            Instr("LOAD_CONST", tuple(keys)), Instr("BUILD_CONST_KEY_MAP", len(keys))]
