"""Guard snapshots: the facts about one module pinned by identity, checked by one C check.

A translation that inlines a model reads, for every submodule, its identity, its hooks, a
few attributes and its parameters. As Python expressions each fact walks its source from
the root (`a0._modules['encoder']._modules['layer']._modules['3']._modules['output']
._modules['dense']._parameters['bias'] is c9()`): 1500 of them for a 12-layer BERT. A
module guarded by identity is this very object on every call that passes, so each fact
about it can be checked on the object itself, held weakly, with no chain walked:

    GuardSet.identity(src, module)       -> Snapshot(src, module)  (its class is checked too:
                                            `m.__class__ = Other` runs another forward)
    a fact whose source reads one of its dicts:
        src.name          -> entry `name` of its __dict__
        src._modules['x'] -> entry 'x' of __dict__['_modules']   (_parameters, _buffers too)
        src._forward_hooks[k], list(src._forward_hooks.keys())    (hook tables)
        src.shape_tuple[0], len(src.shape_tuple)                  (a tuple attribute)
        src._parameters['w'] tensor metadata                     (a one-check Guard: `w.data = t`
                                                                   keeps the object, not its shape)
                          -> Snapshot.add(table, key, kind, expected)
    Snapshot.check()      -> ("snapshot", ref, cls, tables, self), run by csrc/snapshot.c

A fact is folded only where the Python expression would read the same dict: the instance
dict holds the name, no data descriptor on the class shadows it (the class's version tag is
guarded, so none appears later), the table is exactly a dict, OrderedDict or tuple.
TERRA_DYN_GUARD_SNAPSHOTS=0 folds nothing (the class check stays).

Example: `fc` (a Linear under a0, both pinned) read for its weight, bias and hooks gives
    ("snapshot", ref(fc), Linear, ((None, dict, None, (("forward", ABSENT, None),)),
        ("_parameters", dict, None, (("weight", ID_WEAK, ref(w)), ("bias", ID_WEAK, ref(b)))),
        ("_forward_hooks", OrderedDict, (), ())), <snapshot a0._modules['fc']>)
"""
import collections
import weakref

import torch
from torch.nn import Module as _Module

from ..real_types import isa
from .. import config

ID, ID_WEAK, TYPE, EQ, ABSENT, TENSOR = range(6)
_KIND_TEXT = {ID: "is", ID_WEAK: "is", TYPE: "type is", EQ: "==", ABSENT: "absent", TENSOR: "matches"}
_TABLE_TYPES = (dict, collections.OrderedDict, tuple)


def enabled():
    return config.guard_snapshots


class Snapshot:
    """What one translation read of one module pinned by identity: per table (its instance
    dict, or a dict or tuple kept in it), the keys in order and facts about entries."""

    def __init__(self, source, obj):
        self.source = source
        self.ref = weakref.ref(obj)
        self.cls = type(obj)  # replaced by the class at build time (a lazy module's changes)
        self.tables = {}  # None or attribute name -> _Table

    def __repr__(self):
        return f"<snapshot {self.source.expr()}>"

    # -- folding facts ------------------------------------------------------------------
    def add(self, table, key, kind, expected):
        """Record `container[key] <kind> expected` for a table; False when not foldable."""
        t = self._table(table)
        if t is None:
            return False
        if t.type is tuple:
            if type(key) is not int or not 0 <= key < len(t.container):
                return False
        elif type(key) not in (str, int):
            return False
        elif table is None and kind != ABSENT and not _plain_attribute(self.ref(), key):
            if not _fixed_class_attribute(self.ref(), key, kind, expected):
                return False
            kind, expected = ABSENT, None  # the class's version tag, guarded, fixes the value
        t.entries.setdefault((key, kind), expected)
        return True

    def set_keys(self, table, keys):
        """The table's keys in order (a dict), or its length (a tuple)."""
        if table is None:
            return False
        t = self._table(table)
        if t is None or (t.type is tuple) != isinstance(keys, int):
            return False
        t.keys = keys if isinstance(keys, int) else tuple(keys)
        if t.type is not tuple and not all(type(k) in (str, int) for k in t.keys):
            return False
        return True

    def _table(self, name):
        t = self.tables.get(name)
        if t is not None:
            return t
        obj = self.ref()
        d = getattr(obj, "__dict__", None)
        if obj is None or type(d) is not dict:
            return None
        if name is None:
            container = d
        else:
            if not _plain_attribute(obj, name):
                return None
            container = d[name]
            if type(container) not in _TABLE_TYPES:
                return None
        t = self.tables[name] = _Table(type(container), container if type(container) is tuple else None)
        return t

    # -- building and reading -----------------------------------------------------------
    def names(self):
        """The names read through its dicts (tables, keys): a class attribute of such a
        name would shadow them, so the class's check compares them."""
        found = {name for name in self.tables if name is not None}
        for t in self.tables.values():
            found.update(k for k, _ in t.entries if type(k) is str)
            if t.keys is not None and not isinstance(t.keys, int):
                found.update(k for k in t.keys if type(k) is str)
        return found

    def check(self):
        obj = self.ref()
        if obj is not None:
            self.cls = type(obj)
        tables = tuple((name, t.type, t.keys, tuple((k, kind, e) for (k, kind), e in t.entries.items()))
                       for name, t in self.tables.items())
        for t in self.tables.values():
            t.container = None  # a tuple attribute: not kept past translation
        return ("snapshot", self.ref, self.cls, tables, self)

    def failure(self):
        """(expression, what, expected, now) of the first fact that no longer holds, or
        None: the Python reading of csrc/snapshot.c (explain, PyGuard, recompiles). what:
        "object" (freed or another one), "type", "keys", "length" or "value"."""
        where = self.source.expr()
        obj = self.ref()
        if obj is None:
            return where, "object", "alive", "freed"
        if type(obj) is not self.cls:
            return where, "type", self.cls, type(obj)
        d = getattr(obj, "__dict__", None)
        for name, t in self.tables.items():
            label = where if name is None else f"{where}.{name}"
            container = d if name is None else (d or {}).get(name, _MISSING)
            if type(container) is not t.type:
                return label, "type", t.type, type(container)
            if t.keys is not None:
                now = len(container) if t.type is tuple else tuple(container)
                if now != t.keys or (t.type is not tuple and tuple(map(type, now)) != tuple(map(type, t.keys))):
                    return label, ("length" if t.type is tuple else "keys"), t.keys, now
            for (key, kind), expected in t.entries.items():
                entry = self._entry_expr(name, key)
                if t.type is tuple:
                    value = container[key] if key < len(container) else _MISSING
                else:
                    value = container.get(key, _MISSING)
                if not _holds(kind, value, expected):
                    what = {ID: "object", ID_WEAK: "object", TYPE: "type", TENSOR: "tensor"}.get(kind, "value")
                    if kind == TENSOR:
                        return entry, what, tensor_meta(expected), tensor_meta(value)
                    now = type(value) if kind == TYPE and value is not _MISSING else value
                    return entry, what, expected() if kind == ID_WEAK else expected, now
        return None

    def changed(self, is_number):
        """The sources (`a0._modules['drop'].p`) of entries that now hold another number of
        the same type, or another module of the same type: convert_frame then passes that
        number as a graph input, or guards that module by type (what it reads from the
        expressions of a Python predicate)."""
        return [self._entry_expr(name, key) for name, _, key, _ in self._changes(is_number)]

    def changed_numbers(self, is_number):
        """(owner, key, number now, holder) of the entries that now hold another number, for
        translate/changing.py: the object the number is read from (the module, or its table)
        and, for a table, (the module, the table's name)."""
        obj = self.ref()
        return [(obj, key, now, None) if name is None else (container, key, now, (obj, name))
                for name, container, key, now in self._changes(is_number) if is_number(now)]

    def _changes(self, is_number):
        obj = self.ref()
        d = getattr(obj, "__dict__", None)
        if obj is None or type(d) is not dict:
            return []
        out = []
        for name, t in self.tables.items():
            container = d if name is None else d.get(name)
            if type(container) is not t.type or t.type is tuple:
                continue
            for (key, kind), expected in t.entries.items():
                now = container.get(key, _MISSING)
                then = expected() if kind == ID_WEAK else expected
                if kind == TENSOR or now is _MISSING or type(now) is not type(then):
                    continue
                if (kind == EQ and is_number(then) and now != then) or \
                        (kind == ID_WEAK and isinstance(then, _Module) and now is not then):
                    out.append((name, container, key, now))
        return out

    def _entry_expr(self, table, key):
        where = self.source.expr()
        return f"{where}.{key}" if table is None else f"{where}.{table}[{key!r}]"

    def describe(self):
        lines = [f"{self.source.expr()} alive, type is {self.cls.__name__}"]
        for name, t in self.tables.items():
            label = self.source.expr() if name is None else f"{self.source.expr()}.{name}"
            if t.keys is not None:
                lines.append(f"len({label}) == {t.keys}" if t.type is tuple else f"{label}.keys() == {list(t.keys)}")
            for (key, kind), expected in t.entries.items():
                entry = self._entry_expr(name, key)
                shown = tensor_meta(expected) if kind == TENSOR else show(expected)
                lines.append(f"{entry} {_KIND_TEXT[kind]} {shown}")
        return lines


class _Table:
    __slots__ = ("type", "keys", "entries", "container")

    def __init__(self, cls, container):
        self.type = cls
        self.keys = None
        self.entries = {}  # (key, kind) -> expected
        self.container = container  # a tuple's value while translating (index checks)


_MISSING = object()


def _holds(kind, value, expected):
    if kind == ABSENT:
        return value is _MISSING
    if value is _MISSING:
        return False
    if kind == ID:
        return value is expected
    if kind == ID_WEAK:
        return value is expected()
    if kind == TYPE:
        return type(value) is expected
    if kind == TENSOR:
        return bool(expected.check(value))
    try:
        return bool(value == expected)
    except Exception:
        return False


def tensor_meta(value):
    """A TENSOR entry's one-check guard, or a tensor, as "float32 cpu (4, 3)" (what a
    recompile explanation shows)."""
    if isa(value, torch.Tensor):
        return f"{str(value.dtype).replace('torch.', '')} {value.device} {tuple(value.shape)}"
    check = getattr(value, "checks", None)
    if check:  # ("tensor", 0, T, dtype, device, sizes, strides, requires_grad)
        _, _, _, dtype, device, sizes, _, _ = check[0]
        return f"{str(dtype).replace('torch.', '')} {device} {tuple(sizes)}"
    return show(value)


def show(value):
    from .errors import safe_repr

    if value is _MISSING:
        return "missing"
    if isa(value, weakref.ref):
        value = value()
    if isa(value, type):
        return value.__qualname__
    return safe_repr(value, limit=40)


def _plain_attribute(obj, name):
    """`obj.name` reads `obj.__dict__[name]`: the dict has it, the class's attribute lookup
    is object's, and no data descriptor (a property) on the class takes precedence."""
    cls = type(obj)
    d = getattr(obj, "__dict__", None)
    if type(d) is not dict or name not in d or cls.__getattribute__ is not object.__getattribute__:
        return False
    for klass in cls.__mro__:
        attr = klass.__dict__.get(name, _MISSING)
        if attr is not _MISSING:
            kind = type(attr)
            return not (hasattr(kind, "__set__") or hasattr(kind, "__delete__"))
    return True


_FIXED_TYPES = (bool, int, float, str, bytes, type(None))


def _fixed_class_attribute(obj, name, kind, expected):
    """`obj.name` reads a plain class attribute (`gradient_checkpointing = False` of every
    transformers layer) and the fact about it cannot change while the class does not: the
    object itself, or the type or value of an immutable one. Then the fact is the instance
    dict lacking `name`, with the class's version tag (guarded with every snapshot that has
    tables: GuardSet._finish)."""
    cls = type(obj)
    d = getattr(obj, "__dict__", None)
    if type(d) is not dict or name in d or cls.__getattribute__ is not object.__getattribute__:
        return False
    for klass in cls.__mro__:
        attr = klass.__dict__.get(name, _MISSING)
        if attr is not _MISSING:
            break
    else:
        return False
    if hasattr(type(attr), "__get__"):  # a method, property or other descriptor
        return False
    if kind in (ID, ID_WEAK):
        return attr is (expected() if kind == ID_WEAK else expected)
    if type(attr) not in _FIXED_TYPES:
        return False
    return type(attr) is expected if kind == TYPE else kind == EQ and type(attr) is type(expected) and attr == expected


class ClassUnchanged:
    """A class and every class on its MRO still hold what the translation read of them, and
    the MRO is the same. Two uses: the fallback of a type_version check whose tag moved (a
    write since, perhaps undone: every torch.fx trace patches nn.Module's `__call__` and
    `__getattr__` and restores them; torch.compile's first trace replaces nn.Module.__init__
    for good), and the whole check for a class CPython gives no version tag (3.13 gives a
    class at most 1000 tags in a process).

    Name-aware: with `names` (the attributes the translation looked up on the class, or read
    from an instance's dicts where a class attribute of that name would shadow them), only
    those names are compared along the whole MRO (same object, still absent where absent:
    no data descriptor added over an instance attribute read, nothing added in a subclass
    that would shadow a base's attribute), plus every dunder name but `_INERT` (lookup and
    protocol slots the translation may rely on without naming them). names=None compares
    every attribute of every class on the MRO (a reader that did not say what it read).

    Run as ("call_id", ClassUnchanged(cls), True), or as the `same` of ("type_version", T,
    tag, same): a C call of this object when the tag moved."""

    def __init__(self, cls, items_of=None, names=()):
        """items_of: klass -> a copy of its dict, shared by the classes one translation reads
        (one copy of nn.Module's ~90 attributes, not one per module class)."""
        items_of = {} if items_of is None else items_of
        self.cls = cls
        self.mro = cls.__mro__
        self.dicts = tuple(items_of[k] if k in items_of else items_of.setdefault(k, dict(vars(k)))
                           for k in self.mro)  # holds the values: no id reuse
        self.names = None if names is None else set(names)
        self.__name__ = f"class {cls.__qualname__} and its bases unchanged"

    def read(self, names):
        """The translation read these names too (None: it read the class as a whole)."""
        if names is None:
            self.names = None
        elif self.names is not None:
            self.names.update(names)

    def __call__(self):
        if self.cls.__mro__ is not self.mro:
            return False
        names = self.names
        for klass, items in zip(self.mro, self.dicts):
            now = vars(klass)
            if names is None:
                if len(now) != len(items):
                    return False
                for name, value in items.items():
                    if now.get(name, _MISSING) is not value:
                        return False
                continue
            for name in names:
                if now.get(name, _MISSING) is not items.get(name, _MISSING):
                    return False
            for d in (now, items):  # dunders added, removed or replaced
                for name in d:
                    if name[:2] == "__" and name[-2:] == "__" and name not in names and name not in _INERT and \
                            now.get(name, _MISSING) is not items.get(name, _MISSING):
                        return False
        return True


# Dunder names no translation reads without naming them: run when an object is made,
# copied by pickle's protocol or documented. torch.compile's first trace replaces
# nn.Module.__init__ and __setstate__ for good.
_INERT = frozenset(("__init__", "__setstate__", "__doc__", "__module__", "__qualname__",
                    "__annotations__", "__firstlineno__", "__static_attributes__"))
