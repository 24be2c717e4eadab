"""Guards: the facts a translation relied on, as checks run before its code is reused.

    GuardSet.tensor(src, t) / .type(src, T) / .value(src, v) / .identity(src, obj) ...
        -> C checks over argument slots (docs/CONTRACTS.md section 1) where the source is
           a slot, `global_id` for globals, `call_id` for grad mode / default dtype
        -> one generated Python predicate (the Guard's fallback) for deeper sources,
           e.g. `a0._modules['fc']._parameters['weight'] is c0`
        -> closure checks: a predicate over the frame's closure variables, run by the
           rewritten code's prologue (the guard sees only argument slots)
        -> snapshots: facts about a module pinned by identity, checked in C on the module
           itself (translate/guard_snapshot.py)
        -> path checks: the predicate's facts about attribute / item chains, one tree
           checked in C (translate/guard_paths.py); what is left stays Python
    GuardSet.build() -> terra_dyn._C.Guard (or PyGuard when the C core is not built)

Shared loads: an expression whose source passes through an object pinned by identity
starts from that object (`c7().eps == c8`, not `a0._modules['ln'].eps == c8`): the identity
guard, checked too, says the two are the same object. Expressions are rendered at build().

Example: a frame `f(x, n)` called with a float32 (4, 3) tensor and n=2 gives
    ("tensor", 0, Tensor, float32, cpu, (4, 3), (3, 1), False), ("type", 1, int), ("eq", 1, 2)
"""
import collections
import copy
import types
import weakref

import torch

from ..real_types import instance_dict, isa

from . import guard_implied, guard_paths, guard_snapshot
from .guard_checks import (GLOBAL_ABSENT, PyGuard, Predicate, check_tensor, check_tensor_layout, describe_check,
                           hook_keys, hooks_are, keys_are, layout_check, offset_is)
from .guard_snapshot import Snapshot
from ..codegen.reconstruct import held_weakly
from .sources import AttrSource, DefaultSource, FreeVarSource, GlobalSource, ItemSource, LocalSource, ModuleDictSource, Source

try:
    from .. import _C
except ImportError:  # the C core is not built: PyGuard keeps translation testable
    _C = None


_ABSENT = object()
_WEAKLY_GUARDED = (torch.nn.Module, torch.Tensor)
_UNPINNED = (bool, type(None), int, float, str)  # values: nothing is read through them


class GuardSet:
    def __init__(self, slot_count, f_globals, freevars=()):
        self.slot_count = slot_count
        self.f_globals = f_globals
        self.freevars = list(freevars)
        self.checks = []
        self.exprs = []  # over a0.. and G (globals): text, or (source, render) until build()
        self.outcomes = []  # those of exprs that are a number branch's outcome (expression())
        self.closure_exprs = []  # over the closure variable names
        self.snapshots = {}  # source -> Snapshot of the module it is pinned to
        self._pinned = {}  # source -> the constant naming the object it is pinned to ("c3()")
        self._weak_pins = {}  # source -> weakref.ref of the module or tensor it is pinned to
        self._bind_counts, self._bound = {}, {}  # shared prefixes of the predicate (_render)
        self._pins_on = True  # rendering what runs: from pinned objects (off: explanations' text)
        self._finished = False
        self._fast = self._closure_fast = None
        self.namespace = {"G": f_globals, "check_tensor": check_tensor, "torch": torch}
        self._seen = set()
        self._ids = {}  # source -> the object an identity fact pins it to
        self._facts = []  # (item of exprs or closure_exprs, source, (kind, expected)): guard_implied
        self._path_facts = {}  # id(item of exprs) -> its guard_paths fact
        self.paths = None  # guard_paths.PathChecks, after _finish
        self._closure_paths = None  # the same over the closure variables
        self._keep = []
        self._class_items = {}  # klass -> a copy of its dict (ClassUnchanged, shared)
        self._class_facts = {}  # class -> its ClassUnchanged (the names read grow as read)
        self._class_names = {}  # class -> names read through instance dicts, before it is guarded
        self._nconst = 0

    # -- adding facts ---------------------------------------------------------------
    def _const(self, obj):
        name = f"c{self._nconst}"
        self._nconst += 1
        self.namespace[name] = obj
        return name

    def _add(self, key, c_check, expr_fn, source, fact=None, path=None):
        """fact: (kind, expected) as guard_snapshot reads it, folded into the snapshot of
        the module `source` reads from when there is one. path: the fact as guard_paths
        checks it (kind, a, b), when it is none of the snapshot kinds."""
        # a key part that is not a source or a plain name is keyed by its id: a list cannot
        # be hashed, and hashing a user object runs its __hash__ at translate time
        # (test_class's tracked __hash__ appends to the list being guarded, forever)
        key_seen = tuple(k if isa(k, Source) or type(k) in (str, int) else ("id", id(k)) for k in key)
        if key_seen in self._seen:
            return
        self._seen.add(key_seen)
        self._keep.append(key)  # an id stays this object's while the translation runs
        if fact is not None and fact[0] == guard_snapshot.ID and source is not None:
            self._ids.setdefault(source, fact[1])  # checked wherever it goes: guard_implied
        if fact is not None and self._fold(source, *fact):
            return
        root = source.root() if source is not None else None
        if root is not None and hasattr(root, "f_globals"):  # a global of another module
            self.namespace[f"FG{id(root.f_globals)}"] = root.f_globals
        if c_check is not None and isinstance(source, LocalSource) and source.slot >= 0:
            self.checks.append(c_check(source.slot))
        elif isinstance(source, GlobalSource) and key[0] == "id":
            self.checks.append(("global_id", self.f_globals, source.name, key[2]))
        else:
            item = (source, expr_fn, key[0] == "id")
            (self.closure_exprs if isinstance(root, FreeVarSource) else self.exprs).append(item)
            if fact is not None:
                self._facts.append((item, source, fact))
            if path is None and fact is not None:
                path = guard_paths.from_snapshot_fact(*fact)
            if path is not None:
                self._path_facts[id(item)] = path

    def _fold(self, source, kind, expected):
        """Record a fact in the snapshot of the module `source` reads from; False if none."""
        if not guard_snapshot.enabled():
            return False
        if kind in ("keys", "len"):  # the source is the table itself: `a0._modules['fc']._forward_hooks`
            snap = self.snapshots.get(source.base) if isinstance(source, AttrSource) else None
            return snap is not None and snap.set_keys(source.name, expected)
        if isinstance(source, AttrSource):
            snap, table, key = self.snapshots.get(source.base), None, source.name
        elif isinstance(source, ModuleDictSource):
            snap, table, key = self.snapshots.get(source.base), source.table, source.name
        elif isinstance(source, ItemSource) and isinstance(source.base, AttrSource):
            snap, table, key = self.snapshots.get(source.base.base), source.base.name, source.key
        else:
            return False
        return snap is not None and snap.add(table, key, kind, expected)

    def tensor(self, source, t):
        meta = (type(t), t.dtype, t.device, tuple(t.size()), tuple(t.stride()), t.requires_grad)
        args = ", ".join(self._const(m) for m in meta)
        # a parameter read from a pinned module: one entry of its snapshot (checked in C)
        fact = (guard_snapshot.TENSOR, self._one_check(("tensor", 0) + meta)) \
            if isinstance(source, (ModuleDictSource, AttrSource)) else None
        path = (guard_paths.TENSOR, fact[1] if fact else self._one_check(("tensor", 0) + meta), None) \
            if _C is not None else None
        self._add(("tensor", source), lambda i: ("tensor", i) + meta,
                  lambda e: self._tensor_expr(e, meta, args), source, fact, path)

    def _tensor_expr(self, e, meta, args):
        """As run: one C check (`c9.check(a2['input_ids'])`, 0.05 us, not 0.65 us in Python:
        the kwargs' tensors); as explained, check_tensor(...), which recompiles.py and
        convert_frame read for the sizes that changed."""
        if self._pins_on and _C is not None:
            return f"{self._const(self._one_check(('tensor', 0) + meta))}.check({e})"
        return f"check_tensor({e}, {args})"

    @staticmethod
    def _one_check(check):
        return _C.Guard([check]) if _C is not None else PyGuard([check])

    def tensor_layout(self, source, t, sizes, strides, offset):
        """Like tensor(), for an input translated with symbolic sizes (and, non-contiguous,
        strides and storage offset): see check_tensor_layout for `sizes`, `strides`, `offset`."""
        meta = (type(t), t.dtype, t.device, tuple(sizes), strides, offset, t.requires_grad)
        args = ", ".join(self._const(m) for m in meta)
        self.namespace.setdefault("check_tensor_layout", check_tensor_layout)
        check = layout_check(meta)
        self._add(("tensor", source), None, lambda e: f"check_tensor_layout({e}, {args})", source,
                  path=(guard_paths.CALL, check, ()) if check else (guard_paths.CALL, check_tensor_layout, meta))

    def storage_offset(self, source, offset):
        """The translation read a storage offset that follows from this input's (`x.storage_offset()`,
        or a view's): the tensor guard does not check offsets (a slice taken at another row is
        the same translation), so this one does."""
        self._add(("offset", source), None, lambda e: f"{e}.storage_offset() == {int(offset)}", source,
                  path=(guard_paths.CALL, offset_is, (int(offset),)))

    def expression(self, text, outcome=False):
        """A Python expression over the argument slots (and G) that must be true; `outcome`:
        it is the way a branch on a number input went (kept in `outcomes` too)."""
        if outcome and text not in self.outcomes:
            self.outcomes.append(text)
        if ("expr", text) not in self._seen:
            self._seen.add(("expr", text))
            self.exprs.append(text)

    def type(self, source, cls):
        if held_weakly(cls):  # made per call: neither the check nor a snapshot may keep it
            ref = weakref.ref(cls)
            return self._add(("type", source), lambda i: ("type", i, ref), lambda e: f"type({e}) is {self._const(ref)}()", source)
        self._add(("type", source), lambda i: ("type", i, cls),
                  lambda e: f"type({e}) is {self._const(cls)}", source, (guard_snapshot.TYPE, cls))

    def value(self, source, v):
        """Equal value and type (so 1, 1.0 and True stay apart)."""
        self.type(source, type(v))
        if v is None or isa(v, bool):
            return self.identity(source, v)
        self._add(("eq", source), lambda i: ("eq", i, v),
                  lambda e: f"{e} == {self._const(v)}", source, (guard_snapshot.EQ, v))

    def identity(self, source, obj, weak=False):
        """weak: hold `obj` by a weak reference, as a module or a tensor (an object the
        guard would otherwise keep alive with all it holds)."""
        if isa(obj, torch.nn.Module) and source is not None and source not in self.snapshots \
                and self._pinnable(source):
            # its class is checked with it, and facts about it are checked on it
            self.snapshots[source] = Snapshot(source, obj)
        if weak or isa(obj, _WEAKLY_GUARDED) or held_weakly(obj):
            # a module or a parameter: a deleted model must be freed, not kept by its guards
            ref = weakref.ref(obj)
            self._pin(source, f"{self._const(ref)}()")
            if source is not None and self._pinnable(source):
                self._weak_pins.setdefault(source, ref)
            held = obj if isinstance(source, GlobalSource) else ref  # _keep holds keys; global_id reads key[2]
            self._add(("id", source, held), lambda i: ("id_weak", i, ref),
                      lambda e: f"{e} is {self._const(ref)}()", source, (guard_snapshot.ID_WEAK, ref))
            return
        if source is not None and source not in self._pinned and not isa(obj, _UNPINNED):
            self._pin(source, self._const(obj))
        self._add(("id", source, obj), lambda i: ("id", i, obj),
                  lambda e: f"{e} is {self._const(obj)}", source, (guard_snapshot.ID, obj))

    def pinned_ref(self, source):
        """The weakref this guard pins `source` to (a parameter, a module), or None: code
        that runs right after the guard passed may load ref() instead of walking the source
        (`a0._modules['encoder']._modules['layer']..._parameters['weight']`)."""
        return self._weak_pins.get(source)

    @staticmethod
    def _pinnable(source):
        root = source.root()
        return not isinstance(root, FreeVarSource) and not (isinstance(root, LocalSource) and root.slot < 0)

    def _pin(self, source, const):
        if source is not None and source not in self._pinned and self._pinnable(source):
            self._pinned[source] = const

    def same_object(self, source, other, obj):
        """`source` held the same object as `other` (a tensor passed twice): it must again.
        Both read through modules with snapshots (the config every transformers layer
        keeps, `a0._modules['encoder']...['self'].config is a0.config`): both are pinned to
        the object, weakly, instead: two snapshot entries checked in C, and so the alias is."""
        if source == other:
            return
        if guard_snapshot.enabled() and type(obj).__weakrefoffset__ \
                and all(self._snapshot_of(s) is not None for s in (source, other)):
            self.identity(other, obj, weak=True)
            self.identity(source, obj, weak=True)
            return
        if all(isinstance(s.root(), LocalSource) and s.root().slot >= 0 for s in (source, other)):
            self._add(("alias", source, other), None, lambda e: f"{e} is {self._render(other)}", source,
                      path=(_SAME, other, True))
        else:  # roots the predicate cannot name together: pin this very object instead
            self.identity(source, obj)

    def _snapshot_of(self, source):
        """The snapshot an identity fact about `source` folds into, or None."""
        if not isinstance(source, (AttrSource, ModuleDictSource)):
            return None
        snap = self.snapshots.get(source.base)
        obj = snap.ref() if snap is not None else None
        if obj is None:
            return None
        table = None if isinstance(source, AttrSource) else source.table
        if table is None and not guard_snapshot._plain_attribute(obj, source.name):
            return None
        return snap

    def distinct(self, source, other):
        """`source` and `other` held different objects (`a is b` read False): they must again."""
        if not all(isinstance(s.root(), LocalSource) and s.root().slot >= 0 for s in (source, other)):
            from .errors import Unsupported

            raise Unsupported("identity of two values reached from different roots")
        self._add(("distinct", source, other), None, lambda e: f"{e} is not {self._render(other)}", source,
                  path=(_SAME, other, False))

    def length(self, source, n):
        self._add(("len", source), lambda i: ("len", i, n), lambda e: f"len({e}) == {n}", source, ("len", n))

    def keys(self, source, keys):
        keys = list(keys)
        self.namespace.setdefault("keys_are", keys_are)
        self._add(("keys", source), None, lambda e: f"keys_are({e}, {self._const(keys)})", source,
                  ("keys", keys))

    def key_in(self, source, key, present):
        """`key in source` is `present` (a str, int or None key)."""
        self._add(("key_in", source, key), None, lambda e: f"({key!r} in {e}) is {present}", source,
                  path=(guard_paths.KEY_IN, key, bool(present)))

    def same_state(self, source, obj):
        """`copy.deepcopy(source)` was made at translation: its whole state is as it was
        (translate/deep_copies.py; types, dict keys in order, values)."""
        from .deep_copies import IDENTITY_TYPES, same_state

        if _C is not None:  # the same reading in C: a config's state is ~60 entries deep
            self.namespace.setdefault("same_state", lambda a, b, _f=_C.same_state: _f(a, b, IDENTITY_TYPES))
        self.namespace.setdefault("same_state", same_state)
        snapshot = copy.deepcopy(obj)
        path = (guard_paths.CALL, _C.same_state, (snapshot, IDENTITY_TYPES)) if _C is not None else None
        self._add(("state", source), None, lambda e: f"same_state({e}, {self._const(snapshot)})", source, path=path)

    def module_hooks(self, source, module):
        """Which hooks of every kind a module has (one check; for modules guarded by type)."""
        self.namespace.setdefault("hook_keys", hook_keys)
        keys = hook_keys(module)
        self._add(("hooks", source), None, lambda e: f"hook_keys({e}) == {self._const(keys)}", source,
                  path=(guard_paths.CALL, hooks_are, (keys,)))

    def class_attributes(self, cls, *names):
        """The translation read attributes of `cls` or of a class on its MRO (a method, a
        class constant, `forward`): `names`, or, with none given, anything of it. None of
        those may be set, deleted or shadowed later. One C check of the type's version tag,
        which CPython changes on any write along the MRO; when it moved, the names read are
        compared (guard_snapshot.ClassUnchanged), so a write to another attribute (an undone
        patch, torch.compile replacing nn.Module.__init__) is no recompile."""
        same = self._class_facts.get(cls)
        if same is not None:
            same.read(names or None)
            return
        pending = self._class_names.pop(cls, ())
        tag = _C.type_version_tag(cls) if _C is not None else 0
        if tag and held_weakly(cls):  # made per call: held weakly, any write is a recompile
            self._class_facts[cls] = _ALL_NAMES_READ
            return self.checks.append(("type_version", weakref.ref(cls), tag))
        same = guard_snapshot.ClassUnchanged(cls, self._class_items, (names + tuple(pending)) if names else None)
        self._class_facts[cls] = same
        if tag:
            self.checks.append(("type_version", cls, tag, same))
        else:  # CPython ran out of tags for it: compare what was read along the MRO instead
            self.call_id(same, True)

    def class_names(self, cls, *names):
        """The translation read `names` through an instance's own dicts (a module's
        `_parameters`): a class attribute of such a name would shadow them. Compared with
        the class's other names when its class is guarded (now or later in the translation)."""
        same = self._class_facts.get(cls)
        if same is not None:
            same.read(names)
        else:
            self._class_names.setdefault(cls, set()).update(names)

    def function(self, fn):
        """An inlined Python function: its code, defaults and keyword defaults must stay
        these objects (autoreload and monkeypatching replace `__code__`)."""
        key = ("func", id(fn))
        if key in self._seen or not isinstance(fn, types.FunctionType):
            return
        self._seen.add(key)
        held = weakref.ref(fn) if held_weakly(fn) else fn  # made per call: not kept alive
        self._keep.append(held)  # the id in the key must not be reused while this set lives
        self.checks.append(("func", held, fn.__code__, fn.__defaults__, fn.__kwdefaults__))

    def instance_lacks(self, source, obj, name, by_identity=False):
        """`obj.name` was found on the class (a method, `forward`): the instance's own dict
        must not gain `name` later (`m.forward = f`, `obj.method = g`), or that one is what
        Python calls. by_identity: `source` is guarded to be this very object (a module):
        one C check on it, held weakly."""
        d = instance_dict(obj)
        if type(d) is not dict or source is None:
            return  # no instance dict (slots, builtins): nothing can shadow the class's
        snap = self.snapshots.get(source) if guard_snapshot.enabled() else None
        if snap is not None and snap.ref() is obj and snap.add(None, name, guard_snapshot.ABSENT, None):
            return
        if by_identity and isa(obj, _WEAKLY_GUARDED):
            key = ("no_attr_weak", id(obj), name)
            if key not in self._seen:
                self._seen.add(key)
                self.checks.append(("no_attr_weak", weakref.ref(obj), name))
            return
        self._add(("no_attr", source, name), lambda i: ("no_attr", i, name),
                  lambda e: f"{name!r} not in getattr({e}, '__dict__', ())", source,
                  path=(guard_paths.NO_ATTR, name, None))

    def module_attribute(self, module, name, value):
        """`module.name` of a Python module object the translation already relies on (a torch
        function, `F.gelu`): the module's dict must still hold this very object. One C dict
        lookup; a name the module's dict lacks (PEP 562 `__getattr__`) cannot be guarded."""
        d = module.__dict__
        if d.get(name, _ABSENT) is not value:
            from .errors import Unsupported

            raise Unsupported(f"{module.__name__}.{name} is not in the module's dict")
        key = ("modattr", id(d), name)
        if key not in self._seen:
            self._seen.add(key)
            self.checks.append(("global_id", d, name, value))

    def global_absent(self, name):
        """A builtin was used: the globals must not shadow it."""
        key = ("absent", name)
        if key not in self._seen:
            self._seen.add(key)
            self.checks.append(("global_id", self.f_globals, name, GLOBAL_ABSENT))

    def call_id(self, fn, obj):
        key = ("call_id", fn)
        if key not in self._seen:
            self._seen.add(key)
            self.checks.append(("call_id", fn, obj))

    def ambient(self):
        """Grad mode, default dtype and autocast: every translation depends on them."""
        self.call_id(torch.is_grad_enabled, torch.is_grad_enabled())
        self.call_id(torch.get_default_dtype, torch.get_default_dtype())
        self.autocast()

    def autocast(self):
        """Autocast off everywhere (one call per check), or the very state the frame was
        translated in: shapes were propagated with its casts (translate/autocast.py)."""
        from .autocast import ambient_state

        self.call_id(torch._C._is_any_autocast_enabled, torch._C._is_any_autocast_enabled())
        state = ambient_state()
        if state is not None:
            self.call_id(*state)

    # -- building -------------------------------------------------------------------
    def build(self):
        self._finish()
        params = self._params()
        fallback = Predicate(params, self.exprs, dict(self.namespace), self._fast) if self.exprs else None
        if _C is not None:
            return _C.Guard(list(self.checks), fallback)
        return PyGuard(self.checks, fallback)

    def closure_predicate(self):
        """Predicate over the closure variables (by name), or None."""
        self._finish()
        names = self._closure_params()
        fallback = Predicate(names, self.closure_exprs, dict(self.namespace), self._closure_fast) \
            if self.closure_exprs else None
        if _C is None or not (self._closure_paths or fallback):
            return fallback
        # a Guard's check, which the hook runs on the frame's cells (codegen/graph_call.py);
        # a transformers wrapper's `func` cell: its code's varnames, its closure's cells, one tree
        return _C.Guard([self._closure_paths.check()] if self._closure_paths else [], fallback).check

    def _closure_params(self):
        return [f"F_{n}" for n in self.freevars]

    def _params(self):
        return [f"a{i}" for i in range(self.slot_count)]

    def describe(self):
        self._finish()
        lines = []
        for c in self.checks:
            lines += c[4].describe() if c[0] == "snapshot" else c[2].exprs if c[0] == "paths" \
                else [describe_check(c)]
        lines += self.exprs + [f"closure: {e}" for e in self.closure_exprs]
        return lines

    def _finish(self):
        """Render the expressions (sources through pinned objects start from them) and add
        the snapshots' checks: after translation, when every pin is known and a lazy
        module has its final class. Idempotent."""
        if not self._finished:
            self._finished = True
            implied = guard_implied.implied(self)
            self.exprs = [e for e in self.exprs if id(e) not in implied]
            self.closure_exprs = [e for e in self.closure_exprs if id(e) not in implied]
            self.exprs, self.paths = self._to_paths(self.exprs)
            self.closure_exprs, self._closure_paths = self._to_paths(self.closure_exprs, closure=True)
            self._bind_counts = self._prefix_counts(self.exprs)
            self._fast = [self._render_fact(e) for e in self.exprs]
            self._bind_counts, self._bound = {}, {}
            self._closure_fast = [self._render_fact(e, closure=True) for e in self.closure_exprs]
            self.exprs = [self._render_fact(e, pins=False) for e in self.exprs]
            self.closure_exprs = [self._render_fact(e, closure=True, pins=False) for e in self.closure_exprs]
        for source, snap in list(self.snapshots.items()):
            if snap.tables:  # facts read through its dicts: no data descriptor may appear
                obj = snap.ref()  # not `ref() and ...`: an empty ModuleList is falsy
                if obj is not None:
                    self.class_attributes(type(obj), *snap.names())
            self.checks.append(snap.check())
            del self.snapshots[source]
        if self.paths:
            self.checks.append(self.paths.check())
            self.paths = None
        self._class_items, self._class_facts, self._class_names = {}, {}, {}  # classes made per call die

    def _to_paths(self, items, closure=False):
        """(the items a path check cannot read, a PathChecks of the others or None).
        closure: the items are over the closure variables (roots are their positions)."""
        if not guard_paths.enabled() or _C is None:
            return items, None
        paths = guard_paths.PathChecks(self._closure_params() if closure else self._params(), self.namespace)
        rest = []
        for item in items:
            fact = self._path_facts.get(id(item)) if not isinstance(item, str) else None
            if fact is not None and fact[0] is _SAME:  # an alias: the other source's path, read per check
                other = guard_paths.path_of(self, fact[1], False, closure)
                fact = (guard_paths.SAME, (other[0][0], other[0][1], tuple(other[1])), fact[2]) if other else None
            path = guard_paths.path_of(self, item[0], item[2], closure) if fact is not None else None
            if path is None:
                rest.append(item)
            else:
                paths.add(*path, fact, self._render_fact(item, closure=closure, pins=False))
        return rest, (paths if len(paths) else None)

    def _render_fact(self, item, closure=False, pins=True):
        if isinstance(item, str):
            return item
        source, expr_fn, own = item
        self._pins_on = pins
        try:
            return expr_fn(self._render(source, own, closure))
        finally:
            self._pins_on = True

    def _render(self, source, own=False, closure=False):
        """source's expression, from the nearest pinned object on it (not itself when
        `own`: the pin's own identity guard). A prefix several facts share is evaluated
        once: bound where first read (`(_v0 := c13().config).use_cache`), named after."""
        if self._pins_on and not own and source in self._pinned:
            return self._pinned[source]
        if source in self._bound:
            return self._bound[source]
        base = getattr(source, "base", None)
        if base is None:
            text = _closure_expr(source) if closure else source.expr()
        else:
            text = source.expr_from(self._render(base, closure=closure))
        if not own and self._bind_counts.get(source, 0) >= 2 and not isinstance(source, LocalSource):
            self._bound[source] = var = f"_v{len(self._bound)}"
            return f"({var} := {text})"
        return text

    def _prefix_counts(self, items):
        """How many facts read each source on their way (up to a pinned object)."""
        counts = collections.Counter()
        for item in items:
            if isinstance(item, str):
                continue
            source, _, own = item
            s = source.base if own else source
            while s is not None and s not in self._pinned:
                counts[s] += 1
                s = getattr(s, "base", None)
        return counts


_SAME = object()  # an alias fact until build: (_SAME, the other source, is / is not)
_ALL_NAMES_READ = types.SimpleNamespace(read=lambda names: None)  # a weakly held class: its tag is all


def _closure_expr(source):
    # expr() of a closure-rooted source names the root "<closure x>": rename to F_x
    root = source.root()
    return source.expr().replace(root.expr(), f"F_{root.name}")
