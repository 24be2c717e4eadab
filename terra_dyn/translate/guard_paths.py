"""Path checks: the guard facts about values read along attribute and item chains, as one
tree checked in C (csrc/path_check.c), not one Python expression each.

What a snapshot (guard_snapshot.py) cannot fold stays a fact about a path: a config's
attributes read through `object.__getattribute__`, transformers' attention registries
(`FG['ALL_ATTENTION_FUNCTIONS']._global_mapping['sdpa'] is c3`), a mask function's closure
cells, the **kwargs dict's tensors. As Python each walks its chain from its root (an
argument slot, an object the guard pins, a module's globals); as a tree, each prefix is
read once and each fact is one C comparison:

    GuardSet._add(source, ..., path=(kind, a, b))        a fact about `source`'s value
    PathChecks.add(root, steps, fact, text)              root: (SLOT, 2), (WEAK, ref), (CONST, obj)
                                                         steps: (ATTR, 'config'), (ITEM, 'sdpa') ...
    PathChecks.check() -> ("paths", roots, self)         one check of the C Guard

Each step reads what the Python expression read: `x.name` (ATTR: getattr),
`object.__getattribute__(x, name)` (GENERIC), `x[key]` (ITEM, also for `_modules['fc']`,
`__closure__[1]`, `__defaults__[0]`). A node's facts are checked before its children are
read (so `type(x) is T` still comes before `x.attr`). The facts' Python text stays for
explanations and recompile reasons (`exprs`, `namespace`, `params`, `explain`: the
interface of guard_checks.Predicate). TERRA_DYN_GUARD_PATHS=0 leaves them all in the
Python predicate.

Example: `list(a2.keys()) == c1` and `check_tensor(a2['input_ids'], ...)` give
    ((SLOT, 2, ((KEYS, ('input_ids', 'attention_mask'), None),),
      ((ITEM, 'input_ids', ((TENSOR, <Guard tensor>, None),), ()),)),)
"""
from .. import config
from . import guard_snapshot
from .guard_checks import Predicate

SLOT, CONST, WEAK = range(3)  # roots
ATTR, GENERIC, ITEM = range(3)  # steps
ID, ID_WEAK, TYPE, EQ, TENSOR, LEN, KEYS, KEY_IN, NO_ATTR, CALL, SAME = range(11)  # facts


def enabled():
    return config.guard_paths


class _Node:
    __slots__ = ("step", "arg", "facts", "children")

    def __init__(self, step, arg):
        self.step, self.arg = step, arg
        self.facts = []
        self.children = {}

    def child(self, step, arg):
        key = (step, arg) if type(arg) in (str, int) else (step, "id", id(arg))
        node = self.children.get(key)
        if node is None:
            node = self.children[key] = _Node(step, arg)
        return node

    def spec(self):
        return (self.step, self.arg, tuple(self.facts), tuple(c.spec() for c in self.children.values()))


class PathChecks:
    """The path facts of one guard: a tree for C, their Python text for people."""

    def __init__(self, params, namespace):
        self.params = list(params)
        self.namespace = namespace
        self.exprs = []  # the facts' Python text, in the order added
        self._roots = {}
        self._reading = None

    def add(self, root, steps, fact, text):
        kind, obj = root
        key = (kind, obj) if kind == SLOT else (kind, "id", id(obj))
        node = self._roots.get(key)
        if node is None:
            node = self._roots[key] = _Node(kind, obj)
        for step, arg in steps:
            node = node.child(step, arg)
        node.facts.append(fact)
        self.exprs.append(text)

    def __len__(self):
        return len(self.exprs)

    def check(self):
        return ("paths", tuple(n.spec() for n in self._roots.values()), self)

    # -- the Python reading (PyGuard, explain, recompile reasons) -------------------------
    def _predicate(self):
        if self._reading is None:
            self._reading = Predicate(self.params, self.exprs, dict(self.namespace))
        return self._reading

    def __call__(self, *args):
        return self._predicate()(*args)

    def explain(self, *args):
        return self._predicate().explain(*args)

    def __repr__(self):
        return f"<path checks: {len(self.exprs)} facts>"


def from_snapshot_fact(kind, expected):
    """A fact as GuardSet records it for snapshots (guard_snapshot kind, expected) as a path
    check's (kind, a, b), or None (ABSENT: an instance dict's, folded or left to Python)."""
    make = _FROM_SNAPSHOT.get(kind)
    return make(expected) if make is not None else None


_FROM_SNAPSHOT = {
    guard_snapshot.ID: lambda v: (ID, v, None),
    guard_snapshot.ID_WEAK: lambda v: (ID_WEAK, v, None),
    guard_snapshot.TYPE: lambda v: (TYPE, v, None),
    guard_snapshot.EQ: lambda v: (EQ, v, None),
    guard_snapshot.TENSOR: lambda v: (TENSOR, v, None),
    "len": lambda n: (LEN, n, None),
    "keys": lambda keys: (KEYS, tuple(keys), None),
}


def path_of(guards, source, own, closure=False):
    """(root, steps) reading `source` from the nearest object GuardSet `guards` pins on it
    (not itself when `own`), an argument slot, a closure variable (closure: its position)
    or a module's globals; None when a source on the way is one a path cannot read."""
    from .sources import FreeVarSource, GlobalSource, LocalSource

    steps = []
    while True:
        const = guards._pinned.get(source) if not own else None
        own = False
        if const is not None:  # "c7()": a weakref's referent; "c7": the object
            root = (WEAK if const.endswith("()") else CONST, guards.namespace[const.rstrip("()")])
            break
        if isinstance(source, LocalSource):
            if source.slot < 0 or closure:
                return None
            root = (SLOT, source.slot)
            break
        if isinstance(source, FreeVarSource):
            if not closure or source.name not in guards.freevars:
                return None
            root = (SLOT, guards.freevars.index(source.name))
            break
        if isinstance(source, GlobalSource):
            root = (CONST, getattr(source, "f_globals", guards.f_globals))
            steps.append((ITEM, source.name))
            break
        more = steps_of(source)
        if more is None:
            return None
        steps += reversed(more)
        source = source.base
    return root, steps[::-1]


def steps_of(source):
    """The steps that read `source` from its base, outermost last, or None: one kind of
    source a path cannot read."""
    from .sources import AttrSource, ClosureCellSource, DefaultSource, GenericAttrSource, ItemSource, \
        ModuleDictSource

    kind = type(source)
    if kind is AttrSource:
        return [(ATTR, source.name)]
    if kind is GenericAttrSource:
        return [(GENERIC, source.name)]
    if kind is ModuleDictSource:
        return [(ATTR, source.table), (ITEM, source.name)]
    if kind is ItemSource:
        return [(ITEM, source.key)]
    if kind is ClosureCellSource:
        return [(ATTR, "__closure__"), (ITEM, source.index), (ATTR, "cell_contents")]
    if kind is DefaultSource:
        return [(ATTR, "__kwdefaults__" if source.kw else "__defaults__"), (ITEM, source.key)]
    return None


def guard_texts(guard):
    """The Python text of every fact a built guard keeps as text: its predicate's and its
    path checks' (for tests and debugging: what the guard relies on beyond its C checks)."""
    fallback = getattr(guard, "fallback", None)
    texts = list(fallback.exprs) if fallback is not None else []
    for check in guard.checks:
        if check[0] == "paths":
            texts += check[2].exprs
    return texts
