"""Rebuilding abstract values as real objects in the rewritten code (bytecode emitters).

    Reconstructor(outputs).push(value) -> instructions leaving the real object on the stack
        TensorValue / ScalarValue  graph input: load its source; else graph output i
        ConstValue                 LOAD_CONST (or its source for objects guarded by type)
        TupleValue / ListValue / DictValue   load the source, or rebuild from items
        IteratorValue              iter(remaining items), or its rebuild() call (iterators.py)
        MethodValue                obj.name (a bound method)
        NullValue                  PUSH_NULL

Example: returning `(y, x.shape[0], [y, 1])` with y graph output 0 emits
    LOAD_FAST ___out; LOAD_CONST 0; BINARY_SUBSCR; LOAD_CONST 4; <y again>; LOAD_CONST 1;
    BUILD_LIST 2; BUILD_TUPLE 3
"""
import types

import torch
from bytecode import Instr

from ..seam import rules
from ..translate.errors import Unsupported
from ..translate.generator_cm import GeneratorCMValue, make_manager
from ..translate.sources import LocalSource
from ..translate.model_output import ModelOutputValue, rebuild as rebuild_model_output
from ..translate.modules import BuiltModuleValue, build_module
from ..translate.super_calls import SuperMethodValue, SuperValue
from ..translate.opcodes_control import GradModeExit, grad_mode_restore
from ..translate.values import (CellValue, ConstValue, ContextValue, DictValue, DictViewValue, FormattedValue,
                                FunctionValue,
                                IteratorValue, ListValue, MethodValue, NullValue, ObjectValue,
                                OpaqueIterator, ScalarValue, SliceValue, TensorValue, TupleValue)

OUT = "___graph_out"
_SIMPLE = (int, float, bool, str, bytes, complex, type(None), range, slice, type(Ellipsis),
           torch.dtype, torch.device, torch.layout, torch.memory_format)
_BY_IDENTITY = (types.FunctionType, types.BuiltinFunctionType, types.ModuleType, type,
                torch.nn.Module, types.MethodType, types.MethodDescriptorType,
                types.WrapperDescriptorType, types.MethodWrapperType)


def call_const(fn, arg_instrs, nargs):
    """Instructions calling the constant `fn` with `nargs` arguments pushed by arg_instrs."""
    return rules.call_const(fn, arg_instrs, nargs)


def _is_fresh_mutable(v):
    if isinstance(v, ConstValue):
        return v.fresh
    if isinstance(v, IteratorValue):  # `for i in it: next(it)`: the loop and `it` share one
        return True
    if isinstance(v, CellValue):  # a cell made during translation (a frame's own, a closure's)
        return not getattr(v, "real", False)
    fresh = (ListValue, TupleValue, DictValue, ObjectValue, FunctionValue)  # tuples: `is`
    return isinstance(v, fresh) and getattr(v, "source", None) is None


def _children(v):
    if isinstance(v, (ListValue, TupleValue)):
        return list(v.items)
    if isinstance(v, DictValue):
        return list(v.items.values())
    if isinstance(v, ObjectValue):
        return list(v.attrs.values())
    if isinstance(v, (IteratorValue, DictViewValue)):
        return v.args
    if isinstance(v, FunctionValue):
        return list(v.closure or [])
    return []


def _rebuild_model_output_natively():
    """model_output.rebuild with the hook off: the class's __init__, __post_init__ and
    __setitem__ are machinery with no tensor work; translated one by one they only broke."""
    global _REBUILD_MODEL_OUTPUT
    if _REBUILD_MODEL_OUTPUT is None:
        from .. import _C

        _REBUILD_MODEL_OUTPUT = _C.DisabledCallable(rebuild_model_output)
    return _REBUILD_MODEL_OUTPUT


_REBUILD_MODEL_OUTPUT = None


def rebuild_object(cls, attrs):
    obj = object.__new__(cls)
    obj.__dict__.update(attrs)
    return obj


class Reconstructor:
    def __init__(self, output_index):
        self.output_index = output_index  # fx node -> index in the graph's output tuple
        self.temps = {}  # id(mutable value made during translation) -> local holding it
        self._alive = []

    def materialize(self, v):
        """Build a list/dict/object made during translation once, into a temp local, so
        that every later push gives the same object (`return xs, xs`, a bound xs.append)."""
        if not _is_fresh_mutable(v) or id(v) in self.temps:
            return []
        if isinstance(v, CellValue):
            return self._materialize_cell(v)
        out = []
        for child in _children(v):
            out += self.materialize(child)
        if id(v) in self.temps:  # reached again through a child (a cell holding its closure)
            return out
        out += self._build(v)
        name = f"___obj{len(self.temps)}"
        self.temps[id(v)] = name
        self._alive.append(v)
        return out + [Instr("STORE_FAST", name)]

    def _materialize_cell(self, cell):
        """An empty cell first, its contents after: a function stored in the cell it closes
        over (a recursive inner def) then finds the cell already built."""
        name = f"___obj{len(self.temps)}"
        self.temps[id(cell)] = name
        self._alive.append(cell)
        out = call_const(types.CellType, [], 0) + [Instr("STORE_FAST", name)]
        if cell.content is not None:
            out += self.push(cell.content) + [Instr("LOAD_FAST", name), Instr("STORE_ATTR", "cell_contents")]
        return out

    def pin(self, v):
        """Load a value reached through a path (`h.l`, `xs[0]`) into a temp local now, before
        a native instruction that may rebind the path (`h.l = [5]` after `l = h.l`)."""
        source = getattr(v, "source", None)
        if source is None or isinstance(source, LocalSource) or id(v) in self.temps:
            return []
        try:
            code = self._build(v)
        except Unsupported:
            return []
        if code != list(source.load()):
            return []  # a constant or a rebuilt value: no path to go stale
        name = f"___obj{len(self.temps)}"
        self.temps[id(v)] = name
        self._alive.append(v)
        return code + [Instr("STORE_FAST", name)]

    def push(self, v):
        name = self.temps.get(id(v))
        if name is not None:
            return [Instr("LOAD_FAST", name)]
        if _is_fresh_mutable(v):
            return self.materialize(v) + [Instr("LOAD_FAST", self.temps[id(v)])]
        return self._build(v)

    def _build(self, v):
        if isinstance(v, (TensorValue, ScalarValue)):
            if v.node.op == "placeholder" and v.source is not None:
                return list(v.source.load())
            index = self.output_index.get(v.node)
            if index is None:
                raise Unsupported(f"{v!r} is not a graph output")
            return [Instr("LOAD_FAST", OUT), Instr("LOAD_CONST", index), Instr("BINARY_SUBSCR")]
        if isinstance(v, NullValue):
            return rules.push_null()
        if isinstance(v, BuiltModuleValue):  # a new module per call, as the frame built it
            return call_const(build_module, [Instr("LOAD_CONST", v.cls), Instr("LOAD_CONST", v.args),
                                             Instr("LOAD_CONST", v.kwargs)], 3)
        if isinstance(v, ConstValue):
            value = v.value
            if (v.by_type or v.module_by_type) and v.source is not None:  # only its type is guarded
                return list(v.source.load())
            if v.fresh:  # a new set on every call: one baked-in set would collect every call's adds
                return call_const(set, [Instr("LOAD_CONST", frozenset(value))], 1)
            if isinstance(value, _SIMPLE) or isinstance(value, _BY_IDENTITY) or v.source is None:
                return [Instr("LOAD_CONST", value)]
            return list(v.source.load())
        if isinstance(v, TupleValue):
            if v.source is not None:
                return list(v.source.load())
            items = self._items(v.items)
            if v.cls is tuple:
                return items + [Instr("BUILD_TUPLE", len(v.items))]
            if v.cls is torch.Size:
                return call_const(torch.Size, items + [Instr("BUILD_TUPLE", len(v.items))], 1)
            if hasattr(v.cls, "n_fields"):  # a structseq takes one sequence
                return call_const(v.cls, items + [Instr("BUILD_TUPLE", len(v.items))], 1)
            return call_const(v.cls, items, len(v.items))
        if isinstance(v, ListValue):
            if v.source is not None:
                return list(v.source.load())
            return self._items(v.items) + [Instr("BUILD_LIST", len(v.items))]
        if isinstance(v, DictValue):
            if v.source is not None:
                return list(v.source.load())
            return self.build_dict(v)
        if isinstance(v, (IteratorValue, DictViewValue)):
            rebuilt = v.rebuild()  # over live containers: a call making the real one, same state
            if rebuilt is not None:
                fn, args = rebuilt
                return call_const(fn, self._items(args), len(args))
            rest = v.remaining()
            r = getattr(v, "range", None)
            if r is not None:
                left = r[v.index:]
                return [Instr("LOAD_CONST", left), Instr("GET_ITER")]
            if all(isinstance(x, ConstValue) and isinstance(x.value, _SIMPLE) for x in rest):
                return [Instr("LOAD_CONST", tuple(x.value for x in rest)), Instr("GET_ITER")]
            return self._items(rest) + [Instr("BUILD_TUPLE", len(rest)), Instr("GET_ITER")]
        if isinstance(v, OpaqueIterator):
            return list(v.source.load())
        if isinstance(v, SliceValue):
            return call_const(slice, self._items(v.parts), 3)
        if isinstance(v, SuperValue):
            return call_const(super, [Instr("LOAD_CONST", v.cls)] + self.push(v.obj), 2)
        if isinstance(v, SuperMethodValue) and isinstance(v.fn, ConstValue):
            return call_const(types.MethodType, [Instr("LOAD_CONST", v.fn.value)] + self.push(v.self_value), 2)
        if isinstance(v, MethodValue):
            fn = v.fn.value if isinstance(v.fn, ConstValue) else None
            if fn is GradModeExit:  # a no_grad block split by a break: restore on exit
                return [Instr("LOAD_CONST", grad_mode_restore(v.self_value.previous))]
            name = getattr(fn, "__name__", None)
            if name is None:
                raise Unsupported(f"cannot rebuild {v!r}")
            return self.push(v.self_value) + rules.load_attr(name)
        if isinstance(v, FunctionValue):
            if getattr(v, "source", None) is not None:  # a real function (translate/frame.py)
                return list(v.source.load())
            if v.kwdefaults is not None:
                raise Unsupported("cannot rebuild a function with keyword-only defaults")
            if not v.closure and v.defaults is None:
                return [Instr("LOAD_CONST", v.code)] + rules.make_function()
            # a closure: its cells are the frame's (shared with resume functions) or built here
            defaults = self.push(v.defaults) if v.defaults is not None else [Instr("LOAD_CONST", None)]
            closure = self._items(v.closure) + [Instr("BUILD_TUPLE", len(v.closure))] if v.closure else [
                Instr("LOAD_CONST", None)]
            made = [Instr("LOAD_CONST", v.code), Instr("LOAD_CONST", v.f_globals), Instr("LOAD_CONST", v.name)]
            return call_const(types.FunctionType, made + defaults + closure, 5)
        if isinstance(v, GeneratorCMValue) and v.child is None:  # not entered yet
            kwargs = DictValue(dict(v.kwargs))
            return call_const(make_manager, self.push(v.func) + self._items(v.args) + [
                Instr("BUILD_TUPLE", len(v.args))] + self.build_dict(kwargs), 3)
        if isinstance(v, ModelOutputValue):  # cls(**fields): the dict part is built too
            keys = v.keys()
            items = [ins for k in keys for ins in self.push(v.attrs[k])]
            args = [Instr("LOAD_CONST", v.cls)] + items + [
                Instr("LOAD_CONST", tuple(keys)), Instr("BUILD_CONST_KEY_MAP", len(keys))]
            return call_const(_rebuild_model_output_natively(), args, 2)
        if isinstance(v, ObjectValue):
            keys = list(v.attrs)
            items = []
            for k in keys:
                items += self.push(v.attrs[k])
            args = [Instr("LOAD_CONST", v.cls)] + items + [
                Instr("LOAD_CONST", tuple(keys)), Instr("BUILD_CONST_KEY_MAP", len(keys))]
            return call_const(rebuild_object, args, 2)
        if isinstance(v, FormattedValue):
            out = []
            for part in v.parts:
                if isinstance(part, tuple):
                    scalar, conversion, spec = part
                    out += self.push(scalar)
                    if spec:
                        out.append(Instr("LOAD_CONST", spec))
                    out += rules.format_value(conversion, bool(spec))
                else:
                    out += self.push(part)
            return out + [Instr("BUILD_STRING", len(v.parts))]
        if isinstance(v, CellValue) and getattr(v, "closure_name", None) is not None:
            return rules.load_closure(v.closure_name)  # the frame's own cell
        if isinstance(v, (CellValue, ContextValue)):
            raise Unsupported(f"cannot rebuild {v!r} after a graph break")
        raise Unsupported(f"cannot rebuild {v!r}")

    def _items(self, items):
        out = []
        for item in items:
            out += self.push(item)
        return out

    def build_dict(self, v):
        keys = list(v.items)
        return self._items(list(v.items.values())) + [
            Instr("LOAD_CONST", tuple(keys)), Instr("BUILD_CONST_KEY_MAP", len(keys))]
