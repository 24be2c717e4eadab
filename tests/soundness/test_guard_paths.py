"""Soundness of path checks (translate/guard_paths.py, csrc/path_check.c): the guard facts
about values read along attribute and item chains, checked as one tree in C.

A model reads a config object (guarded by type, its attributes by value, a dict in it), a
config whose Python __getattribute__ renames attributes (read through
`object.__getattribute__`), a module-level registry of dicts, a closure cell of a global
function, an inlined function's default and a tensor in **kwargs. Each test changes one
thing at one level of one path (the root object, a middle object, the leaf, a key added
or removed) after several cached calls and compares with eager; every test runs with
snapshots and path checks on and off (tests/conftest.py)."""
import pytest
import torch
import torch.nn as nn

import terra_dyn
from terra_dyn import _C

pytestmark = pytest.mark.usefixtures("guard_snapshot_modes")


class Inner:
    def __init__(self, shift=1.0, mode="add", k=3):
        self.shift = shift
        self.table = {"mode": mode, "k": k}


class Cfg:
    def __init__(self):
        self.scale = 2.0
        self.inner = Inner()


class Mapped:
    """transformers' PretrainedConfig: old names mapped in a Python __getattribute__."""

    attribute_map = {"width": "hidden"}

    def __init__(self):
        self.hidden = 3
        self.eps = 0.5

    def __getattribute__(self, key):
        if key != "attribute_map" and key in super().__getattribute__("attribute_map"):
            key = super().__getattribute__("attribute_map")[key]
        return super().__getattribute__(key)


REGISTRY = {"act": {"fn": torch.relu, "gain": 1.5}}


def _make_power():
    power = 2

    def act(x):
        return x * power

    return act


POWER = _make_power()


def offset(y, amount=0.25):
    return y + amount


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.cfg = Cfg()
        self.mapped = Mapped()
        self.fc = nn.Linear(4, 4)

    def forward(self, x, **kwargs):
        y = self.fc(x) * self.cfg.scale + self.cfg.inner.shift
        if self.cfg.inner.table["mode"] == "add":
            y = y + self.cfg.inner.table["k"]
        else:
            y = y - self.cfg.inner.table["k"]
        y = y * self.mapped.width + self.mapped.eps
        entry = REGISTRY["act"]
        y = entry["fn"](y) * entry["gain"]
        y = offset(POWER(y))
        if "bias" in kwargs:
            y = y + kwargs["bias"]
        return y


def _set_cell(fn, value):
    fn.__closure__[0].cell_contents = value


CHANGES = {
    # the config: leaf, middle object, a dict under it (value, key added, replaced), a type
    "cfg_leaf": lambda m, kw: setattr(m.cfg, "scale", 3.0),
    "cfg_leaf_type": lambda m, kw: setattr(m.cfg, "scale", 2),
    "cfg_root": lambda m, kw: setattr(m, "cfg", Cfg()) or setattr(m.cfg, "scale", -1.0),
    "inner_leaf": lambda m, kw: setattr(m.cfg.inner, "shift", -4.0),
    "inner_object": lambda m, kw: setattr(m.cfg, "inner", Inner(shift=5.0, mode="sub")),
    "table_item": lambda m, kw: m.cfg.inner.table.__setitem__("mode", "sub"),
    "table_number": lambda m, kw: m.cfg.inner.table.__setitem__("k", 7),
    "table_replaced": lambda m, kw: setattr(m.cfg.inner, "table", {"mode": "add", "k": -2}),
    "inner_class": lambda m, kw: setattr(m.cfg.inner, "__class__", type("Other", (Inner,), {})),
    # a config read through object.__getattribute__ (its override renames `width`)
    "mapped_leaf": lambda m, kw: setattr(m.mapped, "hidden", 5),
    "mapped_eps": lambda m, kw: m.mapped.__dict__.__setitem__("eps", 1.5),
    "mapped_map": lambda m, kw: setattr(m.mapped, "attribute_map", {"width": "eps"}),
    "mapped_class_attr": lambda m, kw: setattr(Mapped, "eps", property(lambda self: 9.0)),
    # a module-level registry of dicts
    "registry_leaf": lambda m, kw: REGISTRY["act"].__setitem__("gain", 0.5),
    "registry_fn": lambda m, kw: REGISTRY["act"].__setitem__("fn", torch.tanh),
    "registry_entry": lambda m, kw: REGISTRY.__setitem__("act", {"fn": torch.sigmoid, "gain": 2.0}),
    # a closure cell and a default of inlined global functions
    "closure_cell": lambda m, kw: _set_cell(POWER, 3),
    "default": lambda m, kw: setattr(offset, "__defaults__", (-1.0,)),
    # the **kwargs dict: a key added, a tensor's size and dtype
    "kwargs_key": lambda m, kw: kw.pop("bias"),
    "kwargs_size": lambda m, kw: kw.__setitem__("bias", torch.randn(3, 1)),
    "kwargs_dtype": lambda m, kw: kw.__setitem__("bias", torch.randn(3, 4, dtype=torch.float64)),
}


@pytest.fixture
def restore_globals():
    saved = ({k: dict(v) for k, v in REGISTRY.items()}, POWER.__closure__[0].cell_contents, offset.__defaults__)
    yield
    REGISTRY.clear()
    REGISTRY.update(saved[0])
    _set_cell(POWER, saved[1])
    offset.__defaults__ = saved[2]
    if isinstance(Mapped.__dict__.get("eps"), property):
        del Mapped.eps


def _warm(calls):
    """A Net, its optimized call and inputs, after `calls` cached calls equal to eager."""
    torch.manual_seed(0)
    model = Net()
    fast = terra_dyn.optimize(model, backend="interpreter")
    x, kwargs = torch.randn(3, 4), {"bias": torch.randn(3, 4)}
    with torch.no_grad():
        for _ in range(calls):
            torch.testing.assert_close(fast(x, **kwargs), model(x, **kwargs))
    return model, fast, x, kwargs


@pytest.mark.parametrize("name", list(CHANGES))
def test_change_along_a_path_is_seen(name, restore_globals):
    model, fast, x, kwargs = _warm(4)
    with torch.no_grad():
        CHANGES[name](model, kwargs)
        for _ in range(2):
            torch.testing.assert_close(fast(x, **kwargs), model(x, **kwargs))


def test_unchanged_model_reuses_one_translation_and_its_paths(guard_snapshot_modes):
    _warm(5)
    entries = _C.cache_entries(Net.forward.__code__)
    assert len(entries) == 1
    guard = entries[0].guard
    paths = [c for c in guard.checks if c[0] == "paths"]
    if guard_snapshot_modes.paths:  # every fact along a chain is in the tree: no Python left
        assert len(paths) == 1 and guard.fallback is None, guard.fallback
        texts = paths[0][2].exprs
        for part in ("REGISTRY", "'hidden'", "cell_contents", "['bias']", "['mode']"):
            assert any(part in t for t in texts), (part, texts)
    else:
        assert not paths and guard.fallback is not None


def test_recompile_reason_names_the_changed_path(restore_globals):
    from terra_dyn import report

    model, fast, x, kwargs = _warm(0)
    with torch.no_grad(), report.recording() as rec:
        for _ in range(3):
            fast(x, **kwargs)
        REGISTRY["act"]["gain"] = 0.75
        torch.testing.assert_close(fast(x, **kwargs), model(x, **kwargs))
    causes = [str(r) for r in rec.report().recompiles]
    assert any("gain" in c and "1.5 -> 0.75" in c for c in causes), causes


class TakesTwo(nn.Module):
    def forward(self, x, **kwargs):
        return x + kwargs["a"] * 2 + kwargs["b"]


def test_alias_of_two_kwargs_tensors_then_two_tensors():
    """The same tensor passed as two keywords is one graph input: the alias fact (a SAME
    fact of the path check) must fail when two different tensors come."""
    model = TakesTwo()
    fast = terra_dyn.optimize(model, backend="interpreter")
    x, t = torch.randn(3), torch.randn(3)
    for _ in range(4):
        torch.testing.assert_close(fast(x, a=t, b=t), model(x, a=t, b=t))
    other = torch.randn(3)
    for _ in range(2):
        torch.testing.assert_close(fast(x, a=t, b=other), model(x, a=t, b=other))


def _with_gain(gain, table):
    def deco(fn):
        def wrapper(self, x):  # the translated frame: its closure's facts are checked in its prologue
            return fn(self, x) * gain + table["shift"]
        return wrapper
    return deco


class Decorated(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    @_with_gain(2.0, {"shift": 1.0})
    def forward(self, x):
        return self.fc(x)


def _cell(name):
    fn = Decorated.forward
    return fn.__closure__[fn.__code__.co_freevars.index(name)]


def _decorated_and_warmed(calls):
    """A Decorated model, its optimized wrapper and an input, after `calls` calls compared
    with eager (the translation and its cached entries are made)."""
    torch.manual_seed(0)
    model = Decorated()
    fast = terra_dyn.optimize(model, backend="interpreter")
    x = torch.randn(2, 3)
    with torch.no_grad():
        for _ in range(calls):
            torch.testing.assert_close(fast(x), model(x))
    return model, fast, x


@pytest.mark.parametrize("change", [
    lambda: setattr(_cell("gain"), "cell_contents", 3.0),
    lambda: _cell("table").cell_contents.__setitem__("shift", -2.0),
    lambda: setattr(_cell("table"), "cell_contents", {"shift": 5.0}),
    lambda: setattr(_cell("fn"), "cell_contents", lambda self, x: self.fc(x) - 1),
], ids=["cell", "dict_in_cell", "cell_dict_replaced", "wrapped_function"])
def test_closure_of_the_translated_frame_checked_as_paths(change, guard_snapshot_modes):
    cells = [c.cell_contents for c in Decorated.forward.__closure__]
    saved = {k: v for k, v in _cell("table").cell_contents.items()}
    try:
        model, fast, x = _decorated_and_warmed(calls=4)
        with torch.no_grad():
            change()
            for _ in range(2):
                torch.testing.assert_close(fast(x), model(x))
    finally:
        for c, v in zip(Decorated.forward.__closure__, cells):
            c.cell_contents = v
        _cell("table").cell_contents.clear()
        _cell("table").cell_contents.update(saved)


def test_closure_guard_runs_in_the_hook_and_an_emptied_cell_raises_as_eager():
    # the rewritten code leaves its closure's Guard to the hook, which checks it on the frame's
    # cells (csrc/eval_frame.c closure_holds); an empty cell runs the original code, which
    # raises where the user reads it
    from terra_dyn import _C

    gain = _cell("gain").cell_contents
    try:
        model, fast, x = _decorated_and_warmed(calls=3)
        with torch.no_grad():
            entries = _C.cache_entries(Decorated.forward.__code__)
            assert entries and all(e.closure is not None for e in entries)
            del _cell("gain").cell_contents
            with pytest.raises(NameError) as eager:
                model(x)
            with pytest.raises(NameError) as ours:
                fast(x)
            assert str(ours.value) == str(eager.value)
            _cell("gain").cell_contents = gain
            torch.testing.assert_close(fast(x), model(x))
    finally:
        _cell("gain").cell_contents = gain
