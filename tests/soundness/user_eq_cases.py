"""Guards that run a user's `__eq__` which changes, or frees, the very dict the guard is
reading (tests/soundness/test_guard_user_eq.py runs each case in its own interpreter, with
PYTHONMALLOC=debug, so that a read of freed memory is a crash, not a lucky answer).

    python -m tests.soundness.user_eq_cases CASE      prints "ok CASE" or fails

A guard compares dict keys with `==` (a dict's keys in order: `for k in self.table`, or an
argument dict's), and a key may be a user object: its `__eq__` runs inside the C check.
Here it replaces the dict (the old one is freed while the check iterates it), grows it
(more keys than the guard expected: reading past the expected keys), rebuilds it with
equal content (every old entry freed) or deletes the key. The guard must fail (a
retranslation) or pass, never read freed memory, and every call must equal plain Python's.
The changes keep what the functions compute the same (they read only str keys), so plain
Python on a fresh copy of the input is the reference.

The C-level cases build `_C.Guard` snapshot checks directly (the live-entry path: a
memoized snapshot re-compares its mutable values on every check).
"""
import sys
import weakref

import torch
import torch.nn as nn

import terra_dyn
from terra_dyn import _C


class Key:
    """A dict key equal to `name`; on its first armed comparison it runs `action` (which
    changes the dict holding it) and answers `equal`."""

    def __init__(self, name, action=None, equal=True):
        self.name, self.action, self.equal, self.armed = name, action, equal, True

    def __hash__(self):
        return hash(self.name)

    def __eq__(self, other):
        if self.armed and self.action is not None:
            self.armed = False
            self.action()
        return self.equal if isinstance(other, str) else self is other


def add_str_values(x, d):
    for k in d:
        if type(k) is str:
            x = x + d[k]
    return x


class Table(nn.Module):
    def __init__(self):
        super().__init__()
        self.table = {"a": 1.0, "b": 2.0}

    def forward(self, x):
        return add_str_values(x, self.table)


def _same(got, want):
    assert torch.equal(got, want), (got, want)


# ---- end to end: terra_dyn.optimize against plain Python ----------------------------------

def _arg_dict(action_of):
    """An argument dict iterated by the function (its keys: a paths check, or a Python
    expression); the second call's dict holds a Key whose __eq__ runs action_of(d)."""
    fast = terra_dyn.optimize(add_str_values)
    x = torch.ones(3)
    _same(fast(x, {"a": 1.0, "b": 2.0}), add_str_values(x, {"a": 1.0, "b": 2.0}))
    for _ in range(3):
        d = {}
        d[Key("a", lambda: action_of(d))] = 1.0
        d["b"] = 2.0
        plain = {k: v for k, v in d.items()}  # before the guard's __eq__ changes d
        want = add_str_values(x, plain)
        _same(fast(x, d), add_str_values(x, d))
        _same(add_str_values(x, d), want)  # the changes keep the str-keyed sum


def _grow(d):
    for i in range(40):
        d[1000 + i] = float(i)


def _rebuild(d):
    items = list(d.items())
    d.clear()
    for k, v in items:
        d[k if not isinstance(k, str) else "".join(k)] = v + 0.0


def _drop_key(d):
    for k in [k for k in d if isinstance(k, Key)]:
        del d[k]


def case_arg_dict_grows():
    _arg_dict(_grow)


def case_arg_dict_rebuilt():
    _arg_dict(_rebuild)


def case_arg_dict_key_deleted():
    _arg_dict(_drop_key)


def _module_table(action_of, equal=True):
    """A module's dict attribute iterated by forward (its keys: a snapshot's table, a path
    check or an expression); after the first calls its content is replaced by one holding
    a Key whose __eq__ runs action_of(model)."""
    model, fast = Table(), None
    fast = terra_dyn.optimize(model)
    x = torch.ones(3)
    for _ in range(3):
        _same(fast(x), model(x))
    for _ in range(3):
        model.table.clear()
        model.table[Key("a", lambda: action_of(model), equal)] = 1.0
        model.table["b"] = 2.0
        got = fast(x)
        _same(got, model(x))
        model.table = {"a": 1.0, "b": 2.0}
        _same(fast(x), model(x))


def case_module_table_replaced():
    # the old table (the one being read) is freed inside the comparison
    _module_table(lambda m: setattr(m, "table", dict(m.table)))


def case_module_table_grows():
    _module_table(lambda m: _grow(m.table))


def case_module_table_rebuilt():
    _module_table(lambda m: _rebuild(m.table))


def case_module_table_attribute_deleted_and_restored():
    def action(m):
        table = m.__dict__.pop("table")
        m.__dict__["table"] = dict(table)
    _module_table(action, equal=False)


def case_module_dict_replaced():
    # the module's whole instance dict replaced by an equal copy
    _module_table(lambda m: setattr(m, "__dict__", dict(m.__dict__)))


# ---- the C check alone: a snapshot's live entries ------------------------------------------

class Holder:
    pass


class Loud(list):
    """A list whose == runs `action` once armed."""

    action = None

    def __eq__(self, other):
        if self.action is not None:
            action, self.action = self.action, None
            action()
        return list.__eq__(self, other)

    __hash__ = None


def _live_guard():
    obj = Holder()
    obj.t = {"a": Loud([1]), "b": [2], "c": [3]}
    tables = ((None, dict, None, (("t", 2, dict),)),
              ("t", dict, ("a", "b", "c"), (("a", 3, [1]), ("b", 3, [2]), ("c", 3, [3]))))
    return obj, _C.Guard([("snapshot", weakref.ref(obj), Holder, tables, None)])


def _live(action_of):
    """Live EQ entries a, b, c (mutable values: compared on every check, memo or not); a's
    __eq__ runs action_of(obj) once, after the memo holds."""
    obj, guard = _live_guard()
    for _ in range(4):
        assert guard.check()
    obj.t["a"].action = lambda: action_of(obj)
    still = guard.check()
    now = obj.t.get("a") == [1] and obj.t.get("b") == [2] and obj.t.get("c") == [3] and list(obj.t) == ["a", "b", "c"]
    assert still in (False, now), (still, now)  # may fail conservatively, never pass wrongly
    assert guard.check() is now


def case_live_entry_frees_the_next():
    _live(lambda o: o.t.pop("b") and o.t.__setitem__("b", [2]))


def case_live_entry_clears_the_table():
    _live(lambda o: o.t.clear())


def case_live_entry_replaces_the_table():
    _live(lambda o: setattr(o, "t", {"a": Loud([1]), "b": [2], "c": [3]}))


def case_live_entry_replaces_the_dict():
    _live(lambda o: setattr(o, "__dict__", {"t": {"a": Loud([1]), "b": [2], "c": [3]}}))


def case_live_entry_kills_the_object():
    # the object's last reference dropped inside the comparison: its dict, its table and
    # the values the next entries point to are freed
    obj, guard = _live_guard()
    for _ in range(4):
        assert guard.check()
    holder = [obj]
    obj.t["a"].action = holder.clear
    ref = weakref.ref(obj)
    del obj
    assert guard.check() is False and ref() is None
    assert guard.check() is False


def _full(action_of):
    """The same on the first (full) check, which also records the memo."""
    obj, guard = _live_guard()
    obj.t["a"].action = lambda: action_of(obj)
    first = guard.check()
    now = obj.t.get("a") == [1] and obj.t.get("b") == [2] and obj.t.get("c") == [3] and list(obj.t) == ["a", "b", "c"]
    assert first in (False, now)
    assert guard.check() is now and guard.check() is now


def case_full_check_frees_the_next():
    _full(lambda o: o.t.pop("b") and o.t.__setitem__("b", [2]))


def case_full_check_replaces_the_table():
    _full(lambda o: setattr(o, "t", {"a": Loud([1]), "b": [2], "c": [3]}))


def case_full_check_changes_an_attribute():
    obj, guard = _live_guard()
    obj.flag = 1
    tables = ((None, dict, None, (("flag", 0, 1), ("t", 2, dict))),
              ("t", dict, ("a", "b", "c"), (("a", 3, [1]), ("b", 3, [2]), ("c", 3, [3]))))
    guard = _C.Guard([("snapshot", weakref.ref(obj), Holder, tables, None)])
    obj.t["a"].action = lambda: setattr(obj, "flag", 2)  # read before: the check must not pass
    assert guard.check() is False
    obj.flag = 1
    assert guard.check() is True


def case_keys_of_a_table_grow():
    obj = Holder()
    obj.t = {}
    obj.t[Key("a", lambda: _grow(obj.t))] = 1
    obj.t["b"] = 2
    tables = ((None, dict, None, (("t", 2, dict),)), ("t", dict, ("a", "b"), ()))
    guard = _C.Guard([("snapshot", weakref.ref(obj), Holder, tables, None)])
    assert guard.check() is False


def case_path_keys_grow():
    d = {}
    d[Key("a", lambda: _grow(d))] = 1
    d["b"] = 2
    guard = _C.Guard([("paths", ((0, 0, ((6, ("a", "b"), None),), ()),), None)])
    assert guard.check(d) is False


def _earlier_changed(first_checks):
    """A Guard whose last check compares a Loud list: its __eq__ sets obj.flag = 2, which an
    earlier check of the same Guard (first_checks(obj)) passed as 1. The Guard must answer as
    the facts stand after the check (plain Python: flag is 2 now), not pass on what it read
    before the comparison ran."""
    obj, loud = Holder(), Loud([1])
    obj.flag = 1
    guard = _C.Guard(first_checks(obj) + [("paths", ((1, loud, ((3, [1], None),), ()),), None)])
    for _ in range(3):
        assert guard.check(obj) is True
    loud.action = lambda: setattr(obj, "flag", 2)
    got = guard.check(obj)
    now = obj.flag == 1 and loud == [1]
    assert got is now is False, (got, now)
    obj.flag = 1
    assert guard.check(obj) is True


def case_a_later_check_changes_an_earlier_snapshot():
    _earlier_changed(lambda obj: [("snapshot", weakref.ref(obj), Holder, ((None, dict, None, (("flag", 3, 1),)),), None)])


def case_a_later_check_changes_an_earlier_path_fact():
    _earlier_changed(lambda obj: [("paths", ((1, obj, (), ((0, "flag", ((2, int, None), (3, 1, None)), ()),)),), None)])


def case_a_later_check_changes_an_earlier_eq_check():
    _earlier_changed(lambda obj: [("type", 0, Holder), ("paths", ((0, 0, (), ((0, "flag", ((3, 1, None),), ()),)),), None)])


CASES = sorted(name[5:] for name in dir(sys.modules[__name__]) if name.startswith("case_"))


def main(argv):
    from terra_dyn import config

    modes = {"snapshots+paths": (True, True), "snapshots": (True, False), "paths": (False, True),
             "expressions": (False, False)}
    name, mode = argv[0], argv[1] if len(argv) > 1 else "snapshots+paths"
    config.guard_snapshots, config.guard_paths = modes[mode]
    globals()["case_" + name]()
    print("ok", name, mode)


if __name__ == "__main__":
    main(sys.argv[1:])
