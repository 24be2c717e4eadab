"""nn.Module values: attribute reads through the module's own tables, calls inlined.

    module.weight    -> _parameters['weight'] (a graph input, guarded by identity)
    module.fc        -> _modules['fc'] (ConstValue, guarded by identity)
    module.training  -> a constant guarded by value (train/eval get separate entries)
    module(x)        -> type(module).forward inlined with self = module
    for m in seq     -> the children of Sequential / ModuleList, in order

A module with forward hooks (its own or global) is not inlined: the call is a graph
break and the module runs natively with its hooks (then its frames are translated).
"""
import collections
import inspect
import types

import torch
from bytecode import Instr

from ..real_types import isa
from . import guard_snapshot, module_lookups
from .errors import Unsupported
from .exceptions import KnownRaise
from .sources import AttrSource, ItemSource, ModuleDictSource
from .values import ConstValue, MethodValue, TupleValue
from .wrap import wrap


class BuiltModuleValue(ConstValue):
    """A stateless torch.nn module built in the frame from constants (`CrossEntropyLoss()`,
    `nn.Softmax(dim=-1)` in a model's forward): made now to be read and called in the graph, and rebuilt in emitted
    code as `cls(*args, **kwargs)`, a new one per call as in eager."""

    fresh = True  # one object per frame run, never a shared constant (reconstruct.py)

    def __init__(self, cls, args, kwargs):
        super().__init__(cls(*args, **kwargs))
        self.cls, self.args, self.kwargs = cls, tuple(args), tuple(kwargs.items())

    def rebuild(self, r):
        return r.call_const(build_module, [Instr("LOAD_CONST", self.cls), Instr("LOAD_CONST", self.args),
                                           Instr("LOAD_CONST", self.kwargs)], 3)


def build_stateless(tx, cls, args, kwargs):
    """BuiltModuleValue for a torch.nn module class built from constants that holds no
    state of its own (a loss, `nn.Softmax(dim=-1)`, `nn.ReLU()`, `nn.Dropout(p)`), else None.

    The module is made now, once, to be read and called in the graph: a class whose instance
    has parameters, buffers or children (fresh random weights, another module's state) or
    whose construction raises is left to run natively."""
    if not cls.__module__.startswith("torch.nn.modules.") or not issubclass(cls, torch.nn.Module) or \
            not all(isinstance(a, ConstValue) and not isa(a.value, (torch.Tensor, torch.nn.Module))
                    for a in list(args) + list(kwargs.values())):
        return None
    if "device" in inspect.signature(cls.__init__).parameters:
        return None  # takes factory arguments: makes parameters or buffers (Linear, LayerNorm)
    rng = torch.random.get_rng_state()
    try:
        made = BuiltModuleValue(cls, [a.value for a in args], {k: v.value for k, v in kwargs.items()})
    except Exception:  # noqa: BLE001 (the native construction raises it again, in its place)
        return None
    finally:
        drew = not torch.equal(rng, torch.random.get_rng_state())
        if drew:  # the native construction draws them, in its place
            torch.random.set_rng_state(rng)
    real = made.value
    held = list(real._parameters.values()) + list(real._buffers.values()) + list(real._modules.values())
    if drew or type(real) is not cls or any(v is not None for v in held):  # (a loss's `weight` is None)
        return None
    tx.ctx.guards.class_attributes(cls, "__init__", "__new__")  # `nn.ReLU.__init__ = g` later
    return made


def _shadowed(cls, name, in_dict):
    """A class attribute `name` wins over the instance's own: any for a name kept in
    _parameters/_buffers/_modules (nn.Module.__getattr__ comes last), a data descriptor for
    one in the instance dict."""
    for klass in cls.__mro__:
        attr = klass.__dict__.get(name, _ABSENT)
        if attr is not _ABSENT:
            kind = type(attr)
            return not in_dict or hasattr(kind, "__set__") or hasattr(kind, "__delete__")
    return False


_ABSENT = object()


def build_module(cls, args, kwargs):
    """The emitted construction of a BuiltModuleValue."""
    return cls(*args, **dict(kwargs))


def module_attr(tx, obj, name):
    real = obj.value
    own = None if isinstance(obj, BuiltModuleValue) else module_lookups.own_lookup(type(real))
    if own is not None:  # the class's own __getattr__ / __getattribute__, in Python's order
        return module_lookups.load(tx, obj, name, *own)
    d = real.__dict__
    own = name in d or any(name in (d.get(table) or ()) for table in ("_parameters", "_buffers", "_modules"))
    if isinstance(obj, BuiltModuleValue) and own:
        value = getattr(real, name)  # what the constructor set, from constants; nothing else reaches it
        if isa(value, (torch.Tensor, torch.nn.Module, list, dict)):
            raise Unsupported(f"{type(real).__name__}.{name} of a module built here")
        return ConstValue(value)
    if obj.source is None and own:
        raise Unsupported("attribute of a module made at translate time")
    if own:  # a class attribute of that name (a data descriptor for __dict__'s) would win
        if _shadowed(type(real), name, name in d):
            raise Unsupported(f"{type(real).__name__}.{name} on the class wins over the instance's: read natively")
        tx.ctx.guards.class_names(type(real), name)
    for table in ("_parameters", "_buffers", "_modules"):
        entries = d.get(table)
        if entries is not None and name in entries:
            return wrap(tx.ctx, entries[name], ModuleDictSource(obj.source, table, name))
    if name in d:
        return wrap(tx.ctx, d[name], AttrSource(obj.source, name))
    try:
        static = inspect.getattr_static(real, name)
    except AttributeError:
        if obj.source is not None and not module_has_attr(tx, obj, name):  # absent, guarded so: a
            # known AttributeError, which an inlined `except AttributeError` or hasattr catches
            raise KnownRaise(AttributeError(f"'{type(real).__name__}' object has no attribute '{name}'")) from None
        raise Unsupported(f"{type(real).__name__} has no attribute {name}") from None
    tx.ctx.guards.class_attributes(type(real), name)  # a method or class attribute: it stays
    # (a module without a source, held by a decorator's closure, still has its class's: the
    # kernels package reads `kernel_layer_name` of one on every forward)
    if obj.source is not None:
        tx.ctx.guards.instance_lacks(obj.source, real, name, by_identity=not obj.module_by_type)
    if isinstance(static, types.FunctionType):
        return MethodValue(ConstValue(static), obj)
    if isinstance(static, property):
        from . import calls

        return calls.call_value(tx, ConstValue(static.fget), [obj], {})
    if isinstance(static, (staticmethod, classmethod)):
        return ConstValue(getattr(real, name))
    value = getattr(real, name)
    if obj.source is not None and (obj.module_by_type or isa(value, (int, float, str, bool, type(None),
                                                                             torch.dtype))):
        return wrap(tx.ctx, value, AttrSource(obj.source, name))
    return ConstValue(value)


_TABLES = ("_parameters", "_buffers", "_modules")


def module_has_attr(tx, obj, name):
    """hasattr(module, name), and the guards it rests on: the class's attributes (its version
    tag), then the instance dict, then nn.Module.__getattr__'s tables. A name found in
    none of them must stay absent from all (`m.bonus = 1.5` after the first call, or a
    child or parameter registered under it, makes hasattr True)."""
    real = obj.value
    cls = type(real)
    if obj.source is not None and module_lookups.own_lookup(cls) is not None:
        return module_lookups.has(tx, obj, name)  # never asked of the real object: its lookup is user code
    found = hasattr(real, name)
    if obj.source is None:
        return found  # made during this translation: nothing outside can change it
    tx.ctx.guards.class_attributes(cls, name, "__getattr__", "__getattribute__")
    in_class = next((vars(k)[name] for k in cls.__mro__ if name in vars(k)), _ABSENT)
    if in_class is not _ABSENT:
        if isinstance(in_class, (types.FunctionType, staticmethod, classmethod)) or \
                not hasattr(type(in_class), "__get__"):
            return True  # found on the class whatever the instance holds
        raise Unsupported(f"hasattr({cls.__name__}, {name!r}): a descriptor's getter decides (it may raise "
                          "AttributeError, then __getattr__ runs), which no guard covers: run natively")
    d = real.__dict__
    if name in d:
        tx.ctx.guards.key_in(AttrSource(obj.source, "__dict__"), name, True)
        return True
    tx.ctx.guards.instance_lacks(obj.source, real, name, by_identity=not obj.module_by_type)
    for table in _TABLES:
        entries = d.get(table)
        if type(entries) not in (dict, collections.OrderedDict):
            raise Unsupported(f"hasattr({cls.__name__}, {name!r}): its {table} is not a dict")
        if name in entries:
            tx.ctx.guards.key_in(AttrSource(obj.source, table), name, True)
            return True
        snap = tx.ctx.guards.snapshots.get(obj.source) if guard_snapshot.enabled() else None
        if not (snap is not None and snap.ref() is real and snap.add(table, name, guard_snapshot.ABSENT, None)):
            tx.ctx.guards.key_in(AttrSource(obj.source, table), name, False)
    return False


def _guard_children(tx, obj, table="_modules"):
    """Which children (or parameters) a container has: `seq.append(m)` after the first call
    must reach the next one, whether the container is guarded by identity or by type."""
    if obj.source is None:  # made during this translation: nothing outside can change it
        return
    _guard_table(tx, obj, table)


def module_getitem(tx, obj, key):
    real = obj.value
    if isinstance(obj, ModuleSliceValue) and isinstance(key, int):
        try:
            return obj.children[key]
        except IndexError:
            raise Unsupported("module index out of range") from None
    _guard_children(tx, obj, "_parameters" if isinstance(real, torch.nn.ParameterList) else "_modules")
    if isa(real, (torch.nn.Sequential, torch.nn.ModuleList)) and isinstance(key, int):
        keys = list(real._modules)
        try:
            k = keys[key]
        except IndexError:
            raise Unsupported("module index out of range") from None
        return wrap(tx.ctx, real._modules[k], ModuleDictSource(obj.source, "_modules", k))
    if isa(real, torch.nn.ModuleList) and isinstance(key, slice) and obj.source is not None:
        # `for layer in self.layers[: self.config.num_hidden_layers]` (every transformers
        # decoder): the slice's children are the parent's, read through its sources
        children = [wrap(tx.ctx, real._modules[k], ModuleDictSource(obj.source, "_modules", k))
                    for k in list(real._modules)[key]]
        return ModuleSliceValue(real[key], children)
    if isa(real, torch.nn.ModuleDict) and isinstance(key, str):
        if key not in real._modules:
            raise Unsupported(f"ModuleDict has no key {key!r}")
        return wrap(tx.ctx, real._modules[key], ModuleDictSource(obj.source, "_modules", key))
    if isinstance(real, torch.nn.ParameterList) and isinstance(key, int):
        k = list(real._parameters)[key]
        return wrap(tx.ctx, real._parameters[k], ModuleDictSource(obj.source, "_parameters", k))
    raise Unsupported(f"indexing {type(real).__name__} with {key!r}")


class ModuleSliceValue(ConstValue):
    """`module_list[a:b]`: a ModuleList made at translate time (emitted as that constant;
    eager makes an equal one per call) whose children keep their sources in the parent.
    Iteration and indexing use the children; attributes of the slice itself break."""

    def __init__(self, value, children):
        super().__init__(value)
        self.children = children


def iterate_module(tx, obj):
    real = obj.value
    if isinstance(obj, ModuleSliceValue):
        return list(obj.children)
    if obj.source is None:
        raise Unsupported("iteration over a module made at translate time")
    _guard_children(tx, obj, "_parameters" if isinstance(real, torch.nn.ParameterList) else "_modules")
    if isa(real, torch.nn.ModuleDict):
        return [ConstValue(k) for k in real._modules]
    if isinstance(real, torch.nn.ParameterList):
        return [wrap(tx.ctx, p, ModuleDictSource(obj.source, "_parameters", k))
                for k, p in real._parameters.items()]
    return [wrap(tx.ctx, m, ModuleDictSource(obj.source, "_modules", k)) for k, m in real._modules.items()]


_Module = torch.nn.Module
# the traversals of nn.Module (generators in eager): modelled as iterators over wrapped
# children, parameters and buffers, each with its source, so `for p in self.parameters()`
# and `sum(p.pow(2).sum() for p in model.parameters())` stay in the graph
TRAVERSALS = {_Module.parameters, _Module.named_parameters, _Module.buffers, _Module.named_buffers,
              _Module.children, _Module.named_children, _Module.modules, _Module.named_modules}


def traverse(tx, fn, obj, args, kwargs):
    """`module.parameters()` and friends: an IteratorValue over the same objects, in the same
    order, as the eager generator yields (checked against it), with the structure guarded."""
    from .operators import python_value
    from .values import IteratorValue

    real = obj.value
    if obj.source is None or getattr(type(real), fn.__name__) is not fn:
        raise Unsupported(f"{type(real).__name__}.{fn.__name__}() is overridden or unsourced")
    try:
        bound = inspect.signature(fn).bind(real, *[python_value(a) for a in args],
                                            **{k: python_value(v) for k, v in kwargs.items()})
    except TypeError as exc:
        raise Unsupported(f"{fn.__name__}(): {exc}") from None
    bound.apply_defaults()
    options = dict(bound.arguments)
    options.pop("self")
    expected = list(fn(real, **options))
    name = fn.__name__.replace("named_", "")
    named = fn.__name__.startswith("named_")
    prefix = options.get("prefix", "")
    if name in ("children", "modules"):
        found = _walk_modules(tx, obj, prefix, recurse=name == "modules",
                              remove_duplicate=options.get("remove_duplicate", True))
        if name == "children":
            found = found[1:]
    else:
        table = "_parameters" if name == "parameters" else "_buffers"
        found = _members(tx, obj, table, prefix, options.get("recurse", True),
                         options.get("remove_duplicate", True))
    modelled = [(k, _real_of(v)) for k, v in found]
    if not named:
        expected = [(k, e) for (k, _), e in zip(modelled, expected)]
    if len(modelled) != len(expected) or any(k != ek or v is not ev for (k, v), (ek, ev) in zip(modelled, expected)):
        raise Unsupported(f"{fn.__name__}() of {type(real).__name__}: not the modelled order")
    items = [TupleValue([ConstValue(k), v]) if named else v for k, v in found]
    return IteratorValue(items)


def _real_of(value):
    return value.value if isa(value, ConstValue) else getattr(value, "real", None)


def _walk_modules(tx, obj, prefix, recurse, remove_duplicate):
    """[(name, module value)] in named_modules order (self first), guarding each `_modules`."""
    out, memo = [], set()

    def visit(value, name):
        real = value.value
        if remove_duplicate:
            if id(real) in memo:
                return
            memo.add(id(real))
        out.append((name, value))
        if not recurse and value is not obj:
            return
        _guard_table(tx, value, "_modules")
        for key, child in real._modules.items():
            if child is None:
                continue
            child_value = wrap(tx.ctx, child, ModuleDictSource(value.source, "_modules", key))
            visit(child_value, name + ("." if name else "") + key)

    visit(obj, prefix)
    return out


def _members(tx, obj, table, prefix, recurse, remove_duplicate):
    modules = _walk_modules(tx, obj, prefix, recurse=True, remove_duplicate=remove_duplicate) \
        if recurse else [(prefix, obj)]
    out, memo = [], set()
    for module_name, module in modules:
        _guard_table(tx, module, table)
        for key, member in getattr(module.value, table).items():
            if member is None or (remove_duplicate and id(member) in memo):
                continue
            if remove_duplicate:
                memo.add(id(member))
            value = wrap(tx.ctx, member, ModuleDictSource(module.source, table, key))
            out.append((module_name + ("." if module_name else "") + key, value))
    return out


def _guard_table(tx, obj, table):
    tx.ctx.guards.keys(AttrSource(obj.source, table), list(getattr(obj.value, table).keys()))


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


# what a module call reads from the class besides dunders (always compared)
_CALL_NAMES = ("forward", "_call_impl", "_wrapped_call_impl", "_compiled_call_impl", "_parameters", "_buffers",
               "_modules", "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
               "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called")


def call_module(tx, obj, args, kwargs, direct=False):
    real = obj.value
    from .lazy_modules import maybe_initialize

    maybe_initialize(tx, real, args, kwargs)  # a lazy module's first call: initialized now
    if has_hooks(real) and not _only_simple_forward_hooks(real):
        raise Unsupported(f"{type(real).__name__} has hooks: called natively")
    forward = type(real).forward
    if type(real).__call__ is not torch.nn.Module.__call__:
        raise Unsupported(f"{type(real).__name__} overrides __call__")
    if "forward" in real.__dict__:  # `m.forward = ...` on the instance: what __call__ runs
        raise Unsupported(f"{type(real).__name__} instance has its own forward: called natively")
    from . import calls

    tx.ctx.guards.class_attributes(type(real), *_CALL_NAMES)  # forward (and __call__) from the class
    tx.ctx.guards.instance_lacks(obj.source, real, "forward", by_identity=not obj.module_by_type)
    _guard_global_hooks(tx)

    # adding or removing a hook later must not reuse this translation
    if obj.module_by_type:  # another instance may have hooks this one lacks
        tx.ctx.guards.module_hooks(obj.source, real)
    pre_hooks = _hook_values(tx, obj, "_forward_pre_hooks")
    post_hooks = _hook_values(tx, obj, "_forward_hooks")
    for hook in pre_hooks:
        result = calls.call_value(tx, hook, [obj, TupleValue(list(args))], {})
        if not (isinstance(result, ConstValue) and result.value is None):
            args = list(result.items) if isinstance(result, TupleValue) else [result]
    tx.direct_call = direct and not pre_hooks and not post_hooks  # forward's result is the call's
    output = calls.call_value(tx, ConstValue(forward), [obj] + list(args), kwargs)
    for hook in post_hooks:
        result = calls.call_value(tx, hook, [obj, TupleValue(list(args)), output], {})
        if not (isinstance(result, ConstValue) and result.value is None):
            output = result
    return output


def _guard_global_hooks(tx):
    """No global module hook was registered when the call was inlined: none may be later
    (`register_module_forward_hook` after the first call). One C call per registry:
    ("call_id", partial(bool, registry), False)."""
    import functools

    from torch.nn.modules import module as module_mod

    for name in ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                 "_global_backward_pre_hooks", "_global_forward_hooks_always_called",
                 "_global_forward_hooks_with_kwargs", "_global_module_registration_hooks",
                 "_global_parameter_registration_hooks", "_global_buffer_registration_hooks"):
        registry = getattr(module_mod, name, None)
        if registry is None:
            continue
        check = _REGISTRY_CHECKS.get(name)
        if check is None or check.args[0] is not registry:
            check = _REGISTRY_CHECKS[name] = functools.partial(bool, registry)
        tx.ctx.guards.call_id(check, bool(registry))


_REGISTRY_CHECKS = {}  # registry name -> partial(bool, registry), one object per registry


def _hook_values(tx, obj, table):
    hooks = getattr(obj.value, table)
    if obj.source is None:
        return [ConstValue(h) for h in hooks.values()]
    source = AttrSource(obj.source, table)
    if not obj.module_by_type:  # by type: guards.module_hooks covers the keys of every table
        tx.ctx.guards.keys(source, list(hooks.keys()))
    return [wrap(tx.ctx, h, ItemSource(source, k)) for k, h in hooks.items()]
