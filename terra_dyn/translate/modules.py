"""nn.Module values: attribute reads through the module's own tables, calls inlined.

    module.weight    -> _parameters['weight'] (a graph input, guarded by identity)
    module.fc        -> _modules['fc'] (ConstValue, guarded by identity)
    module.training  -> a constant guarded by value (train/eval get separate entries)
    module(x)        -> type(module).forward inlined with self = module
    for m in seq     -> the children of Sequential / ModuleList, in order

A module with forward hooks (its own or global) is not inlined: the call is a graph
break and the module runs natively with its hooks (then its frames are translated).
"""
import inspect
import types

import torch

from .errors import Unsupported
from .sources import AttrSource, ItemSource, ModuleDictSource
from .values import ConstValue, MethodValue, TupleValue
from .wrap import wrap


def module_attr(tx, obj, name):
    real = obj.value
    d = real.__dict__
    if obj.source is None:
        raise Unsupported("attribute of a module made at translate time")
    for table in ("_parameters", "_buffers", "_modules"):
        entries = d.get(table)
        if entries is not None and name in entries:
            return wrap(tx.ctx, entries[name], ModuleDictSource(obj.source, table, name))
    if name in d:
        return wrap(tx.ctx, d[name], AttrSource(obj.source, name))
    try:
        static = inspect.getattr_static(real, name)
    except AttributeError:
        raise Unsupported(f"{type(real).__name__} has no attribute {name}") from None
    if isinstance(static, types.FunctionType):
        return MethodValue(ConstValue(static), obj)
    if isinstance(static, property):
        from . import calls

        return calls.call_value(tx, ConstValue(static.fget), [obj], {})
    if isinstance(static, (staticmethod, classmethod)):
        return ConstValue(getattr(real, name))
    value = getattr(real, name)
    if isinstance(value, (int, float, str, bool, type(None), torch.dtype)):
        return wrap(tx.ctx, value, AttrSource(obj.source, name))
    return ConstValue(value)


def module_getitem(tx, obj, key):
    real = obj.value
    if isinstance(real, (torch.nn.Sequential, torch.nn.ModuleList)) and isinstance(key, int):
        keys = list(real._modules)
        try:
            k = keys[key]
        except IndexError:
            raise Unsupported("module index out of range") from None
        return wrap(tx.ctx, real._modules[k], ModuleDictSource(obj.source, "_modules", k))
    if isinstance(real, torch.nn.ModuleDict) and isinstance(key, str):
        if key not in real._modules:
            raise Unsupported(f"ModuleDict has no key {key!r}")
        return wrap(tx.ctx, real._modules[key], ModuleDictSource(obj.source, "_modules", key))
    if isinstance(real, torch.nn.ParameterList) and isinstance(key, int):
        k = list(real._parameters)[key]
        return wrap(tx.ctx, real._parameters[k], ModuleDictSource(obj.source, "_parameters", k))
    raise Unsupported(f"indexing {type(real).__name__} with {key!r}")


def iterate_module(tx, obj):
    real = obj.value
    if obj.source is None:
        raise Unsupported("iteration over a module made at translate time")
    if isinstance(real, torch.nn.ModuleDict):
        return [ConstValue(k) for k in real._modules]
    if isinstance(real, torch.nn.ParameterList):
        return [wrap(tx.ctx, p, ModuleDictSource(obj.source, "_parameters", k))
                for k, p in real._parameters.items()]
    return [wrap(tx.ctx, m, ModuleDictSource(obj.source, "_modules", k)) for k, m in real._modules.items()]


def has_hooks(module):
    from torch.nn.modules import module as module_mod

    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                or getattr(module, "_backward_pre_hooks", None)
                or module_mod._global_forward_hooks or module_mod._global_forward_pre_hooks
                or module_mod._global_backward_hooks
                or getattr(module_mod, "_global_backward_pre_hooks", None))


def _only_simple_forward_hooks(module):
    """Forward (pre-)hooks of this module only, without kwargs flags: inlined in order."""
    from torch.nn.modules import module as module_mod

    if (module._backward_hooks or getattr(module, "_backward_pre_hooks", None)
            or module_mod._global_forward_hooks or module_mod._global_forward_pre_hooks
            or module_mod._global_backward_hooks or getattr(module_mod, "_global_backward_pre_hooks", None)):
        return False
    return not (getattr(module, "_forward_hooks_with_kwargs", None)
                or getattr(module, "_forward_pre_hooks_with_kwargs", None)
                or getattr(module, "_forward_hooks_always_called", None))


def call_module(tx, obj, args, kwargs):
    real = obj.value
    from .lazy_modules import maybe_initialize

    maybe_initialize(tx, real, args, kwargs)  # a lazy module's first call: initialized now
    if has_hooks(real) and not _only_simple_forward_hooks(real):
        raise Unsupported(f"{type(real).__name__} has hooks: called natively")
    forward = type(real).forward
    if type(real).__call__ is not torch.nn.Module.__call__:
        raise Unsupported(f"{type(real).__name__} overrides __call__")
    from . import calls

    # adding or removing a hook later must not reuse this translation
    pre_hooks = _hook_values(tx, obj, "_forward_pre_hooks")
    post_hooks = _hook_values(tx, obj, "_forward_hooks")
    for hook in pre_hooks:
        result = calls.call_value(tx, hook, [obj, TupleValue(list(args))], {})
        if not (isinstance(result, ConstValue) and result.value is None):
            args = list(result.items) if isinstance(result, TupleValue) else [result]
    output = calls.call_value(tx, ConstValue(forward), [obj] + list(args), kwargs)
    for hook in post_hooks:
        result = calls.call_value(tx, hook, [obj, TupleValue(list(args)), output], {})
        if not (isinstance(result, ConstValue) and result.value is None):
            output = result
    return output


def _hook_values(tx, obj, table):
    hooks = getattr(obj.value, table)
    if obj.source is None:
        return [ConstValue(h) for h in hooks.values()]
    source = AttrSource(obj.source, table)
    tx.ctx.guards.keys(source, list(hooks.keys()))
    return [wrap(tx.ctx, h, ItemSource(source, k)) for k, h in hooks.items()]
