"""transformers' ModelOutput, made in the graph: a dataclass that is also an OrderedDict.

    BaseModelOutput(last_hidden_state=h)     -> ModelOutputValue(cls, one value per field)
    out.name / out["name"]                   -> the field's value
    out[0] / out[1:] / out.to_tuple()        -> the non-None fields in field order (or what
                                                the class's own to_tuple gives, inlined)
    out.keys() / values() / items()          -> the same, as tuples
    emitted code (a break, the return)       -> cls(**{the non-None fields}), built natively

Every forward of a transformers model returns one (and the layers build several); built
natively, each construction was a graph break with a loop over the fields after it. The
eager object's dict holds exactly the non-None fields in field order (the dataclass
__init__ sets each field through ModelOutput.__setattr__, which files non-None values),
so the model is exact as long as the class keeps ModelOutput's own __init__ machinery:
a generated dataclass __init__ and ModelOutput's __post_init__, __setattr__, __setitem__
and __getitem__. Anything else (a first field that is a dict or an iterator, which
__post_init__ unpacks; writes that would reorder the dict) is Unsupported: a break.
Recognised by class name and module, so terra_dyn never imports transformers.
"""
import collections
import dataclasses
import sys

from bytecode import Instr

from .errors import Unsupported
from .guard_checks import GLOBAL_ABSENT
from .values import ConstValue, ObjectValue, TensorValue, TupleValue

_MACHINERY = ("__post_init__", "__setattr__", "__setitem__", "__getitem__", "keys")


def _model_output_base(cls):
    for base in getattr(cls, "__mro__", ()):
        if base.__name__ == "ModelOutput" and base.__module__ == "transformers.utils.generic":
            return base
    return None


def is_model_output_class(cls):
    base = _model_output_base(cls)
    if base is None or cls is base or not dataclasses.is_dataclass(cls):
        return False
    return _init_kind(cls, base) is not None and all(getattr(cls, n) is getattr(base, n) for n in _MACHINERY)


def _generated(fn):
    code = getattr(fn, "__code__", None)
    return code is not None and code.co_filename == "<string>"  # dataclasses exec()s its __init__


def _init_kind(cls, base):
    """"plain": the dataclass __init__; "renaming": transformers' wrapper around it that
    renames the old `past_key_values` / `cache_params` keywords to `cache`; else None."""
    init = cls.__dict__.get("__init__")
    if _generated(init):
        return "plain"
    module = sys.modules.get(base.__module__)
    if init is not None and _generated(getattr(init, "__wrapped__", None)) and \
            init.__code__.co_filename == getattr(module, "__file__", None):
        return "renaming"
    return None


_OLD_CACHE_NAMES = ("past_key_values", "cache_params")


class ModelOutputValue(ObjectValue):
    """attrs: every field (None where unset), in field order."""

    def keys(self):
        return [k for k, v in self.attrs.items() if not _is_none(v)]

    def rebuild(self, r):
        """cls(**fields), with the hook off: the dict part is built too."""
        keys = self.keys()
        args = r.items([self.attrs[k] for k in keys]) + [
            Instr("LOAD_CONST", tuple(keys)), Instr("BUILD_CONST_KEY_MAP", len(keys))]
        return r.call_const(builder(self.cls), args, 1)

    def __repr__(self):
        return f"ModelOutputValue({self.cls.__name__}: {', '.join(self.keys())})"


def _is_none(v):
    return isinstance(v, ConstValue) and v.value is None


def construct(tx, cls, args, kwargs):
    fields = dataclasses.fields(cls)
    if _init_kind(cls, _model_output_base(cls)) == "renaming":
        kwargs = dict(kwargs)
        for old in _OLD_CACHE_NAMES:  # what _rename_kwargs_for_bc does (its warning aside)
            if old in kwargs:
                if "cache" in kwargs:
                    raise Unsupported("both cache and an old cache keyword (raises natively)")
                kwargs["cache"] = kwargs.pop(old)
                break
    if any(not f.init for f in fields) or len(args) > len(fields):
        raise Unsupported(f"constructing {cls.__qualname__} with these arguments")
    attrs = {}
    for f, a in zip(fields, args):
        attrs[f.name] = a
    for name, value in kwargs.items():
        if name in attrs or name not in {f.name for f in fields}:
            raise Unsupported(f"{cls.__qualname__}() got an unexpected keyword argument {name!r}")
        attrs[name] = value
    for f in fields:
        if f.name not in attrs:
            if f.default is dataclasses.MISSING:
                raise Unsupported(f"constructing {cls.__qualname__} without {f.name}")
            attrs[f.name] = ConstValue(f.default)
    ordered = {f.name: attrs[f.name] for f in fields}
    set_fields = [v for v in ordered.values() if not _is_none(v)]
    first = ordered[fields[0].name] if fields else None
    if len(set_fields) == 1 and set_fields[0] is first and not isinstance(first, TensorValue):
        # __post_init__ would try to unpack a lone non-tensor first field (a dict, pairs)
        raise Unsupported(f"constructing {cls.__qualname__} from one non-tensor value")
    return ModelOutputValue(cls, ordered)


def getitem(tx, out, key):
    if not isinstance(key, ConstValue):
        raise Unsupported("ModelOutput subscript with a run-time key")
    k = key.value
    if isinstance(k, str):
        if k in _OLD_CACHE_NAMES and k not in out.attrs:
            k = "cache"  # ModelOutput._replace_old_cache_name
        if k not in out.keys():
            raise Unsupported(f"ModelOutput has no key {k!r} (raises natively)")
        return out.attrs[k]
    items = _call_to_tuple(tx, out).items
    try:
        picked = items[k]
    except (IndexError, TypeError):
        raise Unsupported("ModelOutput index out of range (raises natively)") from None
    return TupleValue(picked) if isinstance(k, slice) else picked


def to_tuple(out):
    return TupleValue([out.attrs[k] for k in out.keys()])


def _call_to_tuple(tx, out):
    """out.to_tuple(), which out[i] reads too: ModelOutput's own, or the class's override
    (CLIPOutput flattens its nested outputs), inlined."""
    method = out.cls.to_tuple
    if method is _model_output_base(out.cls).to_tuple:
        return to_tuple(out)
    from .calls import call_value

    result = call_value(tx, ConstValue(method), [out], {})
    if not isinstance(result, TupleValue):
        raise Unsupported(f"{out.cls.__qualname__}.to_tuple returned {result!r}")
    return result


def store(tx, out, name, value):
    """out.name = value / out["name"] = value, only where the dict keeps its order and
    contents in step with the attributes: a field that is set, given a value that is not None."""
    if name not in out.keys() or _is_none(value):
        raise Unsupported(f"assignment to {out.cls.__qualname__}.{name} (runs natively)")
    out.attrs[name] = value


def _method_keys(tx, out):
    return TupleValue([ConstValue(k) for k in out.keys()])


def _method_values(tx, out):
    return to_tuple(out)


def _method_items(tx, out):
    return TupleValue([TupleValue([ConstValue(k), out.attrs[k]]) for k in out.keys()])


def _method_to_tuple(tx, out):
    return _call_to_tuple(tx, out)


METHODS = {"keys": _method_keys, "values": _method_values, "items": _method_items, "to_tuple": _method_to_tuple}


class BoundMethod:
    """out.keys & co. before the call: rebuilt in emitted code as `out.<name>`."""

    def __init__(self, name):
        self.__name__ = name


_BOUND = {name: BoundMethod(name) for name in METHODS}


def load_attr(tx, out, name):
    """(True, value) for what this module answers; (False, None) for ObjectValue's own path."""
    if name in METHODS:
        from .values import MethodValue

        return True, MethodValue(ConstValue(_BOUND[name]), out)
    return False, None


def call_method(tx, fn, out, args, kwargs):
    if args or kwargs:
        raise Unsupported(f"ModelOutput.{fn.__name__} with arguments")
    return METHODS[fn.__name__](tx, out)


def is_bound_method(f):
    return isinstance(f, BoundMethod)


def rebuild(cls, fields):
    """The emitted construction: what eager's `cls(**fields)` made."""
    return cls(**fields)


class _Builder:
    """cls(**fields) for one ModelOutput class, the emitted construction (issue 17 item 3).

    Natively, the dataclass __init__ sets each field through ModelOutput.__setattr__ (a set
    comprehension of the fields per write) and __post_init__ walks the fields again: ~10 us
    for a 6-field output, more than the rest of a cached call. The object it makes when the
    given values are not None and __post_init__ takes its plain branch (several fields
    given, or a tensor first field) is known exactly: every field in the instance dict in
    field order (None where not given), and the given ones, in field order, as the
    OrderedDict's items. `build` makes that object directly while what decides it is
    unchanged since this builder checked it against a native construction: the class's and
    its metaclass's version tags (any attribute of the class or its bases set: __init__,
    __post_init__, __setattr__, __setitem__, __new__), the generic module's helpers the
    machinery calls, and the class's pytree registration (__post_init__ registers it once).
    Anything else, or a builder whose check failed: `cls(**fields)`.
    """

    __slots__ = ("cls", "names", "first", "tags", "pinned", "namespace", "registered", "fast", "unchanged",
                 "template", "tensor")

    _HELPERS = ("fields", "is_tensor", "_register_model_output_pytree_node", "_rename_kwargs_for_bc",
                "_registered_model_output_types")

    def __init__(self, cls):
        import torch

        from .. import _C

        self.tensor = torch.Tensor
        self.cls = cls
        self.names = tuple(f.name for f in dataclasses.fields(cls))
        self.first = self.names[0] if self.names else None
        self.template = dict.fromkeys(self.names)  # every field, None, in field order
        self.tags = (_C.type_version_tag(cls), _C.type_version_tag(type(cls)))
        module = sys.modules.get(_model_output_base(cls).__module__)
        self.namespace = vars(module) if module is not None else {}
        self.pinned = tuple((n, self.namespace.get(n, GLOBAL_ABSENT)) for n in self._HELPERS)
        self.registered = self.namespace.get("_registered_model_output_types")
        # what `_unchanged` reads, as one C check: the version tags, then each helper still
        # the one pinned (a global_id check memoizes its dict's version tag)
        self.unchanged = _C.Guard([("type_version", cls, self.tags[0]), ("type_version", type(cls), self.tags[1])] +
                                  [("global_id", self.namespace, n, v) for n, v in self.pinned]).check
        self.fast = (0 not in self.tags and isinstance(self.registered, set) and isinstance(self.namespace, dict)
                     and not any(_is_data_descriptor(cls, n) for n in self.names) and self._agrees())

    def _agrees(self):
        """The direct construction equals the native one (one tensor per field; the first
        field alone, then all fields): instance dict and items, by identity and order."""
        import torch

        for given in (self.names[:1], self.names):
            fields = {n: torch.empty(0) for n in given}
            try:
                native = rebuild(self.cls, fields)
            except Exception:
                return False
            direct = self._direct(fields)
            if type(native) is not type(direct) or not _same_pairs(vars(native), vars(direct)) or \
                    not _same_pairs(_od_items(native), _od_items(direct)):
                return False
        return self._unchanged()

    def _unchanged(self):
        return self.unchanged() and self.cls in self.registered

    def _direct(self, fields):
        """Every field in the instance dict in field order (None where not given: no field
        is a data descriptor, so this is what object.__setattr__ per field makes), and the
        given ones, in field order, as the OrderedDict's items."""
        obj = _OD_NEW(self.cls)
        state = vars(obj)
        state.update(self.template)
        state.update(fields)
        for n in self.names:
            if n in fields:
                v = fields[n]
                if v is not None:
                    _OD_SETITEM(obj, n, v)
        return obj

    def build(self, fields):
        if self.fast and self.unchanged() and self.cls in self.registered and fields.keys() <= self.template.keys():
            for v in fields.values():
                if v is None:
                    break
            else:
                # one given field, the first: __post_init__ unpacks it unless it is a tensor
                if len(fields) > 1 or self.first not in fields or isinstance(fields[self.first], self.tensor):
                    return self._direct(fields)
        return self.cls(**fields)


def _is_data_descriptor(cls, name):
    for base in cls.__mro__:
        if name in vars(base):
            kind = type(vars(base)[name])
            return hasattr(kind, "__set__") or hasattr(kind, "__delete__")
    return False


_OD_NEW = collections.OrderedDict.__new__
_OD_SETITEM = collections.OrderedDict.__setitem__
_SETATTR = object.__setattr__


def _od_items(obj):
    return list(collections.OrderedDict.items(obj))


def _same_pairs(a, b):
    a, b = list(a.items()) if isinstance(a, dict) else a, list(b.items()) if isinstance(b, dict) else b
    return len(a) == len(b) and all(x[0] == y[0] and x[1] is y[1] for x, y in zip(a, b))


def builder(cls):
    """The emitted call for cls's construction: _Builder(cls).build with the hook off (the
    class's machinery has no tensor work; translated one by one it only broke). One per
    emission: a table of them by class would keep the classes alive."""
    from .. import _C

    return _C.DisabledCallable(_Builder(cls).build)
