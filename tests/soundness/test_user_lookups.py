"""Soundness: objects whose attribute lookups are user code (a Python `__getattribute__`, a
`__class__` property, a module subclass), compared with the same code run plainly: the
values and the exact log of lookups Python makes, call by call. The translator's own checks
(wrap, guards, code constants, recompile explanations) must never run those lookups, and the
user's isinstance() / hasattr() must run them as Python does (CPython's test_descr
test_module_subclasses logs every lookup of a module subclass).
"""
import re
import types

import pytest
import torch

import terra_dyn

log = []


@pytest.fixture(autouse=True)
def _fresh():
    terra_dyn.reset()
    del log[:]
    yield
    terra_dyn.reset()


class Logged:  # a Python __getattribute__ (inlined by the translator, as configs' are)
    v = 2

    def __getattribute__(self, name):
        log.append(name)
        return object.__getattribute__(self, name)

    def meth(self, x):
        return x * 2


class Lying:  # a `__class__` property, as a Mock with a spec has
    v = 3

    @property
    def __class__(self):
        log.append("__class__")
        return int

    def meth(self, x):
        return x * 3


class LoggedModule(types.ModuleType):
    def __getattribute__(self, name):
        log.append(name)
        return types.ModuleType.__getattribute__(self, name)


MAKERS = {"getattribute": Logged, "class_property": Lying, "module_subclass": lambda: LoggedModule("m")}


def _runs(fn, make, calls=3):
    """(logged lookups, result) of each call, made with a fresh object."""
    out = []
    for _ in range(calls):
        del log[:]
        try:
            result = fn(make(), torch.ones(2))
            result = result.tolist() if isinstance(result, torch.Tensor) else re.sub(r" at 0x\w+", "", repr(result))
        except Exception as exc:
            result = type(exc).__name__
        out.append((list(log), result))
    return out


def assert_same_as_plain(fn, make):
    plain = _runs(fn, make)
    terra_dyn.reset()
    assert _runs(terra_dyn.optimize(fn, backend="interpreter"), make) == plain


def _add_attr(o, x):
    return x + o.v


def _helper(o, x):
    return x + o.v


def _through_helper(o, x):
    return x + _helper(o, x)


def _container(o, x):
    return x + len([o, o]), {"a": o}, (o, 1)


def _break_between(o, x):
    y = x + 1
    print(end="")  # a graph break: o is a resume function's argument
    return y + getattr(o, "v", 5), o


@pytest.mark.parametrize("kind", sorted(MAKERS))
@pytest.mark.parametrize("fn", [_add_attr, _through_helper, _container, _break_between])
def test_translator_runs_no_lookup_python_does_not(fn, kind):
    # before: every isinstance() of wrap / guards / code constants on the object that failed
    # read `__class__` through the user's lookup (hundreds of log entries on the first call)
    assert_same_as_plain(fn, MAKERS[kind])


def _module_subclass(o, x):  # test_descr's test_module_subclasses, as a function
    m = LoggedModule("a")
    m.foo = 12
    y = m.foo
    del m.foo
    return x + y


def test_module_subclass_lookups_are_pythons():
    assert_same_as_plain(_module_subclass, Logged)


def _user_isinstance(o, x):
    return (x + 1) if isinstance(o, int) else (x - 1)


def _user_isinstance_tuple(o, x):
    return isinstance(o, (Logged, Lying, LoggedModule)), x * 2


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_user_isinstance_asks_class_as_python_does(kind):
    # before: isinstance(Lying(), int) was False translated (True in Python: its __class__
    # says int): a silent wrong result; and the `__class__` reads were not in the log
    assert_same_as_plain(_user_isinstance, MAKERS[kind])
    assert_same_as_plain(_user_isinstance_tuple, MAKERS[kind])


def _user_hasattr(o, x):
    return x + (1 if hasattr(o, "v") else 0)


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_hasattr_runs_the_lookup_on_every_call(kind):
    # before: a Python __getattribute__ was asked once at translate time, never again
    assert_same_as_plain(_user_hasattr, MAKERS[kind])


def test_recompile_explanation_reads_nothing_of_another_type():
    # the entry made for Logged guards `a0.v`; a LoggedModule call misses it, and the
    # recompile's look for changed numbers read `a0.v` through the module's lookup
    fast = terra_dyn.optimize(_through_helper, backend="interpreter")
    fast(Logged(), torch.ones(2))
    plain, opt = _runs(_through_helper, MAKERS["module_subclass"]), _runs(fast, MAKERS["module_subclass"])
    assert opt == plain


class Counting:  # a Python __getattribute__ that makes a name up, per call (a counter)
    made = True

    def __getattribute__(self, name):
        log.append(name)
        if name == "count" and type(self).made:
            return len(log)
        return object.__getattribute__(self, name)


def _asks_absent_names(o, x):
    return x + hasattr(o, "count") + getattr(o, "count", 10) + getattr(o, "w", 5) + hasattr(o, "w")


@pytest.mark.parametrize("kind", ["getattribute", "counting"])
def test_hasattr_of_a_name_the_class_lacks_runs_the_lookup_per_call(kind):
    # before: hasattr / getattr(o, name, default) of a name neither the class nor the
    # instance has asked the Python __getattribute__ once at translate time: the log held
    # its names once (not per call), and Counting's count and answer stayed the first call's
    make = {"getattribute": Logged, "counting": Counting}[kind]
    assert_same_as_plain(_asks_absent_names, make)
    one = make()
    fast = terra_dyn.optimize(_asks_absent_names, backend="interpreter")
    for made in (True, True, False, True):
        Counting.made = made  # the lookup's own answer changes, no guarded fact does
        del log[:]
        plain, plain_log = _asks_absent_names(one, torch.ones(2)).tolist(), list(log)
        del log[:]
        assert (fast(one, torch.ones(2)).tolist(), list(log)) == (plain, plain_log)
    Counting.made = True


def _asks_config(config, x):
    return x + hasattr(config, "heads") * 2 + hasattr(config, "absent") + getattr(config, "absent", 3)


def test_a_transformers_configs_lookup_stays_in_one_graph_and_follows_its_map():
    # PretrainedConfig.__getattribute__ (attribute_map renaming) is known to be free of side
    # effects: hasattr of a mapped or an absent name is answered in the graph, guarded by
    # the map's entry, the mapped name's presence and the lookup's code
    transformers = pytest.importorskip("transformers")
    from terra_dyn import report

    class Config(transformers.PretrainedConfig):
        attribute_map = {"heads": "num_heads"}

    config = Config()
    config.num_heads = 2
    fast = terra_dyn.optimize(_asks_config, backend="interpreter")
    x = torch.ones(2)
    with report.recording() as rec:
        for _ in range(2):
            assert fast(config, x).tolist() == _asks_config(config, x).tolist()
    rep = rec.report()
    assert rep.graph_count == 1 and rep.break_count == 0
    del config.num_heads  # the mapped name gone
    assert fast(config, x).tolist() == _asks_config(config, x).tolist()
    Config.attribute_map["absent"] = "num_attention_heads"  # the map grown in place
    config.num_attention_heads = 4
    assert fast(config, x).tolist() == _asks_config(config, x).tolist()
