"""The paths check's memo (csrc/path_check.c "the memo"): a pinned root's values that no
write has touched since its last check are not read again. Each case checks a tree a few
times (the memo then answers), changes what one of its reads depends on, and compares the
check with the facts evaluated in plain Python; then undoes the change."""
import types
import weakref

import pytest

from terra_dyn._C import Guard
from terra_dyn.translate import guard_paths as P


def node(step, arg, facts=(), children=()):
    return (step, arg, tuple(facts), tuple(children))


def chain(root_kind, root, steps, facts):
    """A root, then one child per (step, arg), the facts on the last value."""
    if not steps:
        return node(root_kind, root, facts)
    tree = node(steps[-1][0], steps[-1][1], facts)
    for step, arg in reversed(steps[:-1]):
        tree = node(step, arg, (), (tree,))
    return node(root_kind, root, (), (tree,))


class Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class Base:
    z = 1


class Derived(Base):
    pass


STATE = {"p": 0, "q": 0}  # what a property and a __getattr__ answer: no write to their object


class Prop:
    @property
    def p(self):
        return STATE["p"]


class Lazy:
    def __getattr__(self, name):
        return STATE[name]


class Slotted:
    __slots__ = ("x",)


class Klass:
    m = "first"


MODULE = types.ModuleType("memo_module")
MODULE.v = 1


def _cell(value):
    def get():
        return value

    def put(v):
        nonlocal value
        value = v
    return get, put


GET, PUT = _cell(1)
A, B = object(), object()


def cases():
    """(name, root, steps, facts, plain() -> bool, change(), undo())"""
    d = {"k": A}
    o1, o2, o3, o4, o5 = Obj(x=1), Obj(x=1), Obj(t={"a": 1, "b": 2}), Obj(), Obj(m={"k": 1})
    shadow, derived, prop, lazy = Derived(), Derived(), Prop(), Lazy()
    g = {"cfg": o5}
    lst = Obj(l=[1])
    slotted = Slotted()
    slotted.x = 1
    return [
        ("dict item replaced", d, [(P.ITEM, "k")], [(P.ID, A, None)], lambda: d["k"] is A,
         lambda: d.__setitem__("k", B), lambda: d.__setitem__("k", A)),
        ("instance attribute", o1, [(P.ATTR, "x")], [(P.EQ, 1, None)], lambda: o1.x == 1,
         lambda: setattr(o1, "x", 2), lambda: setattr(o1, "x", 1)),
        ("generic attribute", o2, [(P.GENERIC, "x")], [(P.EQ, 1, None)], lambda: o2.x == 1,
         lambda: setattr(o2, "x", 2), lambda: setattr(o2, "x", 1)),
        ("__dict__ replaced", o2, [(P.ATTR, "x")], [(P.EQ, 1, None)], lambda: o2.x == 1,
         lambda: setattr(o2, "__dict__", {"x": 3}), lambda: setattr(o2, "__dict__", {"x": 1})),
        ("instance shadows the class", shadow, [(P.ATTR, "z")], [(P.EQ, 1, None)], lambda: shadow.z == 1,
         lambda: setattr(shadow, "z", 2), lambda: delattr(shadow, "z")),
        ("base class attribute", derived, [(P.ATTR, "z")], [(P.EQ, 1, None)], lambda: derived.z == 1,
         lambda: setattr(Base, "z", 3), lambda: setattr(Base, "z", 1)),
        ("subclass attribute added", derived, [(P.ATTR, "z")], [(P.EQ, 1, None)], lambda: derived.z == 1,
         lambda: setattr(Derived, "z", 4), lambda: delattr(Derived, "z")),
        ("property", prop, [(P.ATTR, "p")], [(P.EQ, 0, None)], lambda: prop.p == 0,
         lambda: STATE.__setitem__("p", 1), lambda: STATE.__setitem__("p", 0)),
        ("__getattr__", lazy, [(P.ATTR, "q")], [(P.EQ, 0, None)], lambda: lazy.q == 0,
         lambda: STATE.__setitem__("q", 1), lambda: STATE.__setitem__("q", 0)),
        ("slot attribute", slotted, [(P.ATTR, "x")], [(P.EQ, 1, None)], lambda: slotted.x == 1,
         lambda: setattr(slotted, "x", 2), lambda: setattr(slotted, "x", 1)),
        ("class object attribute", Klass, [(P.ATTR, "m")], [(P.EQ, "first", None)], lambda: Klass.m == "first",
         lambda: setattr(Klass, "m", "second"), lambda: setattr(Klass, "m", "first")),
        ("module attribute", MODULE, [(P.ATTR, "v")], [(P.EQ, 1, None)], lambda: MODULE.v == 1,
         lambda: setattr(MODULE, "v", 2), lambda: setattr(MODULE, "v", 1)),
        ("keys grow", o3, [(P.ATTR, "t")], [(P.KEYS, ("a", "b"), None)], lambda: list(o3.t) == ["a", "b"],
         lambda: o3.t.__setitem__("c", 3), lambda: o3.t.pop("c")),
        ("key order", o3, [(P.ATTR, "t")], [(P.KEYS, ("a", "b"), None)], lambda: list(o3.t) == ["a", "b"],
         lambda: o3.t.__setitem__("a", o3.t.pop("a")), lambda: o3.t.__setitem__("b", o3.t.pop("b"))),
        ("instance attribute added", o4, [], [(P.NO_ATTR, "w", None)], lambda: "w" not in o4.__dict__,
         lambda: setattr(o4, "w", 1), lambda: delattr(o4, "w")),
        ("nested item", g, [(P.ITEM, "cfg"), (P.ATTR, "m"), (P.ITEM, "k")], [(P.EQ, 1, None)],
         lambda: g["cfg"].m["k"] == 1, lambda: o5.m.__setitem__("k", 2), lambda: o5.m.__setitem__("k", 1)),
        ("nested dict replaced", g, [(P.ITEM, "cfg"), (P.ATTR, "m"), (P.ITEM, "k")], [(P.EQ, 1, None)],
         lambda: g["cfg"].m["k"] == 1, lambda: setattr(o5, "m", {"k": 5}), lambda: setattr(o5, "m", {"k": 1})),
        ("list changed in place", lst, [(P.ATTR, "l")], [(P.EQ, [1], None)], lambda: lst.l == [1],
         lambda: lst.l.append(2), lambda: lst.l.pop()),
        ("closure cell", GET, [(P.ATTR, "__closure__"), (P.ITEM, 0), (P.ATTR, "cell_contents")], [(P.EQ, 1, None)],
         lambda: GET() == 1, lambda: PUT(2), lambda: PUT(1)),
    ]


CASES = cases()


@pytest.mark.parametrize("root_kind", [P.CONST, P.WEAK])
@pytest.mark.parametrize("case", range(len(CASES)), ids=[c[0] for c in CASES])
def test_a_change_after_the_memo_answers_is_seen(case, root_kind):
    name, root, steps, facts, plain, change, undo = CASES[case]
    if root_kind == P.WEAK:
        try:
            root = weakref.ref(root)
        except TypeError:
            pytest.skip("no weak reference to a dict")
    guard = Guard([("paths", (chain(root_kind, root, steps, facts),), None)])
    for _ in range(3):
        assert guard.check() is True
    change()
    try:
        assert guard.check() is plain() is False
        assert guard.check() is False
    finally:
        undo()
    assert plain() is True
    assert guard.check() is True and guard.check() is True


def test_a_weak_root_that_died_fails():
    o = Obj(x=1)
    guard = Guard([("paths", (chain(P.WEAK, weakref.ref(o), [(P.ATTR, "x")], [(P.EQ, 1, None)]),), None)])
    for _ in range(3):
        assert guard.check() is True
    del o
    assert guard.check() is False


def test_a_slot_root_is_read_every_time():
    # a new object may sit at a freed one's address: a slot's value is never memoized
    guard = Guard([("paths", (node(P.SLOT, 0, (), (node(P.ATTR, "x", ((P.EQ, 1, None),)),)),), None)])
    for _ in range(3):
        assert guard.check(Obj(x=1)) is True
    assert guard.check(Obj(x=2)) is False


@pytest.mark.parametrize("case", range(len(CASES)), ids=[c[0] for c in CASES])
def test_a_slot_root_whose_identity_is_a_fact_is_memoized_and_sees_changes(case):
    # once `slot is obj` held, the slot's value is obj, which the spec holds: its memo is as
    # safe as a pinned root's (a transformers wrapper's closure, checked by the hook)
    name, root, steps, facts, plain, change, undo = CASES[case]
    kind, arg, root_facts, children = chain(P.SLOT, 0, steps, facts)
    guard = Guard([("paths", ((kind, arg, ((P.ID, root, None),) + root_facts, children),), None)])
    for _ in range(3):
        assert guard.check(root) is True
    assert guard.check(Obj()) is False and guard.check(root) is True
    change()
    try:
        assert guard.check(root) is plain() is False
        assert guard.check(root) is False
    finally:
        undo()
    assert plain() is True
    assert guard.check(root) is True and guard.check(root) is True


_AUDITED, _RECORDING = [], [False]


def _audit(event, args):
    if _RECORDING[0] and event == "object.__getattr__":
        _AUDITED.append(args[1])


def test_function_fields_are_read_without_audit_events():
    # a Python audit hook (filelock installs one on 3.12+) would run on every check that reads
    # a function's __code__ / __defaults__ / __kwdefaults__ (eager never reads them there):
    # Python code in a check turns the memo off and makes the guard check itself twice
    import sys

    sys.addaudithook(_audit)  # for the rest of the process: it records only while asked

    def f(a=1, *, b=2):
        return a + b

    reads = (node(P.ATTR, "__code__", ((P.ID, f.__code__, None),)), node(P.ATTR, "__defaults__", ((P.EQ, (1,), None),)),
             node(P.ATTR, "__kwdefaults__", ((P.EQ, {"b": 2}, None),)))
    guard = Guard([("paths", (node(P.CONST, f, (), reads),), None)])
    other_code = (lambda a=1, *, b=2: a - b).__code__
    _RECORDING[0] = True
    try:
        assert guard.check() is True and guard.check() is True
        f.__defaults__ = (3,)
        assert guard.check() is False
        f.__defaults__ = (1,)
        f.__kwdefaults__ = None
        assert guard.check() is False
        f.__kwdefaults__ = {"b": 2}
        f.__code__ = other_code
        assert guard.check() is False
    finally:
        _RECORDING[0] = False
    assert _AUDITED == []
