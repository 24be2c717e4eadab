"""The Guard's paths check alone (csrc/path_check.c): each root, step and fact kind passing
and failing, errors failing the check, a Ctrl-C kept, explain through the info object."""
import gc
import weakref

import pytest
import torch

from terra_dyn._C import Guard
from terra_dyn.translate import guard_paths as P


class Info:
    """What the C check asks of its info object: explain(*args)."""

    def explain(self, *args):
        return "a0.x.y == 3"


def paths(*roots):
    return Guard([("paths", tuple(roots), Info())])


def node(step, arg, facts=(), children=()):
    return (step, arg, tuple(facts), tuple(children))


class Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def tensor_guard(t):
    return Guard([("tensor", 0, type(t), t.dtype, t.device, tuple(t.shape), t.stride(), t.requires_grad)])


X = torch.randn(2, 3)
FACTS = [  # (fact, a value that holds, one that does not)
    ((P.ID, X, None), X, X.clone()),
    ((P.TYPE, int, None), 1, True),
    ((P.EQ, 2.5, None), 2.5, 2.0),
    ((P.EQ, "a", None), "a", "b"),
    ((P.TENSOR, tensor_guard(X), None), torch.randn(2, 3), torch.randn(3, 2)),
    ((P.LEN, 2, None), (1, 2), [1]),
    ((P.KEYS, ("a", "b"), None), {"a": 1, "b": 2}, {"b": 2, "a": 1}),
    ((P.KEY_IN, "a", True), {"a": 1}, {"b": 1}),
    ((P.KEY_IN, "a", False), {"b": 1}, {"a": 1}),
    ((P.NO_ATTR, "forward", None), Obj(), Obj(forward=1)),
    ((P.CALL, lambda v, n: v + 1 == n, (3,)), 2, 3),
]


@pytest.mark.parametrize("fact,good,bad", FACTS, ids=[f"kind{f[0][0]}_{i}" for i, f in enumerate(FACTS)])
def test_fact_holds_and_fails_on_a_slot(fact, good, bad):
    guard = paths(node(P.SLOT, 0, [fact]))
    assert guard.check(good) is True and guard.explain(good) is None
    assert guard.check(bad) is False
    assert guard.explain(bad) == "check 0 (paths) failed: a0.x.y == 3"


def test_keys_of_a_mapping_that_is_not_a_dict_read_through_keys():
    class Keys:
        def keys(self):
            return ["a", "b"]

    assert paths(node(P.SLOT, 0, [(P.KEYS, ("a", "b"), None)])).check(Keys())
    assert not paths(node(P.SLOT, 0, [(P.KEYS, ("a",), None)])).check(Keys())


def test_steps_read_attribute_generic_attribute_and_item():
    class Config:
        def __getattribute__(self, name):  # an override the GENERIC step does not run
            return 99 if name == "width" else object.__getattribute__(self, name)

    config = Config()
    config.__dict__["width"] = 4
    holder = Obj(config=config, table={"k": [10, 20]})
    tree = node(P.SLOT, 1, children=[
        node(P.ATTR, "config", [(P.TYPE, Config, None)], [
            node(P.GENERIC, "width", [(P.EQ, 4, None)]),
            node(P.ATTR, "width", [(P.EQ, 99, None)])]),
        node(P.ATTR, "table", children=[node(P.ITEM, "k", children=[node(P.ITEM, 1, [(P.EQ, 20, None)])])])])
    guard = paths(tree)
    assert guard.check(None, holder)
    holder.table["k"][1] = 21  # the deepest level
    assert not guard.check(None, holder)
    holder.table["k"][1] = 20
    config.__dict__["width"] = 5  # the generic read sees it, the override does not
    assert not guard.check(None, holder)
    config.__dict__["width"] = 4
    holder.config = Obj()  # a middle level: the type fact fails before its children are read
    assert not guard.check(None, holder)
    del holder.config  # a read that raises fails the check
    assert not guard.check(None, holder)
    assert not guard.check(None)  # a missing slot


def test_roots_constant_and_weak():
    g = {"registry": {"sdpa": len}}
    assert paths(node(P.CONST, g, children=[node(P.ITEM, "registry", children=[
        node(P.ITEM, "sdpa", [(P.ID, len, None)])])])).check()
    g["registry"]["sdpa"] = max
    assert not paths(node(P.CONST, g, children=[node(P.ITEM, "registry", children=[
        node(P.ITEM, "sdpa", [(P.ID, len, None)])])])).check()
    module = torch.nn.Linear(2, 2)
    guard = paths(node(P.WEAK, weakref.ref(module), children=[node(P.ATTR, "in_features", [(P.EQ, 2, None)])]))
    assert guard.check()
    del module
    gc.collect()
    assert not guard.check()  # the object is gone: never passes again


def test_no_attr_reads_the_instance_dict_not_a_python_getattribute():
    class Config:
        calls = 0

        def __getattribute__(self, name):
            type(self).calls += 1
            return object.__getattribute__(self, name)

    config = Config()
    guard = paths(node(P.SLOT, 0, [(P.NO_ATTR, "flag", None)]))
    assert guard.check(config) and Config.calls == 0
    object.__setattr__(config, "flag", 1)
    assert not guard.check(config)


def test_an_exception_fails_the_check_and_ctrl_c_is_kept():
    class Raises:
        def __init__(self, exc):
            self.exc = exc

        @property
        def value(self):
            raise self.exc

    guard = paths(node(P.SLOT, 0, children=[node(P.ATTR, "value", [(P.EQ, 1, None)])]))
    assert guard.check(Raises(ValueError("no"))) is False
    with pytest.raises(KeyboardInterrupt):
        guard.check(Raises(KeyboardInterrupt()))


def test_same_reads_the_other_path_per_check():
    kwargs = {"labels": X, "input_ids": X}
    other = (P.SLOT, 0, ((P.ITEM, "input_ids"),))
    same = paths(node(P.SLOT, 0, children=[node(P.ITEM, "labels", [(P.SAME, other, True)])]))
    distinct = paths(node(P.SLOT, 0, children=[node(P.ITEM, "labels", [(P.SAME, other, False)])]))
    assert same.check(kwargs) and not distinct.check(kwargs)
    kwargs["labels"] = X.clone()
    assert not same.check(kwargs) and distinct.check(kwargs)
    del kwargs["input_ids"]  # the other path cannot be read: fails either way
    assert not same.check(kwargs) and not distinct.check(kwargs)


def test_nan_is_unequal_as_python_reads_it():
    nan = float("nan")
    assert not paths(node(P.SLOT, 0, [(P.EQ, nan, None)])).check(nan)


@pytest.mark.parametrize("bad", [
    ("x",), ((9, 0, (), ()),), ((P.SLOT, -1, (), ()),), ((P.WEAK, 1, (), ()),),
    ((P.SLOT, 0, ((P.TYPE, 3, None),), ()),), ((P.SLOT, 0, ((42, 3, None),), ()),),
    ((P.SLOT, 0, (), ((P.ATTR, 3, (), ()),)),),
    ((P.SLOT, 0, ((P.SAME, (P.SLOT, 0, ((9, "x"),)), True),), ()),),
    ((P.SLOT, 0, ((P.SAME, (P.WEAK, 0, ()), True),), ()),),
], ids=range(9))
def test_malformed_trees_are_refused(bad):
    with pytest.raises((TypeError, ValueError)):
        Guard([("paths", bad, Info())])
