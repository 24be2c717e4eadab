"""Python builtins and container methods on abstract values.

    len, isinstance, issubclass, getattr, hasattr, type, callable
    range, zip, enumerate, reversed, map, filter, iter, next, list, tuple, dict, sorted
    min, max, abs, sum, round, int, float, bool, str, all, any
    list.append/extend/pop/insert/..., dict.get/items/keys/values/update/..., tuple.index

Builtins on tensors route to the graph (abs(x) -> torch.abs, min(a, b) on tensors is a
break), on Python values they are computed now. Mutating a container that came from the
caller records a write-back (TranslationContext.mutate).

zip, enumerate, reversed, map, filter, iter and dict views make the lazy iterator values of
iterators.py: a loop body that changes the list or dict it walks sees what eager sees.

Example: `for i, layer in enumerate(self.layers)` is an EnumerateIterator whose steps give
TupleValues (ConstValue(i), module value).
"""
import abc
import builtins
import functools
import types

import torch

from ..real_types import asks_user_code, isa
from .drops import check_overwrite
from .guard_checks import abc_token
from .errors import Unsupported
from .iterators import DictIterator, EnumerateIterator, MapIterator, ReversedIterator, ZipIterator
from .operators import build_slice, get_iter, is_graph_value, python_value, truth, unpack
from .values import (ConstValue, DictValue, DictViewValue, FunctionValue, IteratorValue, ListValue,
                     MethodValue, ObjectValue, OpaqueIterator, ScalarValue, TensorValue, TupleValue)

_NAMES = ["pow", "len", "isinstance", "issubclass", "getattr", "hasattr", "type", "callable", "range", "zip",
          "enumerate", "reversed", "iter", "next", "list", "tuple", "dict", "sorted", "min", "max",
          "abs", "sum", "round", "int", "float", "bool", "str", "all", "any", "print", "id", "repr",
          "divmod", "pow", "format", "hash", "set", "frozenset", "ord", "chr", "map", "filter", "slice",
          "setattr", "delattr"]
_BUILTINS = {getattr(builtins, n): n for n in _NAMES}


def is_builtin(f):
    try:
        return f in _BUILTINS
    except TypeError:
        return False


def call_builtin(tx, f, args, kwargs):
    name = _BUILTINS[f]
    handler = globals().get(f"_b_{name}")
    if handler is not None:
        return handler(tx, *args, **kwargs)
    # a pure builtin on Python values: compute it now
    if any(is_graph_value(a) for a in args) or any(is_graph_value(v) for v in kwargs.values()):
        raise Unsupported(f"{name}() on a tensor or run-time number")
    return ConstValue(f(*[python_value(a) for a in args], **{k: python_value(v) for k, v in kwargs.items()}))


def _b_set(tx, *args):
    # a set built now would be one mutable object, baked into the code and shared by every
    # call (`s = set(); s.add(...)` accumulated across calls): let the call run natively
    raise Unsupported("set() makes a mutable set (not modelled)")


def _b_pow(tx, base, exp, *mod):
    if not mod and (is_graph_value(base) or is_graph_value(exp)):
        import operator

        return tx.ctx.graph.call("call_function", operator.pow, [base, exp])
    return ConstValue(pow(python_value(base), python_value(exp), *map(python_value, mod)))


def _b_print(tx, *args, **kwargs):
    from .calls import record_call

    return record_call(tx, ConstValue(print), list(args), kwargs)


def _b_len(tx, v):
    if isinstance(v, (TupleValue, ListValue, DictValue)):
        return ConstValue(len(v.items))
    if isinstance(v, DictViewValue):
        return ConstValue(len(v.dict.items))
    if isinstance(v, TensorValue):
        if v.facts.dim() == 0:
            raise Unsupported("len() of a 0-d tensor")
        return tx.ctx.graph.sizes(v)[0]
    if isinstance(v, ConstValue):
        if isa(v.value, torch.nn.Module):  # guarded by identity: its children are fixed
            return ConstValue(len(v.value))
        if not v.by_type:
            return ConstValue(len(v.as_python()))
    from .operators import python_dunder

    method = python_dunder(v, "__len__")
    if method is not None:  # a Sequence subclass's __len__, inlined
        n = method(tx, [])
        if not (isinstance(n, ConstValue) and type(n.value) is int and n.value >= 0):
            raise Unsupported(f"{value_type(v).__name__}.__len__ returned {n!r}")
        return n
    raise Unsupported(f"len() of {v!r}")


def value_type(v):
    if isinstance(v, TensorValue):
        return getattr(v, "cls", torch.Tensor)
    if isinstance(v, ScalarValue):
        return type(v.example)
    if isinstance(v, ConstValue):
        return type(v.value)
    if isinstance(v, TupleValue):
        return v.cls
    if isinstance(v, ListValue):
        return list
    if isinstance(v, DictValue):
        return v.cls
    if isinstance(v, ObjectValue):
        return v.cls
    if isinstance(v, FunctionValue):
        return type(_b_len)
    if isinstance(v, DictViewValue):
        return v.python_type()
    if isinstance(v, (IteratorValue, OpaqueIterator)):
        raise Unsupported("type of an iterator")
    raise Unsupported(f"type of {v!r}")


def _b_isinstance(tx, v, cls):
    t = value_type(v)
    target = python_value(cls)
    _guard_abc_answers(tx, target)
    if not asks_user_code(t):
        return ConstValue(issubclass(t, target))
    # Python asks the object's `__class__` for each class its type is not a subclass of, and a
    # Python __getattribute__ or a `__class__` property answers (a Mock with a spec says its
    # spec's class; test_descr's logging module subclass records every read): that read is
    # translated like the user's own `obj.__class__`, its answer then checked
    for item in _flat_classes(target):
        if issubclass(t, item):
            return ConstValue(True)
        if type(item) is not type:  # an ABC's or a user metaclass's __instancecheck__
            raise Unsupported(f"isinstance() of a {t.__name__} that answers __class__ itself: run natively")
        from .attributes import load_attr

        said = load_attr(tx, v, "__class__")
        said = said.value if isinstance(said, ConstValue) else None
        if not isa(said, type):
            raise Unsupported(f"{t.__name__}.__class__ is no known class: isinstance() runs natively")
        if said is not t and issubclass(said, item):
            return ConstValue(True)
    return ConstValue(False)


def _b_issubclass(tx, cls, target):
    if is_graph_value(cls) or is_graph_value(target):
        raise Unsupported("issubclass() on a tensor or run-time number")
    target = python_value(target)
    _guard_abc_answers(tx, target)
    return ConstValue(issubclass(python_value(cls), target))


def _guard_abc_answers(tx, target):
    """An ABC's answer changes when any class is registered with any ABC (`Base.register(C)`
    after the first call): abc's cache token, which each registration moves, is guarded."""
    try:
        classes = _flat_classes(target)
    except TypeError:
        return  # not a class or a tuple of them: isinstance raises its own error
    if any(isa(c, abc.ABCMeta) for c in classes):
        tx.ctx.guards.call_id(abc_token, abc_token())


def _flat_classes(target):
    if type(target) is not tuple:
        return [target]
    return [c for item in target for c in _flat_classes(item)]


def _b_type(tx, v):
    return ConstValue(value_type(v))


def _b_callable(tx, v):
    if isinstance(v, (FunctionValue, MethodValue)):
        return ConstValue(True)
    return ConstValue(callable(value_type(v)) and (isinstance(v, ConstValue) and callable(v.value)))


def _b_getattr(tx, obj, name, *default):
    from .attributes import load_attr

    try:
        return load_attr(tx, obj, python_value(name))
    except Unsupported:
        if default and not _has_attr(tx, obj, python_value(name)):
            return default[0]
        raise


def _b_setattr(tx, obj, name, value):
    """setattr(obj, "name", v): `obj.name = v` (get_text_config renames a copy's keys)."""
    from .attributes import store_attr

    name = python_value(name)
    if type(name) is not str:
        raise Unsupported("setattr with a name that is not a str (raises natively)")
    store_attr(tx, obj, name, value)
    return ConstValue(None)


def _b_delattr(tx, obj, name):
    from . import deep_copies

    if not deep_copies.is_copied(obj):
        raise Unsupported("call to delattr is not captured")
    deep_copies.delete(tx, obj, python_value(name))
    return ConstValue(None)


def _has_attr(tx, obj, name):
    if isinstance(obj, TensorValue):
        from .attributes import tensor_has_attr

        return tensor_has_attr(tx, obj, name)
    if isinstance(obj, ConstValue):
        from .attributes import object_has_attr

        if obj.source is not None:
            tx.ctx.guards.type(obj.source, type(obj.value))
        return object_has_attr(tx, obj, name)
    if isinstance(obj, ObjectValue):
        from .attributes import object_value_has_attr

        return object_value_has_attr(obj, name)
    if isinstance(obj, TupleValue):
        return hasattr(obj.cls, name)
    raise Unsupported(f"hasattr on {obj!r}")


def _b_hasattr(tx, obj, name):
    return ConstValue(_has_attr(tx, obj, python_value(name)))


def _b_range(tx, *args):
    return ConstValue(range(*[_index(a) for a in args]))


def _index(v):
    """A range bound: a symbolic one is pinned (an unrolled loop is valid for one length)."""
    if isinstance(v, TensorValue) or isinstance(v, ScalarValue) and not v.symbolic:
        raise Unsupported("range() of a value known only at run time")
    return python_value(v)


def _b_slice(tx, *args):
    if any(isinstance(a, ScalarValue) for a in args):  # `slice(0, n - 1)`: n stays symbolic
        return build_slice([ConstValue(None)] + list(args) if len(args) == 1 else list(args))
    return ConstValue(slice(*map(python_value, args)))


def _b_zip(tx, *iterables, strict=ConstValue(False)):
    # lazy, as CPython's: each step reads the live lists (a loop body may append to them)
    return ZipIterator([get_iter(tx, it) for it in iterables], strict=bool(python_value(strict)))


def _b_map(tx, fn, *iterables):
    if not iterables:
        raise Unsupported("map() with no iterable (raises natively)")
    return MapIterator(tx, fn, [get_iter(tx, it) for it in iterables])


def _b_filter(tx, fn, iterable):
    return MapIterator(tx, fn, [get_iter(tx, iterable)], keep_if_true=True)


def _b_enumerate(tx, iterable, start=ConstValue(0)):
    return EnumerateIterator(get_iter(tx, iterable), python_value(start))


def _b_reversed(tx, seq):
    if isinstance(seq, ListValue):  # reads the live list, as list_reverseiterator does
        return ReversedIterator(seq)
    if isinstance(seq, DictValue):
        return DictIterator(seq, "keys", reverse=True)
    if isinstance(seq, DictViewValue):
        return seq.iterate(reverse=True)
    if isinstance(seq, (IteratorValue, OpaqueIterator)):
        raise Unsupported("reversed() of an iterator (raises natively)")
    it = IteratorValue(list(reversed(unpack(tx, seq))))  # immutable: tuple, range, str
    if isinstance(seq, ConstValue) and type(seq.value) in (range, str, tuple, bytes) or \
            isinstance(seq, TupleValue) and seq.cls is tuple:
        it.origin, it.reverse = seq, True  # rebuilt as reversed(seq) at its index (iterators.py)
    return it


def _b_iter(tx, v, *sentinel):
    if sentinel:
        raise Unsupported("iter(callable, sentinel) (runs natively)")
    return get_iter(tx, v)


def _b_next(tx, it, *default):
    if isinstance(it, IteratorValue):
        saved = it.save()
        item = it.next_item()
        if item is None:
            if default:
                return default[0]
            it.restore(saved)  # the native next() takes this step again (zip's first items)
            raise Unsupported("StopIteration (raises natively)")
        return item
    raise Unsupported(f"next() on {it!r}")


def _b_list(tx, iterable=None):
    return ListValue([] if iterable is None else unpack(tx, iterable))


def _b_tuple(tx, iterable=None):
    return TupleValue([] if iterable is None else unpack(tx, iterable))


def _b_dict(tx, *args, **kwargs):
    items = {}
    if args:
        src = args[0]
        if isinstance(src, DictValue):
            items.update(src.items)
        else:
            for pair in unpack(tx, src):
                k, v = unpack(tx, pair)
                items[python_value(k)] = v
    items.update(kwargs)
    return DictValue(items)


def _b_sorted(tx, iterable, key=None, reverse=ConstValue(False)):
    items = unpack(tx, iterable)
    if key is not None and not (isinstance(key, ConstValue) and key.value is None):
        keys = _keys(tx, key, items)  # sorted by key: the items themselves, stably
        order = _checked(sorted, range(len(items)), key=keys.__getitem__, reverse=python_value(reverse))
        return ListValue([items[i] for i in order])
    return ListValue([ConstValue(x) for x in sorted([python_value(i) for i in items],
                                                    reverse=python_value(reverse))])


def _keys(tx, key, items):
    """key(item) for each item, in order, as Python values (the key function is translated:
    its side effects are recorded like any call's)."""
    from . import calls

    out = []
    for item in items:
        k = calls.call_value(tx, key, [item], {})
        if is_graph_value(k):
            raise Unsupported("a key function whose result is known only at run time")
        out.append(python_value(k))
    return out


def _checked(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except TypeError as exc:  # incomparable keys: the call raises natively, as in eager
        raise Unsupported(f"{fn.__name__}(): {exc}") from None


def _minmax(tx, fn, args, kwargs):
    if set(kwargs) - {"default", "key"}:
        raise Unsupported(f"{fn.__name__}() with keyword arguments {sorted(kwargs)}")
    items = unpack(tx, args[0]) if len(args) == 1 else list(args)
    if kwargs:
        if "default" in kwargs and not items:
            return kwargs["default"]
        key = kwargs.get("key")
        if key is not None and not (isinstance(key, ConstValue) and key.value is None):
            if not items:
                raise Unsupported(f"{fn.__name__}() of an empty sequence (raises natively)")
            keys = _keys(tx, key, items)  # the first item with the least (greatest) key
            return items[_checked(fn, range(len(items)), key=keys.__getitem__)]
        if any(is_graph_value(i) for i in items):
            raise Unsupported(f"{fn.__name__}(default=) over tensors")
        return ConstValue(_checked(fn, [python_value(i) for i in items]))
    if any(is_graph_value(i) for i in items):
        if len(items) == 2 and all(isinstance(i, TensorValue) for i in items):
            op = torch.maximum if fn is max else torch.minimum
            return tx.ctx.graph.call("call_function", op, items)
        if all(_is_int_like(i) for i in items):  # sizes: max(n, 8) stays symbolic, unguarded
            op = torch.sym_max if fn is max else torch.sym_min
            return functools.reduce(lambda a, b: tx.ctx.graph.call("call_function", op, [a, b]), items)
        if len(items) >= 2 and all(_run_time_float(i) or isinstance(i, ConstValue) and type(i.value) in (int, float)
                         for i in items):  # `max(1, int(round(h * ratio)))` on a float input
            return tx.ctx.graph.call("call_function", fn, items)
        raise Unsupported(f"{fn.__name__}() over tensors or run-time numbers")
    return ConstValue(fn(python_value(i) for i in items))


def _b_min(tx, *args, **kwargs):
    return _minmax(tx, min, args, kwargs)


def _b_max(tx, *args, **kwargs):
    return _minmax(tx, max, args, kwargs)


def _b_abs(tx, v):
    if is_graph_value(v):
        import operator

        return tx.ctx.graph.call("call_function", operator.abs, [v])
    return ConstValue(abs(python_value(v)))


def _b_sum(tx, iterable, start=ConstValue(0)):
    items = unpack(tx, iterable)
    if not any(is_graph_value(i) for i in items):
        return ConstValue(sum((python_value(i) for i in items), python_value(start)))
    import operator

    total = start
    for item in items:
        if isinstance(total, ConstValue) and total.value == 0 and isinstance(item, TensorValue) \
                and total is start:
            total = tx.ctx.graph.call("call_function", operator.add, [start, item])
        else:
            total = tx.ctx.graph.call("call_function", operator.add, [total, item])
    return total


def _is_int_like(v):
    return isinstance(v, ScalarValue) and isinstance(v.example, torch.SymInt) or \
        isinstance(v, ConstValue) and type(v.value) is int


def _conversion(name):
    def handler(tx, *args):
        if len(args) == 1 and _is_int_like(args[0]) and name == "int":
            return args[0]
        if len(args) == 1 and _is_int_like(args[0]) and name == "float" and isinstance(args[0], ScalarValue):
            return tx.ctx.graph.call("call_function", torch.sym_float, [args[0]])
        if name != "str" and _run_time_float(args[0]) and all(isinstance(a, ConstValue) for a in args[1:]):
            # `round(v, 3)` of a float a break made (`v = loss.item()`): number arithmetic,
            # spelled as bytecode when nothing else is in its graph (codegen/number_graph.py)
            return tx.ctx.graph.call("call_function", getattr(builtins, name), list(args))
        if any(is_graph_value(a) for a in args):
            raise Unsupported(f"{name}() of a tensor or run-time number needs its value")
        return ConstValue(getattr(builtins, name)(*[python_value(a) for a in args]))
    return handler


def _run_time_float(v):
    """A float graph input, or a number computed from one (`int(v * 10)`); never a symbolic
    size or int input (a SymInt), whose conversions stay as they were."""
    return isinstance(v, ScalarValue) and type(v.example) in (float, int)


_b_int = _conversion("int")
_b_float = _conversion("float")
_b_str = _conversion("str")
_b_round = _conversion("round")


def _b_bool(tx, v=ConstValue(False)):
    return ConstValue(truth(tx, v))


def _b_all(tx, iterable):
    return ConstValue(_first_truth(tx, iterable, False))


def _b_any(tx, iterable):
    return ConstValue(_first_truth(tx, iterable, True))


def _first_truth(tx, iterable, wanted):
    """any() (wanted True) / all() (False): an iterator is consumed up to the first item
    whose truth is `wanted`, as Python stops there (`any((last := n) == 1 for n in xs)`
    leaves last == 1: test_named_expressions' test_named_expression_scope_03)."""
    if isinstance(iterable, IteratorValue):
        while (item := iterable.next_item()) is not None:
            if bool(truth(tx, item)) is wanted:
                return wanted
        return not wanted
    items = unpack(tx, iterable)
    return any(truth(tx, x) for x in items) if wanted else all(truth(tx, x) for x in items)


def _b_id(tx, v):
    """id() of a function, class or module the translation pinned by identity (the kernels
    package keys its per-call registry by `id(fn)`); any other value may be a new object
    per call."""
    if isinstance(v, ConstValue) and isa(v.value, _PINNED_KINDS) and not (
            v.by_type or getattr(v, "module_by_type", False) or getattr(v, "fresh", False)):
        return ConstValue(id(v.value))
    raise Unsupported("id() of a value")


_PINNED_KINDS = (types.FunctionType, types.BuiltinFunctionType, type, types.ModuleType, torch.nn.Module)


# -- container methods ------------------------------------------------------------------
def call_container_method(tx, f, obj, args, kwargs):
    name = getattr(f, "__name__", "")
    if isinstance(obj, ListValue):
        return _list_method(tx, name, obj, args)
    if isinstance(obj, DictValue):
        if kwargs and name == "update":
            args = list(args) + [DictValue(kwargs)]
            if len(args) == 2 and not (isinstance(args[0], DictValue) and not args[0].items):
                _dict_method(tx, name, obj, args[:1])
                args = args[1:]
        elif kwargs:
            raise Unsupported(f"dict.{name} with keyword arguments")
        return _dict_method(tx, name, obj, args)
    if isinstance(obj, TupleValue) and name in ("index", "count"):
        return ConstValue(getattr(tuple(python_value(i) for i in obj.items), name)(*map(python_value, args)))
    raise Unsupported(f"{type(obj).__name__}.{name}")


def _list_method(tx, name, lst, args):
    if name == "append" and lst.is_lazy():
        from .side_effects import Call

        lst.pending.append(args[0])
        tx.ctx.record(Call(ConstValue(list.append), [lst, args[0]]))
        return ConstValue(None)
    items = lst.items
    if name == "append":
        tx.ctx.mutate(lst)
        items.append(args[0])
        return ConstValue(None)
    if name == "extend":
        tx.ctx.mutate(lst)
        items.extend(unpack(tx, args[0]))
        return ConstValue(None)
    if name == "insert":
        tx.ctx.mutate(lst)
        items.insert(python_value(args[0]), args[1])
        return ConstValue(None)
    if name == "pop":
        if not items:
            raise Unsupported("pop from an empty list (raises natively)")
        tx.ctx.mutate(lst)
        return items.pop(python_value(args[0]) if args else -1)
    if name == "clear":
        check_overwrite(tx, items, "list.clear()")
        tx.ctx.mutate(lst)
        items.clear()
        return ConstValue(None)
    if name == "reverse":
        tx.ctx.mutate(lst)
        items.reverse()
        return ConstValue(None)
    if name == "copy":
        return ListValue(list(items))
    if name in ("index", "count") and not any(is_graph_value(i) for i in items):
        return ConstValue(getattr([python_value(i) for i in items], name)(*map(python_value, args)))
    raise Unsupported(f"list.{name}")


def _dict_method(tx, name, d, args):
    items = d.items
    if name in ("keys", "values", "items"):  # live views: iterating one sees later changes
        return DictViewValue(d, name)
    if name == "get":
        key = python_value(args[0])
        return items.get(key, args[1] if len(args) > 1 else ConstValue(None))
    if name == "__getitem__":
        return items[python_value(args[0])]
    if name in ("update", "setdefault", "pop", "clear", "__setitem__"):
        if name == "update":
            from .operators import dict_items

            new = dict_items(tx, args[0])
            check_overwrite(tx, [items[k] for k in new if k in items], "dict.update()")
            tx.ctx.mutate(d)
            items.update(new)
            return ConstValue(None)
        if name in ("clear", "__setitem__"):
            check_overwrite(tx, list(items.values()) if name == "clear" else [items.get(python_value(args[0]))],
                            f"dict.{name}()")
        tx.ctx.mutate(d)
        if name == "setdefault":
            return items.setdefault(python_value(args[0]), args[1] if len(args) > 1 else ConstValue(None))
        if name == "pop":
            key = python_value(args[0])
            if key not in items and len(args) < 2:
                raise Unsupported("KeyError (raises natively)")
            return items.pop(key, args[1] if len(args) > 1 else None)
        if name == "__setitem__":
            items[python_value(args[0])] = args[1]
            return ConstValue(None)
        items.clear()
        return ConstValue(None)
    if name == "copy":
        return DictValue(dict(items), cls=d.cls)
    raise Unsupported(f"dict.{name}")
