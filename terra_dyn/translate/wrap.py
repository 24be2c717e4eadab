"""Turning real objects into abstract values, with the guards that make it valid.

    wrap(ctx, real, source)
        Tensor            -> TensorValue placeholder; guard dtype/device/shape/strides/grad
                             (parameters and buffers: guard identity)
        int/float/str/... -> ConstValue; guard type and value
                             (a number whose value kept changing here, or on the object it
                             is read from in any code object (changing.py) -> ScalarValue input)
        tuple/list/dict   -> container values of wrapped items; guard type and length/keys
        module, function, class, dtype -> ConstValue; guard identity
                             (a module whose instance kept changing, and everything under
                             it: guard its type; its parameters become tensor inputs)
        iterator          -> OpaqueIterator (loops over it break)
        any other object  -> ConstValue; guard type (its attributes are guarded when read)

Example: wrap(ctx, [t, 3], LocalSource("xs", 0)) -> ListValue([TensorValue(a0[0]), ConstValue(3)])
with guards type(a0) is list, len(a0) == 2, check_tensor(a0[0], ...), a0[1] == 3.
"""
import collections
import enum
import types

import torch

from ..real_types import instance_dict, is_numpy_scalar, isa, plain_slice
from . import changing
from .errors import Unsupported
from .sources import AttrSource, GenericAttrSource, ItemSource, ModuleDictSource
from .values import (ConstValue, DictValue, ListValue, OpaqueIterator, TupleValue,
                     is_namedtuple_class)

_VALUE_TYPES = (int, float, bool, str, bytes, complex, type(None), range, slice, type(Ellipsis))
_IDENTITY_TYPES = (torch.memory_format, torch.layout, torch.qscheme, types.FunctionType, types.BuiltinFunctionType, types.ModuleType, type,
                   types.MethodType, torch.dtype, torch.nn.Module, types.BuiltinMethodType,
                   types.MethodWrapperType, types.WrapperDescriptorType, types.MethodDescriptorType,
                   types.ClassMethodDescriptorType, types.GetSetDescriptorType,
                   # enum members are singletons: identity pins the value (transformers'
                   # deprecation decorator compares an Action member on every call)
                   enum.Enum)
_DICT_TYPES = (dict, collections.Counter, collections.OrderedDict)
_ITERATOR_TYPES = tuple(type(x) for x in (
    iter(range(0)), iter([]), iter(()), iter({}), iter({}.items()), iter({}.values()),
    zip(), enumerate([]), reversed([]), iter("")))


# one value per object, however it is reached: for mutable ones, each path sees the others'
# mutations (`a.hist.append(1)` then `len(a.hist)`; an inlined helper's closure); for tuples,
# `a is b` holds where the paths reach one object
_SHARED = (list, dict, collections.Counter, collections.OrderedDict, tuple)


def wrap(ctx, real, source):
    if source is not None and changing.active() and not isa(real, _VALUE_TYPES):
        _note_owner(ctx, real, source)
    if source is not None and type(real) in _SHARED:
        known = ctx._mutables.get(id(real))
        if known is not None:
            if known.source is not None and known.source != source:
                ctx.guards.same_object(source, known.source, real)  # f(xs, xs), then f(xs, ys)
            return known
        value = _wrap(ctx, real, source)
        ctx._mutables[id(real)] = value
        ctx._keepalive.append(real)
        return value
    known = ctx._by_type_objects.get(id(real)) if source is not None else None
    if known is not None and known.value is real:
        # one object reached along many paths (transformers' config, read as `self.config`
        # in every layer): one alias check per path; its attributes are guarded once
        ctx.guards.same_object(source, known.source, real)
        return known
    value = _wrap(ctx, real, source)
    if getattr(value, "by_type", False) and not isa(real, torch.nn.Module):
        ctx._by_type_objects[id(real)] = value
        ctx._keepalive.append(real)
    return value


def _wrap(ctx, real, source):
    guards = ctx.guards
    if runs_code_on_lookup(type(real)):
        # every isinstance() of the translation and of the guards that fails would call it (for
        # `__class__`): 98 calls of test_descr's test_getattr_hooks getter where Python makes 1
        exc = Unsupported(f"{type(real).__name__}.__getattribute__ is no function: run as plain Python",
                          breakable=False)
        exc.per_call = True  # later calls with other objects are still translated
        raise exc
    if source is None:
        return _wrap_unguarded(real)
    if _depth(source) > MAX_SOURCE_DEPTH:
        # `while isinstance(n, list): n = n[0]` over a 2000-deep structure: one guard per
        # level, each naming the whole chain (quadratic translation, a slow guard on every
        # call); plain Python walks it faster than any guard could check it
        raise Unsupported(f"a value {MAX_SOURCE_DEPTH}+ levels deep ({source.expr()[:60]}...): "
                          "the frame runs as plain Python", breakable=False)
    if isa(real, torch.Tensor):
        if _overrides_torch_function(type(real)):
            # its __torch_function__ would see every metadata read of the translation and of
            # the guards (dozens of extra calls): frames given one run as plain Python
            exc = Unsupported(f"{type(real).__name__} overrides __torch_function__: run as plain Python",
                              breakable=False)
            exc.per_call = True  # later calls with plain tensors are still translated
            raise exc
        by_identity = _is_module_state(source) and not modules_by_type(ctx, source)
        return ctx.graph.input_tensor(real, source, by_identity=by_identity)
    if type(real) in (int, float) and not _counter_at_zero_or_one(ctx, real, source) \
            and (source.expr() in ctx.dynamic or _changed_elsewhere(ctx, real, source)):
        return ctx.graph.input_scalar(real, source)
    if isa(real, _VALUE_TYPES) and type(real) in _VALUE_TYPES and plain_slice(real):
        guards.value(source, real)
        return ConstValue(real, source)
    if is_numpy_scalar(real):  # np.int64(1) in a list of slice bounds: a value, like an int
        if source.expr() in ctx.dynamic or _changed_elsewhere(ctx, real, source):
            # one that changed between calls (faster_rcnn's NMS in numpy): a run-time number
            # passed on to the native code that uses it, not a translation per value
            return ctx.graph.input_scalar(real, source)
        guards.value(source, real)
        return ConstValue(real, source)
    if isa(real, torch.device):
        guards.type(source, torch.device)
        guards.value(source, real)
        return ConstValue(real, source)
    if type(real) is tuple or type(real) is torch.Size or is_namedtuple_class(type(real)):
        guards.type(source, type(real))
        guards.length(source, len(real))
        items = [wrap(ctx, x, ItemSource(source, i)) for i, x in enumerate(real)]
        return TupleValue(items, cls=type(real), source=source)
    if type(real) is list:
        guards.type(source, list)

        def realize(value):
            guards.length(source, len(real))
            if value.pending:
                ctx.mutate(value)  # appends were recorded; the write-back settles the contents
            return [wrap(ctx, x, ItemSource(source, i)) for i, x in enumerate(real)]

        return ListValue(None, source=source, realize=realize)
    if type(real) in _DICT_TYPES and all(isa(k, (str, int)) for k in real):
        guards.type(source, type(real))
        guards.keys(source, real.keys())
        items = {k: wrap(ctx, x, ItemSource(source, k)) for k, x in real.items()}
        return DictValue(items, source=source, cls=type(real))
    if type(real) is types.MethodType and source is not None:
        # `Cls.a_classmethod` or `obj.method` makes a new bound method on every read: guard
        # what it binds, not the short-lived method object
        guards.type(source, types.MethodType)
        guards.identity(AttrSource(source, "__func__"), real.__func__)
        bound = wrap(ctx, real.__self__, AttrSource(source, "__self__"))
        value = ConstValue(real, source)
        # bound to an object guarded by type: another call may bind another one
        value.by_type = bool(getattr(bound, "by_type", False) or getattr(bound, "module_by_type", False))
        return value
    if isa(real, torch.nn.Module) and modules_by_type(ctx, source):
        guards.type(source, type(real))
        value = ConstValue(real, source)
        value.module_by_type = True
        return value
    if isa(real, _IDENTITY_TYPES) or callable(real) and instance_dict(real) is None:
        guards.identity(source, real)
        return ConstValue(real, source)
    if isa(real, _ITERATOR_TYPES):
        guards.type(source, type(real))
        return OpaqueIterator(real, source)
    guards.type(source, type(real))
    value = ConstValue(real, source)
    value.by_type = True  # only its type is guarded: its value must never be used directly
    return value


def _note_owner(ctx, real, source):
    """Remember which object `source` is, for the numbers read from it (_changed_elsewhere)."""
    try:
        ctx.owners[source] = real
    except TypeError:  # a source with an unhashable key
        pass


def _counter_at_zero_or_one(ctx, real, source):
    """An int kept beside tensors in an object's dict (a window cache layer's
    `cumulative_length` beside its keys and values) that changed and is now 0 or 1 stays a
    constant (guarded) for this translation, as sizes 0 and 1 do: it counts those tensors'
    positions, and at a decoder's second token a symbol of value 1 met the cache's static
    length 2 and was pinned at the first layer's attention (mistral's and gemma2's attempt
    failed there after 300-480 ms). Its next change makes it symbolic. Counters of objects
    without tensors (a trainer's `iteration`) and arguments stay symbolic from their first
    change: a translation more for them at their third value."""
    if type(real) is not int or not 0 <= real <= 1 or type(source) not in (AttrSource, GenericAttrSource):
        return False
    if real == 1 and ctx.graph.grows_at(source.expr()) == 1:
        return False  # its tensors' lengths of 1 are symbols too (graph_state.grow): all grow together
    owner = ctx.owners.get(source.base, _NO_OWNER)
    fields = instance_dict(owner) if owner is not _NO_OWNER else None
    return bool(fields) and any(type(v) is torch.Tensor for v in fields.values())


def _changed_elsewhere(ctx, real, source):
    """A number read as owner.name / owner[key] that a recompile of any code object saw
    change there (changing.py): a graph input, unless a translation of this code with it
    as input failed (then it is constant here: options.static)."""
    if not changing.active() or type(source) not in (AttrSource, GenericAttrSource, ItemSource):
        return False
    owner = ctx.owners.get(source.base, _NO_OWNER)
    key = source.key if type(source) is ItemSource else source.name
    holder = None
    if type(source) is ItemSource and type(source.base) is AttrSource:  # `layer.metrics['loss']`
        holder = ctx.owners.get(source.base.base, _NO_OWNER), source.base.name
        holder = None if holder[0] is _NO_OWNER else holder
    if owner is _NO_OWNER or not changing.wanted(owner, key, real, holder):
        return False
    expr = source.expr()
    if expr in ctx.options_static:
        return False
    ctx.changing_inputs.add(expr)
    return True


_NO_OWNER = object()
MAX_SOURCE_DEPTH = 48  # attribute / item steps from an argument or global; models need ~12


def _depth(source):
    n = 0
    while hasattr(source, "base"):
        source, n = source.base, n + 1
    return n


_STANDARD_TORCH_FUNCTIONS = (torch.Tensor.__torch_function__.__func__, torch._C._disabled_torch_function_impl)


def _overrides_torch_function(cls):
    if cls is torch.Tensor or cls is torch.nn.Parameter:
        return False
    impl = getattr(cls.__torch_function__, "__func__", cls.__torch_function__)
    return impl not in _STANDARD_TORCH_FUNCTIONS


def runs_code_on_lookup(cls):
    """Instances of `cls` run an attribute lookup that is neither object's nor a Python function
    the translator inlines (a descriptor object set as `__getattribute__`)."""
    import inspect

    lookup = inspect.getattr_static(cls, "__getattribute__", None)
    return lookup is not None and not isinstance(lookup, (types.WrapperDescriptorType, types.FunctionType))


def _wrap_unguarded(real):
    if type(real) is tuple:
        return TupleValue([_wrap_unguarded(x) for x in real])
    return ConstValue(real)


def modules_by_type(ctx, source):
    """True when `source` is, or lies under, a module that a recompile found to be a different
    instance each call (a layer class whose forward runs for 12 layers, `nn.Softmax()(x)`
    built per call): one translation then serves every instance of that type."""
    if not ctx.dynamic:
        return False
    expr = source.expr()
    return any(expr == p or expr.startswith((p + ".", p + "[")) for p in ctx.dynamic)


def _is_module_state(source):
    return isinstance(source, ModuleDictSource) and source.table in ("_parameters", "_buffers")


def wrap_child(ctx, parent, key):
    """Item `key` of a real sequence held by a ConstValue with a source."""
    return wrap(ctx, parent.value[key], ItemSource(parent.source, key))


def wrap_attr(ctx, parent, name, real):
    source = AttrSource(parent.source, name) if parent.source is not None else None
    return wrap(ctx, real, source)
