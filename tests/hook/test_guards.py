"""Guard checks evaluated in C: each kind passing and failing, fallback, explain."""
import collections
import functools

import pytest
import torch

from terra_dyn import _C
from terra_dyn._C import Guard

G = {"w": 1}


def tensor_check(t, i=0, **override):
    fields = dict(T=type(t), dtype=t.dtype, device=t.device, sizes=tuple(t.shape),
                  strides=t.stride(), requires_grad=t.requires_grad)
    fields.update(override)
    return ("tensor", i, *fields.values())


X = torch.randn(2, 3)
CASES = [  # (check, passing args, failing args)
    (("type", 0, int), (1,), (1.0,)),
    (("id", 0, G), (G,), ({"w": 1},)),
    (("eq", 0, "mean"), ("mean",), ("sum",)),
    (("eq", 1, (1, 2)), (0, (1, 2)), (0, (1, 3))),
    (("eq", 0, 0.5), (0.5,), (0.25,)),
    (("len", 0, 2), ([1, 2],), ((1, 2, 3),)),
    (("len", 0, 1), ({"a": 1},), ({},)),
    (tensor_check(X), (torch.randn(2, 3),), (torch.randn(3, 2),)),
    (tensor_check(X), (torch.randn(2, 3),), (torch.randn(2, 3, dtype=torch.float64),)),
    (tensor_check(X), (torch.randn(2, 3),), (torch.randn(3, 2).t(),)),
    (tensor_check(X), (torch.randn(2, 3),), (torch.randn(2, 3, requires_grad=True),)),
    (tensor_check(X), (torch.randn(2, 3),), (torch.nn.Parameter(torch.randn(2, 3)),)),
    (tensor_check(X), (torch.randn(2, 3),), (torch.randn(2, 3, device="meta"),)),
    (tensor_check(X), (torch.randn(2, 3),), ([[0.0] * 3] * 2,)),
    (("global_id", G, "w", 1), (), ()),
    (("call_id", torch.is_grad_enabled, True), (), ()),
]


@pytest.mark.parametrize("check,good,bad", CASES, ids=[f"{c[0]}{i}" for i, (c, _, _) in enumerate(CASES)])
def test_check_passes_and_fails(check, good, bad):
    guard = Guard([check])
    assert guard.check(*good) is True and guard.explain(*good) is None
    if check[0] == "global_id":
        G["w"] = 2
        try:
            assert guard.check() is False and "global_id" in guard.explain()
        finally:
            G["w"] = 1
    elif check[0] == "call_id":
        with torch.no_grad():
            assert guard.check() is False and "call_id" in guard.explain()
    else:
        assert guard.check(*bad) is False
        assert guard.explain(*bad).startswith("check 0 ")


def test_explain_names_first_failing_check_and_tensor_field():
    guard = Guard([("type", 0, torch.Tensor), tensor_check(X), ("eq", 1, 3)])
    assert guard.explain(X, 3) is None
    assert "differs in dtype" in guard.explain(X.double(), 3)
    assert "differs in sizes" in guard.explain(X.t(), 3)
    assert "differs in strides" in guard.explain(torch.randn(3, 2).t(), 3)
    message = guard.explain(X, 4)
    assert message.startswith("check 2 ('eq', 1, 3) failed: args[1] is 4 (type int)")


def test_missing_argument_fails_not_crashes():
    guard = Guard([("type", 5, int)])
    assert guard.check(1) is False and "only 1 arguments" in guard.explain(1)


def test_global_missing_name_is_absent_not_none():
    # a missing name matches only _C.ABSENT: `len = None` in globals is not "len absent"
    assert Guard([("global_id", {}, "absent", _C.ABSENT)]).check() is True
    assert Guard([("global_id", {}, "absent", None)]).check() is False
    assert Guard([("global_id", {"len": None}, "len", _C.ABSENT)]).check() is False
    assert Guard([("global_id", {"len": None}, "len", None)]).check() is True


def test_fallback_runs_after_checks():
    calls = []

    def fallback(a, b):
        calls.append((a, b))
        return a < b

    guard = Guard([("type", 0, int)], fallback)
    assert guard.check(1, 2) is True and guard.check(3, 2) is False
    assert guard.check("x", 2) is False  # the C check failed first: fallback not run
    assert calls == [(1, 2), (3, 2)]
    assert "fallback" in guard.explain(3, 2)


def test_raising_eq_and_fallback_count_as_failure():
    class Weird:
        def __eq__(self, other):
            raise RuntimeError("no")

    assert Guard([("eq", 0, 1)]).check(Weird()) is False
    assert Guard([], lambda: 1 / 0).check() is False


@pytest.mark.parametrize("bad", [[("nope", 0)], [("type", 0)], [("type", -1, int)], [("type", 0, 3)], ["type"],
                                 [("global_id", [], "x", 1)]])
def test_malformed_checks_are_rejected(bad):
    with pytest.raises((TypeError, ValueError)):
        Guard(bad)


def test_repr_is_readable():
    assert repr(Guard([("type", 0, int)])) == "Guard((('type', 0, <class 'int'>),))"


class _Holder:
    pass


def _snapshot_case():
    import collections
    import weakref

    obj, member = _Holder(), _Holder()
    obj.size, obj.member, obj.none, obj.shape = 3, member, None, (4, 5)
    obj.hooks = collections.OrderedDict(a=1)
    tables = ((None, dict, None, (("size", 2, int), ("size", 3, 3), ("member", 1, weakref.ref(member)),
                                  ("none", 0, None), ("forward", 4, None))),
              ("shape", tuple, 2, ((1, 3, 5),)),
              ("hooks", collections.OrderedDict, ("a",), ()))
    return obj, member, ("snapshot", weakref.ref(obj), _Holder, tables, None)


@pytest.mark.parametrize("change", [
    lambda o, m: setattr(o, "size", 4), lambda o, m: setattr(o, "size", 3.0),
    lambda o, m: setattr(o, "member", _Holder()), lambda o, m: setattr(o, "none", 0),
    lambda o, m: setattr(o, "forward", print), lambda o, m: setattr(o, "shape", (4, 6)),
    lambda o, m: setattr(o, "shape", (4, 5, 1)), lambda o, m: o.hooks.update(b=2),
    lambda o, m: o.hooks.move_to_end("a") or o.hooks.update(b=2) or o.hooks.move_to_end("a", last=False)
    or o.hooks.pop("b"),  # order kept: still passes, below
    lambda o, m: setattr(o, "__class__", type("Other", (_Holder,), {})), lambda o, m: delattr(o, "hooks"),
])
def test_snapshot_check_each_fact(change):
    obj, member, check = _snapshot_case()
    guard = Guard([check])
    assert guard.check()
    change(obj, member)
    still = obj.__class__ is _Holder and list(obj.__dict__.get("hooks", {})) == ["a"] and obj.size == 3 \
        and type(obj.size) is int and obj.member is member and obj.none is None and "forward" not in obj.__dict__ \
        and obj.shape == (4, 5)
    assert guard.check() is still


def test_snapshot_check_fails_once_its_object_or_a_weak_entry_dies():
    import gc

    obj, member, check = _snapshot_case()
    guard = Guard([check])
    obj.member = None  # the entry now holds None; its expected referent dies
    del member
    gc.collect()
    assert not guard.check()
    obj, member, check = _snapshot_case()
    guard = Guard([check])
    del obj
    gc.collect()
    assert not guard.check()


@pytest.mark.parametrize("tables", [((None, list, None, ()),), (("x", tuple, 2, ((-1, 2, 0),)),),
                                    ((None, dict, None, (("a", 9, None),)),),
                                    ((None, dict, None, (("a", 5, None),)),)])  # TENSOR wants a Guard
def test_malformed_snapshots_are_rejected(tables):
    import weakref

    with pytest.raises(ValueError):
        Guard([("snapshot", weakref.ref(_Holder()), _Holder, tables, None)])


def test_snapshot_keys_follow_an_ordered_dicts_own_order():
    import collections
    import weakref

    obj = _Holder()
    obj.hooks = collections.OrderedDict(a=1, b=2)
    guard = Guard([("snapshot", weakref.ref(obj), _Holder, (("hooks", collections.OrderedDict, ("a", "b"), ()),),
                    None)])
    assert guard.check()
    obj.hooks.move_to_end("a")  # the dict underneath keeps its order; the OrderedDict's is b, a
    assert not guard.check()


def test_snapshot_tensor_entry_follows_data_replaced_in_place():
    import weakref

    obj = _Holder()
    obj.w = torch.nn.Parameter(torch.ones(3, 3))
    meta = (torch.nn.Parameter, torch.float32, torch.device("cpu"), (3, 3), (3, 1), True)
    tables = ((None, dict, None, (("w", 1, weakref.ref(obj.w)), ("w", 5, Guard([("tensor", 0) + meta])))),)
    guard = Guard([("snapshot", weakref.ref(obj), _Holder, tables, None)])
    assert guard.check()
    obj.w.data = torch.ones(4, 3)  # the same Parameter object, another shape
    assert not guard.check()


class _Other(_Holder):
    pass


def _memo_case():
    """An object whose snapshot has static entries (memoized while its dicts are untouched)
    and live ones (rechecked on every pass)."""
    import collections
    import weakref

    obj, member, box = _Holder(), _Holder(), _Holder()
    obj.size, obj.member, obj.flag, obj.items, obj.box = 3, member, True, [1, 2], box
    obj.table = {"a": member}
    obj.hooks = collections.OrderedDict(a=1, b=2)
    obj.shape = (4, 5)
    tables = ((None, dict, None, (("size", 3, 3), ("member", 1, weakref.ref(member)), ("flag", 0, True),
                                  ("items", 3, [1, 2]), ("box", 2, _Holder), ("forward", 4, None))),
              ("table", dict, ("a",), (("a", 1, weakref.ref(member)), ("b", 4, None))),
              ("hooks", collections.OrderedDict, ("a", "b"), ()),
              ("shape", tuple, 2, ((0, 3, 4), (1, 0, obj.shape[1]))))
    return obj, member, ("snapshot", weakref.ref(obj), _Holder, tables, None)


@pytest.mark.parametrize("change", [
    lambda o, m: setattr(o, "size", 4),  # an attribute store (3.13: into the inline values)
    lambda o, m: o.__dict__.__setitem__("size", 5),
    lambda o, m: setattr(o, "forward", print), lambda o, m: setattr(o, "flag", False),
    lambda o, m: setattr(o, "member", _Holder()), lambda o, m: delattr(o, "member"),
    lambda o, m: o.items.append(3),  # the same list, another value: EQ on a mutable value
    lambda o, m: setattr(o.box, "__class__", _Other),  # the same object, another type
    lambda o, m: o.table.__setitem__("b", 1), lambda o, m: o.table.__setitem__("a", _Holder()),
    lambda o, m: o.table.clear(), lambda o, m: setattr(o, "table", {"a": m}.copy() | {"c": 1}),
    lambda o, m: o.hooks.move_to_end("a"), lambda o, m: o.hooks.pop("b"),
    lambda o, m: setattr(o, "shape", (4, 6)),
    lambda o, m: setattr(o, "__dict__", dict(o.__dict__, size=9)),
    lambda o, m: setattr(o, "__class__", _Other),
])
def test_snapshot_memo_sees_each_change_after_many_passes(change):
    """The memo (csrc/snapshot.c) skips entries whose dicts are untouched: every change must
    still fail the check, after it has passed many times."""
    obj, member, check = _memo_case()
    guard = Guard([check])
    for _ in range(5):
        assert guard.check()
    change(obj, member)
    assert not guard.check()
    assert not guard.check()


def test_snapshot_memo_passes_again_after_a_change_is_undone():
    obj, member, check = _memo_case()
    guard = Guard([check])
    assert guard.check()
    obj.size = 4
    assert not guard.check()
    obj.size = 3
    assert guard.check() and guard.check()
    obj.items.append(3)
    assert not guard.check()
    obj.items.pop()
    assert guard.check()


def test_snapshot_memo_of_a_dict_holding_its_table_again():
    """A table dict replaced by an equal one: the facts hold, the memo must follow the new
    dict (a write to it later must be seen)."""
    obj, member, check = _memo_case()
    guard = Guard([check])
    assert guard.check()
    obj.table = dict(obj.table)
    assert guard.check() and guard.check()
    obj.table["b"] = 2
    assert not guard.check()


def test_snapshot_memo_keeps_no_pointer_to_a_replaced_value():
    """An equal value put in place of a live entry's (3.13 stores `obj.items = [...]` into
    the inline values unnoticed): the old one is freed, and only the new one may be read."""
    import gc

    obj, member, check = _memo_case()
    guard = Guard([check])
    for _ in range(3):
        assert guard.check()
    obj.items = [1, 2]
    gc.collect()
    junk = [[9, 9, 9] for _ in range(1000)]  # reuses the freed list's memory
    for _ in range(3):
        assert guard.check()
    obj.items.append(3)
    assert not guard.check()
    del junk


class _Split:
    """Its instances' dicts are split on 3.13 (the class's shared keys, inline values)."""


def _split_case():
    import weakref

    obj = _Split()
    a, b = 4, 5
    obj.size, obj.shape, obj.member = 3, (a, b), _Holder()  # a tuple made at run time
    tables = ((None, dict, None, (("size", 3, 3), ("member", 1, weakref.ref(obj.member)), ("extra", 4, None))),
              ("shape", tuple, 2, ((0, 3, 4), (1, 3, 5))))
    return obj, Guard([("snapshot", weakref.ref(obj), _Split, tables, None)])


def test_snapshot_tuple_freed_and_another_at_its_address():
    """3.13 compared a split dict's tuple attribute by its address: the old one freed and a
    new one of the same size allocated there (the tuple free list) passed."""
    obj, guard = _split_case()
    for _ in range(5):
        assert guard.check()
    a, b = 4, 6
    obj.shape = None
    obj.shape = (a, b)
    assert not guard.check() and not guard.check()


@pytest.mark.parametrize("change", [
    lambda o: setattr(o, "size", 4), lambda o: delattr(o, "size"), lambda o: setattr(o, "extra", 1),
    lambda o: setattr(o, "member", _Holder()), lambda o: setattr(o, "shape", (4, 5, 6)),
    lambda o: o.__dict__.__setitem__("size", 5), lambda o: setattr(o, "__dict__", dict(vars(o), size=9)),
])
@pytest.mark.parametrize("grow", [False, True])
def test_snapshot_of_a_split_dict_sees_each_change(change, grow):
    """3.13 reads a split dict's facts by index in the class's keys (csrc/split_keys.c): each
    change fails, also after another instance grew the keys ("extra" then among them)."""
    obj, guard = _split_case()
    for _ in range(3):
        assert guard.check()
    if grow:
        other = _Split()
        other.extra, other.more = 1, 2
        assert guard.check() and guard.check()  # nothing of obj changed
    change(obj)
    assert not guard.check() and not guard.check()


def _global_changes():
    """Ways to change what a globals dict maps "w" to, after many passing checks."""
    def rebind(d):
        d["w"] = object()

    def delete(d):
        del d["w"]

    def update(d):
        d.update(w=2)

    def clear(d):
        d.clear()

    def pop(d):
        d.pop("w")

    def popitem(d):
        while d:
            d.popitem()

    return [rebind, delete, update, clear, pop, popitem]


@pytest.mark.parametrize("change", _global_changes(), ids=lambda f: f.__name__)
def test_global_id_after_many_passes_sees_every_write(change):
    """The check remembers the dict's version tag when it passed: any write must show."""
    value = object()
    d = {"w": value, "other": 1}
    guard = Guard([("global_id", d, "w", value)])
    for _ in range(5):
        assert guard.check() is True
    d["other"] = 2  # a write to another name: read again, still passes
    assert guard.check() is True and guard.check() is True
    change(d)
    assert guard.check() is False and guard.check() is False
    d["w"] = value  # the same object back: passes again
    assert guard.check() is True


def test_global_id_on_an_objects_instance_dict_sees_attribute_stores():
    """Globals that are an object's __dict__ (3.13: inline values, stored without a new tag)."""
    class Holder:
        pass

    h = Holder()
    h.w = value = object()
    guard = Guard([("global_id", h.__dict__, "w", value)])
    for _ in range(5):
        assert guard.check() is True
    h.w = object()
    assert guard.check() is False
    h.w = value
    assert guard.check() is True
    del h.w
    assert guard.check() is False


def test_lead_of_ambient_and_tensor_checks_sees_each_change():
    # a guard made of ambient and tensor checks is checked in one C++ call (csrc/guard_lead.c):
    # each fact must still be seen, and a later check still runs after the lead passes
    x = torch.ones(2, 3)
    checks = [("call_id", torch.is_grad_enabled, True), ("call_id", torch.get_default_dtype, torch.float32),
              ("call_id", torch._C._is_any_autocast_enabled, False),
              ("tensor", 0, torch.Tensor, torch.float32, torch.device("cpu"), (2, 3), (3, 1), False),
              ("tensor", 1, torch.Tensor, torch.float32, torch.device("cpu"), (2, 3), (3, 1), False),
              ("eq", 2, "mean")]
    g = Guard(checks)
    assert g.check(x, x, "mean")
    assert not g.check(x, x, "sum")
    assert not g.check(x, x.double(), "mean")
    assert not g.check(x, x.t(), "mean")
    assert not g.check(x, torch.ones(3, 2), "mean")
    assert not g.check(x, x.clone().requires_grad_(), "mean")
    assert not g.check(x, 1.0, "mean")
    assert not g.check(x)
    with torch.no_grad():
        assert not g.check(x, x, "mean")
    with torch.autocast("cpu"):
        assert not g.check(x, x, "mean")
    torch.set_default_dtype(torch.float64)
    try:
        assert not g.check(x, x, "mean")
    finally:
        torch.set_default_dtype(torch.float32)
    assert g.check(x, x, "mean")


@pytest.mark.parametrize("make", [dict, collections.OrderedDict, list], ids=["dict", "odict", "list"])
def test_registry_emptiness_read_in_c_follows_every_change(make):
    # ("call_id", partial(bool, registry), b): the hook registries' check, read in C for an
    # exact dict or OrderedDict (csrc/guard_lead.c registry_of); a list keeps the call
    registry = make()
    empty, full = Guard([("call_id", functools.partial(bool, registry), False)]), \
        Guard([("call_id", functools.partial(bool, registry), True)])
    assert empty.check() and not full.check()
    if make is list:
        registry.append(1)
    else:
        registry[1] = 2
    assert not empty.check() and full.check()
    registry.clear()
    assert empty.check() and not full.check()
