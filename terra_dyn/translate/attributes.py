"""What `obj.name` means on abstract values (LOAD_ATTR / LOAD_METHOD / STORE_ATTR).

    tensor.shape / dtype / device / ndim / requires_grad -> constants from the meta tensor and device
    tensor.T / mT / real / imag                         -> an FX getattr node
    tensor.method                                       -> MethodValue (called later)
    module.weight / .submodule / .training              -> from _parameters/_buffers/_modules
    obj.attr (plain objects, Python modules, classes)   -> read now, guarded by its source
    obj.attr = v                                        -> recorded, replayed after the graph

Example: for `self.fc(x)` on an nn.Module self, `self.fc` gives ConstValue(fc) with source
a0._modules['fc'] guarded by identity.
"""
import inspect
import sys
import types

import torch

from ..real_types import instance_dict, isa
from . import deep_copies
from .drops import check_overwrite
from .errors import Unsupported
from .side_effects import StoreAttr
from .sources import AttrSource, GenericAttrSource, ItemSource
from .values import (ConstValue, DictValue, FunctionValue, ListValue, MethodValue, ObjectValue,
                     ScalarValue, TensorValue, TupleValue, is_namedtuple_class)
from .wrap import wrap

_TENSOR_CONST_ATTRS = {
    "dtype", "ndim", "requires_grad", "layout", "is_sparse", "is_leaf", "is_quantized", "is_nested",
}
_DEVICE_TYPE_ATTRS = {"is_cuda": "cuda", "is_cpu": "cpu", "is_meta": "meta", "is_mps": "mps",
                      "is_xpu": "xpu"}
_TENSOR_NODE_ATTRS = {"T", "mT", "H", "mH", "real", "imag"}
_ABSENT = object()
_MODULE_LOOKUP = types.ModuleType.__dict__["__getattribute__"]
_HEAP_TYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made by a class statement
_LIBRARY_MODULE_PREFIXES = ("torch", "math", "operator", "functools", "itertools", "collections",
                            "numpy", "builtins", "typing", "dataclasses", "warnings", "logging")


def load_attr(tx, obj, name):
    if isinstance(obj, TensorValue):
        return _tensor_attr(tx, obj, name)
    if isinstance(obj, ScalarValue):
        raise Unsupported(f"attribute {name} of a run-time number")
    if isinstance(obj, TupleValue):
        if is_namedtuple_class(obj.cls) and name in obj.cls._fields:
            return obj.items[obj.cls._fields.index(name)]
        fields = getattr(obj.cls, "__match_args__", ())  # structseqs: torch.return_types.max
        if obj.cls is not tuple and name in fields:
            return obj.items[fields.index(name)]
        return _container_method(obj, name)
    if isinstance(obj, (ListValue, DictValue)):
        return _container_method(obj, name)
    if isinstance(obj, ObjectValue):
        from . import model_output

        if isinstance(obj, model_output.ModelOutputValue):
            handled, value = model_output.load_attr(tx, obj, name)
            if handled:
                return value
        if name in obj.attrs:
            return obj.attrs[name]
        attr = inspect.getattr_static(obj.cls, name, None)
        tx.ctx.guards.class_attributes(obj.cls, name)
        if isa(attr, types.FunctionType):
            return MethodValue(ConstValue(attr), obj)
        if isa(attr, staticmethod):
            return ConstValue(attr.__func__)
        if isa(attr, classmethod):
            return MethodValue(ConstValue(attr.__func__), ConstValue(obj.cls))
        if isa(attr, property):
            from . import calls

            return calls.call_value(tx, ConstValue(attr.fget), [obj], {})
        if attr is not None and isa(attr, (int, float, str, bool, tuple, type(None))):
            return ConstValue(attr)
        raise Unsupported(f"attribute {name} of {obj!r}")
    if isinstance(obj, FunctionValue):
        if name in ("__name__", "__qualname__"):
            return ConstValue(obj.name if name == "__name__" else obj.qualname)
        raise Unsupported(f"attribute {name} of a local function")
    if isinstance(obj, MethodValue) and name in ("__self__", "__func__"):
        return obj.self_value if name == "__self__" else obj.fn
    if isinstance(obj, ConstValue):
        return _object_attr(tx, obj, name)
    from .super_calls import SuperValue, load_attr as super_attr

    if isinstance(obj, SuperValue):
        return super_attr(tx, obj, name)
    raise Unsupported(f"attribute {name} of {obj!r}")


def _tensor_attr(tx, t, name):
    facts = t.facts
    if name == "shape":
        return TupleValue(tx.ctx.graph.sizes(t), cls=torch.Size)
    if name == "device":
        return ConstValue(t.device)
    if name in _DEVICE_TYPE_ATTRS:
        return ConstValue(t.device.type == _DEVICE_TYPE_ATTRS[name])
    if name == "is_leaf" and t.real is not None:
        return ConstValue(t.real.is_leaf)
    if name in _TENSOR_CONST_ATTRS:
        return ConstValue(getattr(facts, name))
    if name in _TENSOR_NODE_ATTRS:
        return tx.ctx.graph.call("call_function", getattr, [t, ConstValue(name)])
    if name == "grad" and t.source is not None and getattr(t, "real", None) is not None \
            and t.node.op == "placeholder":
        return wrap(tx.ctx, t.real.grad, AttrSource(t.source, "grad"))
    if name in ("grad", "data", "grad_fn", "_version"):
        raise Unsupported(f"tensor.{name} is not captured")
    attr = inspect.getattr_static(torch.Tensor, name, None)
    if attr is None:
        raise Unsupported(f"tensor attribute {name}")
    if callable(attr) or isa(attr, (types.MethodDescriptorType, types.FunctionType)):
        tx.ctx.guards.class_attributes(torch.Tensor, name)  # `torch.Tensor.relu = f` later
        return MethodValue(ConstValue(getattr(torch.Tensor, name)), t)
    raise Unsupported(f"tensor attribute {name}")


def tensor_has_attr(tx, t, name):
    """hasattr(t, name) of a tensor: the real tensor's own dict (`x.tag = 1`, which a fake
    tensor lacks: hasattr said False), then its class, both guarded (`torch.Tensor.f = g`
    after the first call). A name the class holds as a getter (`x.imag` raises on a real
    tensor) is asked of the fake tensor, as the getter would be."""
    real = t.real
    if real is None and t.source is not None:
        raise Unsupported("hasattr of a tensor known only by its source: checked natively")
    cls = torch.Tensor if real is None else type(real)
    own_lookup = inspect.getattr_static(cls, "__getattr__", None) is not None or \
        inspect.getattr_static(cls, "__getattribute__") is not torch.Tensor.__getattribute__
    if own_lookup:
        raise Unsupported(f"hasattr of a {cls.__name__} with its own lookup: checked natively")
    if real is not None:
        d = instance_dict(real)
        if type(d) is dict and name in d:
            tx.ctx.guards.key_in(AttrSource(t.source, "__dict__"), name, True)
            return True
        tx.ctx.guards.instance_lacks(t.source, real, name)
    tx.ctx.guards.class_attributes(cls, name)
    static = inspect.getattr_static(cls, name, _ABSENT)
    if static is _ABSENT:
        return False
    if callable(static) or isa(static, (classmethod, staticmethod)):
        return True
    return hasattr(t.fake, name)


def _container_method(obj, name):
    kind = {TupleValue: tuple, ListValue: list, DictValue: dict}[type(obj)]
    raw = inspect.getattr_static(kind, name, None)
    if isinstance(raw, types.ClassMethodDescriptorType):  # `{}.fromkeys`: bound to the class, not to d
        return ConstValue(getattr(kind, name))
    if not isinstance(raw, (types.MethodDescriptorType, types.WrapperDescriptorType)):
        # not a method: `d.__class__` (type, as a method rebuilt as `d.type`: test_descr's
        # test_python_dicts), `__doc__`; read natively
        raise Unsupported(f"{kind.__name__}.{name}")
    return MethodValue(ConstValue(getattr(kind, name)), obj)


def _object_attr(tx, obj, name):
    real = obj.value
    pending = tx.ctx.graph.attr_overlay.get((id(real), name))
    if pending is not None:
        return pending
    if isa(real, torch.nn.Module):
        from . import modules

        return modules.module_attr(tx, obj, name)
    if isa(real, types.ModuleType):
        if inspect.getattr_static(type(real), "__getattribute__") is not _MODULE_LOOKUP:
            # a module subclass's own lookup (test_descr's test_module_subclasses logs each)
            raise Unsupported(f"{type(real).__name__} defines __getattribute__: read natively")
        try:
            value = getattr(real, name)
        except AttributeError:
            raise Unsupported(f"module {real.__name__} has no attribute {name}") from None
        if real.__name__.split(".")[0] in _LIBRARY_MODULE_PREFIXES or obj.source is None:
            if real.__dict__.get(name, _ABSENT) is value:
                # `F.gelu = my_gelu` after the first call must reach the next one
                tx.ctx.guards.module_attribute(real, name, value)
            else:  # a module subclass's getter or __getattr__ (torch.backends.cudnn.deterministic)
                from .torch_ops import SameAnswer

                tx.ctx.guards.call_id(SameAnswer(getattr, (real, name), {}, value), True)
            return _unguarded(value)
        return wrap(tx.ctx, value, AttrSource(obj.source, name))
    if not isa(real, type):
        getattribute = inspect.getattr_static(type(real), "__getattribute__")
        if isinstance(getattribute, types.FunctionType) and (obj.source is not None or deep_copies.is_copied(obj)):
            # transformers' configs map old names through `attribute_map` on every read:
            # the Python __getattribute__ is inlined like any method (its
            # object.__getattribute__ call comes back to generic_attr)
            from . import calls

            tx.ctx.guards.class_attributes(type(real), "__getattribute__", name)
            return calls.call_value(tx, ConstValue(getattribute), [obj, ConstValue(name)], {})
        if not isinstance(getattribute, types.WrapperDescriptorType):
            # reading it now would run user code at translate time, once instead of per call
            raise Unsupported(f"{type(real).__name__} defines __getattribute__: read natively")
    return generic_attr(tx, obj, name)


def generic_attr(tx, obj, name):
    """object.__getattribute__(obj, name): the class's descriptors, then the instance dict."""
    real = obj.value
    pending = tx.ctx.graph.attr_overlay.get((id(real), name))  # stored by an inlined __setattr__
    if pending is not None:
        return pending
    if _odd_keys(real):
        raise Unsupported(f"{type(real).__name__}'s __dict__ has keys that are not str: read natively")
    try:
        static = inspect.getattr_static(real, name)
    except AttributeError:
        raise Unsupported(f"{type(real).__name__} has no attribute {name} (raises natively)") from None
    # whatever comes from the class (a method, a class constant, a property) or, for a
    # class, from its own MRO, is valid while the class and its bases are unchanged
    tx.ctx.guards.class_attributes(real if isa(real, type) else type(real), name)
    if isa(static, property) and not isa(real, type):  # `Cls.prop` is the property
        from . import calls

        return calls.call_value(tx, ConstValue(static.fget), [obj], {})
    if _python_descriptor(static):
        # its __get__ is user code with its own result and side effects (a counter: test_descr's
        # test_compattr); read now, it would run once at translate time and again in every guard
        raise Unsupported(f"{name} is a {type(static).__name__} descriptor: read natively")
    if isa(static, types.FunctionType) and not isa(real, type) and \
            name not in (instance_dict(real) or {}):
        tx.ctx.guards.instance_lacks(obj.source, real, name)  # `obj.method = f` later
        return MethodValue(ConstValue(static), obj)
    if obj.source is not None and isa(real, dict) and static in (dict.get, dict.__getitem__, dict.__contains__):
        return MethodValue(ConstValue(static), obj)  # read key by key (calls.dict_read_by_key)
    if isa(static, types.MethodDescriptorType) and not isa(real, type) and \
            type(real).__module__.split(".")[0] not in ("builtins", "torch") and \
            name not in (instance_dict(real) or {}):
        # `arr.astype` of a numpy array: a new bound method on every access, which an
        # identity guard never matches again (a recompile every call); rebind per call
        return MethodValue(ConstValue(static), obj)
    if deep_copies.is_copied(obj) and not (callable(static) and deep_copies.from_class(real, name)):
        return deep_copies.read(tx, obj, name)  # a value, not a method, of the translation's own copy
    if isinstance(obj, ConstValue) and obj.fresh:  # `s.add` of a set made here: a method bound
        # to the translate-time set would be baked in; keep self, so it rebinds per call
        return MethodValue(ConstValue(static), obj)
    if overrides_getattribute(real):
        # reached from its inlined __getattribute__ (object.__getattribute__(self, name)):
        # read, and guarded, without the override (sources.GenericAttrSource)
        value = object.__getattribute__(real, name)
        if obj.source is not None:
            return wrap(tx.ctx, value, GenericAttrSource(obj.source, name))
    else:
        value = getattr(real, name)
    if obj.source is None:
        return _unguarded(value)  # an object made at translate time: nothing to guard
    if type(real) in (str, bytes, int, float, complex, bool) and not obj.by_type and \
            isa(value, types.BuiltinMethodType) and value.__self__ is real:
        # `name.rsplit` of a value-guarded string: a new bound method per access, so an
        # identity guard on it would never hold again; its owner's guard says all
        return _unguarded(value)
    return wrap(tx.ctx, value, AttrSource(obj.source, name))


def overrides_getattribute(obj):
    """obj's class defines __getattribute__ in Python (not a class: its metaclass's is read)."""
    return not isa(obj, type) and \
        isinstance(inspect.getattr_static(type(obj), "__getattribute__", None), types.FunctionType)


def object_has_attr(tx, obj, name):
    """hasattr(obj, name) of a known object, and the guards it rests on: the class's version
    tag, and the name's absence from (or presence in) the instance's own dict. getattr with a
    default reads it too (`getattr(o, "reads", 0) + 1` counted 1 forever when unguarded)."""
    real = obj.value
    if (id(real), name) in tx.ctx.graph.attr_overlay:  # stored earlier in this frame
        return True
    if isa(real, torch.nn.Module):
        from . import modules

        return modules.module_has_attr(tx, obj, name)
    if obj.source is None:
        return hasattr(real, name)
    cls = type(real)
    if _odd_keys(real):
        raise Unsupported(f"{cls.__name__}'s __dict__ has keys that are not str: checked natively")
    lookup = inspect.getattr_static(cls, "__getattribute__")
    user_lookup = inspect.getattr_static(cls, "__getattr__", None) is not None or not isinstance(
        lookup, (types.WrapperDescriptorType, types.FunctionType))
    static = inspect.getattr_static(real, name, _ABSENT)
    asked = None
    if isa(real, types.ModuleType):  # PEP 562's module __getattr__ is in its dict
        user_lookup = lookup is not _MODULE_LOOKUP or "__getattr__" in (instance_dict(real) or {})
    elif isinstance(lookup, types.FunctionType) and not user_lookup:
        if static is not _ABSENT or name in (instance_dict(real) or {}):
            # found without it: the Python __getattribute__ inlined as a read would be (its
            # side effects replayed per call, as Python runs it per call), its value dropped
            from . import calls

            tx.ctx.guards.class_attributes(cls, "__getattribute__", name)
            calls.call_value(tx, ConstValue(lookup), [obj, ConstValue(name)], {})
            return True
        if not _mapped_lookup(lookup):
            # a Python __getattribute__ asked for a name it may make up or refuse: its
            # answer and side effects are its own, per call (asked here once, its counter
            # counted once and its answer went stale): run natively
            raise Unsupported(f"hasattr({cls.__name__}, {name!r}) runs its __getattribute__: checked natively")
        # transformers' configs map old names through attribute_map (`hasattr(config,
        # "num_heads")`): the known side-effect-free lookup (guarded by its code object)
        # answered for the mapped name; the map's entry, instance dict and class are guarded
        name = _mapped_name(tx, obj, name)
        static = inspect.getattr_static(real, name, _ABSENT)
        if static is not _ABSENT and hasattr(type(static), "__get__") and \
                not isa(static, (types.FunctionType, classmethod, staticmethod)):
            raise Unsupported(f"hasattr({cls.__name__}, {name!r}) runs a getter: checked natively")
        asked = static is not _ABSENT or name in (instance_dict(real) or {})
    getter = asked is None and static is not _ABSENT and hasattr(type(static), "__get__") and \
        not isa(static, (types.FunctionType, classmethod, staticmethod))
    if getter and not user_lookup and isa(static, property) and isinstance(static.fget, types.FunctionType):
        # `hasattr(cache, "is_sliding")` of a property (transformers' mask builders ask it of
        # every cache, per call): the getter inlined as a read would be, its value dropped.
        # One that raises (AttributeError: hasattr's False) stops the translation there and
        # the call runs natively, as before
        from . import calls

        tx.ctx.guards.class_attributes(cls, name)
        calls.call_value(tx, ConstValue(static.fget), [obj], {})
        return True
    if user_lookup or getter:  # a property or a slot may raise AttributeError: hasattr says False
        raise Unsupported(f"hasattr({cls.__name__}, {name!r}) runs a lookup or a getter: checked natively")
    found = asked if asked is not None else static is not _ABSENT
    tx.ctx.guards.class_attributes(real if isa(real, type) else cls, name)
    d = instance_dict(real)
    if isa(real, type) or not isa(d, dict):
        return found
    if name in d and isa(real, types.ModuleType):
        tx.ctx.guards.module_attribute(real, name, d[name])  # one C dict lookup
    elif name in d:
        tx.ctx.guards.key_in(AttrSource(obj.source, "__dict__"), name, True)
    else:
        tx.ctx.guards.instance_lacks(obj.source, real, name)
    return found


def _mapped_lookup(lookup):
    """transformers' PretrainedConfig.__getattribute__: `attribute_map` renames a key, then
    object.__getattribute__ reads it; no side effect. Known by its code object (which the
    function guard below keeps)."""
    config_utils = sys.modules.get("transformers.configuration_utils")
    known = getattr(getattr(config_utils, "PretrainedConfig", None), "__getattribute__", None)
    return isinstance(known, types.FunctionType) and lookup.__code__ is known.__code__


def _mapped_name(tx, obj, name):
    """The name _mapped_lookup reads for `name`, with guards on its code and its map's entry."""
    real, cls = obj.value, type(obj.value)
    lookup = inspect.getattr_static(cls, "__getattribute__")
    tx.ctx.guards.class_attributes(cls, "__getattribute__", "attribute_map")
    tx.ctx.guards.function(lookup)
    if name == "attribute_map":
        return name
    amap = object.__getattribute__(real, "attribute_map")
    if type(amap) is not dict or any(type(k) is not str for k in amap):
        raise Unsupported(f"{cls.__name__}.attribute_map is not a dict of str: checked natively")
    source = GenericAttrSource(obj.source, "attribute_map")
    tx.ctx.guards.type(source, dict)
    tx.ctx.guards.key_in(source, name, name in amap)
    if name not in amap:
        return name
    mapped = amap[name]
    if type(mapped) is not str:
        raise Unsupported(f"{cls.__name__}.attribute_map[{name!r}] is not a str: checked natively")
    tx.ctx.guards.value(ItemSource(source, name), mapped)
    return mapped


def _odd_keys(real):
    """An instance dict with a key that is not a str: looking a name up in it runs that key's
    __eq__ (test_descr's test_vicious_descriptor_nonsense deletes the class attribute there)."""
    d = instance_dict(real)
    return type(d) is dict and any(type(k) is not str for k in d)


def _python_descriptor(attr):
    """A descriptor whose __get__ is Python code (not a function, property, classmethod or
    staticmethod, whose __get__ the translator models): a function, or any other callable
    set as `__get__` (test_dataclasses' test_getting_field_calls_get sets a Mock)."""
    if isa(attr, (types.FunctionType, property, classmethod, staticmethod)):
        return False
    get = inspect.getattr_static(type(attr), "__get__", None)
    return get is not None and not isinstance(get, _C_SLOTS)


_C_SLOTS = (types.WrapperDescriptorType, types.MethodDescriptorType, types.BuiltinFunctionType)


def _unguarded(value):
    return ConstValue(value)


def _plain_store(cls, name):
    """Whether `obj.name = v` on an instance of `cls` just puts v in the instance dict (so a
    later read gives v back). A property setter, a data descriptor's __set__ or a custom
    __setattr__ is user code with its own result (a clamping setter): such a store runs
    natively, through Python's own semantics, never as a replayed plain store."""
    if cls.__setattr__ is not object.__setattr__ and not (
            issubclass(cls, torch.nn.Module) and cls.__setattr__ is torch.nn.Module.__setattr__):
        return False
    return _no_data_descriptor(cls, name)


def _no_data_descriptor(cls, name):
    attr = inspect.getattr_static(cls, name, None)
    if isa(attr, types.MemberDescriptorType):  # a Python class's __slots__ members; a
        # builtin type's may be read-only (`property().fget = 42` raises: test_descr's test_properties)
        return bool(attr.__objclass__.__flags__ & _HEAP_TYPE)
    if not cls.__dictoffset__:  # __slots__ only: any other name raises AttributeError
        return False
    if attr is None:
        return True
    kind = type(attr)
    return not (hasattr(kind, "__set__") or hasattr(kind, "__delete__"))


def store_attr(tx, obj, name, value):
    if isinstance(obj, ObjectValue):
        from . import model_output

        if isinstance(obj, model_output.ModelOutputValue):
            return model_output.store(tx, obj, name, value)
        if not _plain_store(obj.cls, name):
            raise Unsupported(f"{obj.cls.__name__}.{name} has a setter, a __setattr__ or __slots__: stored natively")
        tx.ctx.guards.class_attributes(obj.cls, "__setattr__", name)
        check_overwrite(tx, [obj.attrs.get(name)], "an attribute assignment")
        obj.attrs[name] = value
        return
    copied = deep_copies.is_copied(obj)
    if isinstance(obj, ConstValue) and (obj.source is not None or copied) \
            and not isa(obj.value, (type, types.ModuleType)):
        setattr_fn = inspect.getattr_static(type(obj.value), "__setattr__")
        if isinstance(setattr_fn, types.FunctionType) and not isa(obj.value, torch.nn.Module):
            # a config's __setattr__ maps old names through attribute_map: inlined; its
            # object.__setattr__ call comes back to generic_store
            from . import calls

            tx.ctx.guards.class_attributes(type(obj.value), "__setattr__", name)
            calls.call_value(tx, ConstValue(setattr_fn), [obj, ConstValue(name), value], {})
            return
        if not _plain_store(type(obj.value), name):
            raise Unsupported(f"{type(obj.value).__name__}.{name} has a setter, a __setattr__ or __slots__: stored natively")
        if copied:
            return deep_copies.store(obj, name, value, setattr)
        _store(tx, obj, name, value, StoreAttr(obj, name, value))
        return
    raise Unsupported(f"attribute assignment on {obj!r}")


def generic_store(tx, obj, name, value):
    """object.__setattr__(obj, name, value) in an inlined __setattr__: replayed as that very
    call (a replayed `obj.name = value` would run the override a second time)."""
    if not _no_data_descriptor(type(obj.value), name):
        raise Unsupported(f"{type(obj.value).__name__}.{name} has a setter: stored natively")
    from .side_effects import Call

    _store(tx, obj, name, value, Call(ConstValue(object.__setattr__), [obj, ConstValue(name), value]))


def _store(tx, obj, name, value, effect):
    tx.ctx.guards.class_attributes(type(obj.value), "__setattr__", name)  # no setter may appear later
    if isa(obj.value, torch.nn.Module) and not isinstance(
            value, (TensorValue, ConstValue, ScalarValue, TupleValue)):
        raise Unsupported("assignment of this value to a module attribute")
    old = (instance_dict(obj.value) or {}).get(name)
    check_overwrite(tx, [tx.ctx.graph.attr_overlay.get((id(obj.value), name), old)], "an attribute assignment")
    if isa(old, (list, dict)) and id(old) in tx.ctx._mutables:
        # the old list is reached through its source `obj.name` (write-back, later pushes):
        # after the replayed store that would name the new one; run the store natively
        raise Unsupported(f"rebinding .{name}, whose {type(old).__name__} was used")
    tx.ctx.graph.attr_overlay[(id(obj.value), name)] = value
    tx.ctx.record(effect)


def object_value_has_attr(obj, name):
    """hasattr of an object built in the translation: its own attributes, then its class's.
    A property or other descriptor answers by running (a getter reading a missing
    `self.__x` raises AttributeError: hasattr is False, test_descr's test_properties), and
    so does a class `__getattr__` / `__getattribute__`: those run natively."""
    cls = obj.cls
    if getattr(cls, "__getattribute__", object.__getattribute__) is not object.__getattribute__:
        raise Unsupported(f"hasattr on a {cls.__name__} with __getattribute__")
    found = inspect.getattr_static(cls, name, _MISSING)
    if found is not _MISSING and hasattr(type(found), "__get__") and \
            not isinstance(found, (types.FunctionType, staticmethod, classmethod)):
        raise Unsupported(f"hasattr through the descriptor {cls.__name__}.{name}")
    if name in obj.attrs or found is not _MISSING:
        return True
    if hasattr(cls, "__getattr__"):
        raise Unsupported(f"hasattr on a {cls.__name__} with __getattr__")
    return False


_MISSING = object()
