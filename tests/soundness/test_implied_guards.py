"""Soundness of the guard facts GuardSet leaves out or merges because other checks imply them.

- a config object reached from a model and from each of its layers (transformers'
  `self.config` everywhere): the alias `layer.config is model.config` becomes one identity
  entry in each module's snapshot (checked in C);
- `type(x) is T` beside `x is c` where no object of type T can change its class (bool, None);
- facts about an inlined function's default items (its `func` check pins the defaults tuple).

Each test changes exactly that thing after several cached calls and compares with eager.
"""
import functools

import pytest
import torch
import torch.nn as nn

import terra_dyn
from terra_dyn import _C
from terra_dyn.translate.guard_paths import guard_texts


# each test runs with guard snapshots on and off (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("guard_snapshot_modes")


class _Config:
    def __init__(self, shift=0.5, flag=True):
        self.shift, self.flag, self.mode = shift, flag, None


class _OtherConfig(_Config):
    shift = 0.0

    @property
    def scale(self):
        return 3.0


class Layer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        y = self.fc(x) + self.config.shift
        if isinstance(self.config, _OtherConfig):
            y = y * 7
        return y


class Model(nn.Module):
    """BERT's shape: the model and every layer keep one config object."""

    def __init__(self):
        super().__init__()
        self.config = _Config()
        self.layers = nn.ModuleList(Layer(self.config) for _ in range(3))

    def forward(self, x):
        if self.config.flag is True:
            x = x * 2
        if self.config.mode is None:
            x = x + 1
        for layer in self.layers:
            x = layer(x)
        return x


def _replace_config(m, i):
    m.layers[i].config = _Config(shift=-2.0)


def _run(model, change, calls=4):
    fast = terra_dyn.optimize(model, backend="interpreter")
    x = torch.randn(3, 4)
    with torch.no_grad():
        for _ in range(calls):
            torch.testing.assert_close(fast(x), model(x))
        change(model)
        for _ in range(2):
            torch.testing.assert_close(fast(x), model(x))
    return fast


@pytest.mark.parametrize("change", [
    lambda m: _replace_config(m, 0),
    lambda m: _replace_config(m, 2),
    lambda m: setattr(m, "config", _Config(shift=9.0, flag=False)),  # the model's own, layers keep theirs
    lambda m: setattr(m.config, "shift", 3.0),  # the shared object changed in place
    lambda m: setattr(m.config, "__class__", _OtherConfig),  # same object, another class
    lambda m: setattr(m.layers[1].config, "__class__", _OtherConfig),
    lambda m: m.layers[1].__dict__.pop("config") and setattr(Layer, "config", m.config),  # class attribute
], ids=["first_layer_config", "last_layer_config", "model_config", "shared_value", "class_swapped",
        "class_swapped_through_a_layer", "instance_entry_removed"])
def test_config_shared_by_model_and_layers(change):
    torch.manual_seed(0)
    try:
        _run(Model(), change)
    finally:
        if "config" in Layer.__dict__:
            del Layer.config


def test_config_pinned_for_its_aliases_is_held_weakly():
    import gc
    import weakref

    model = Model()
    fast = terra_dyn.optimize(model, backend="interpreter")
    fast(torch.randn(3, 4))
    ref = weakref.ref(model.config)
    del model, fast
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("change", [
    lambda m: setattr(m.config, "flag", 1),  # == True, another type: `is True` reads False
    lambda m: setattr(m.config, "flag", False),
    lambda m: setattr(m.config, "mode", 0),
], ids=["bool_to_equal_int", "bool_flipped", "none_to_int"])
def test_identity_of_a_bool_or_none_without_its_type_check(change, guard_snapshot_modes):
    torch.manual_seed(0)
    model = Model()
    fast = _run(model, change)
    if guard_snapshot_modes:
        exprs = guard_texts(_C.cache_entries(Model.forward.__code__)[0].guard)
        assert not any(e.startswith("type(") and ".flag)" in e for e in exprs), exprs
        assert not any(".config is " in e and e.count(".config") == 2 for e in exprs), exprs  # no alias left
    del fast


def helper(x, k=2.0, flag=None, mode="a"):
    y = x * k
    if flag is None:
        y = y + 1
    return y if mode == "a" else -y


class UsesHelper(nn.Module):
    def forward(self, x):
        return helper(x) + 1


_HELPER_DEFAULTS = helper.__defaults__


@pytest.mark.parametrize("defaults", [(3.0, None, "a"), (2.0, True, "a"), (2.0, None, "b"), (2, None, "a")],
                         ids=["float", "none_to_bool", "str", "float_to_equal_int"])
def test_default_items_of_an_inlined_function(defaults):
    torch.manual_seed(0)
    try:
        _run(UsesHelper(), lambda m: setattr(helper, "__defaults__", defaults))
    finally:
        helper.__defaults__ = _HELPER_DEFAULTS
    exprs = [e for entry in _C.cache_entries(UsesHelper.forward.__code__) for e in guard_texts(entry.guard)]
    assert not any("__defaults__" in e for e in exprs), exprs  # the `func` check holds them


class TakesKeywords(nn.Module):
    def forward(self, x, **kwargs):
        m = kwargs["mask"]
        y = x * 2 + m.sum(-1, keepdim=True)
        if m.dtype == torch.long:
            y = y + 1
        if m.shape[-1] == 4:
            y = y * 3
        if m.requires_grad:
            y = y - 5
        if m.stride(0) == 4:
            y = y + 7
        return y


@pytest.mark.parametrize("change", [
    lambda m: m.float(),  # dtype
    lambda m: m.new_ones(3, 5, dtype=torch.long),  # size
    lambda m: m.new_ones(4, 3, dtype=torch.long).t(),  # strides
    lambda m: m.float().requires_grad_(),
], ids=["dtype", "size", "strides", "requires_grad"])
def test_tensor_in_the_kwargs_dict_checked_in_c(change, guard_snapshot_modes):
    """The tensors of a **kwargs dict are checked by one C check each (not check_tensor in
    Python): each change of what the C tensor check reads must recompile."""
    model = TakesKeywords()
    fast = terra_dyn.optimize(model, backend="interpreter")
    x, mask = torch.randn(3, 4), torch.ones(3, 4, dtype=torch.long)
    for _ in range(4):
        torch.testing.assert_close(fast(x, mask=mask), model(x, mask=mask))
    other = change(mask)
    for _ in range(2):
        torch.testing.assert_close(fast(x, mask=other), model(x, mask=other), check_dtype=False)
    guard = _C.cache_entries(TakesKeywords.forward.__code__)[0].guard
    if guard_snapshot_modes.paths:  # a TENSOR fact of the path check: the same one-check Guard
        paths = [c for c in guard.checks if c[0] == "paths"]
        assert paths and "check_tensor(a" in " ".join(paths[0][2].exprs)
    else:
        assert ".check(a" in guard.fallback.text and "check_tensor(a" in " ".join(guard.fallback.exprs)


# ---- facts about a part of a function's code object (guard_implied.py) ----
# transformers' output-capturing wrapper reads `func.__code__.co_varnames` of the `func`
# in its closure; the `func` check on that function fixes its code object, which is
# immutable: the names are not compared on each call, and a new `__code__` is still seen.

def _capturing(func):
    @functools.wraps(func)
    def wrapper(self, *args, **kwargs):
        if "scale" in func.__code__.co_varnames:
            kwargs["scale"] = 3.0
        return func(self, *args, **kwargs)
    return wrapper


def _with_scale(self, x, scale=1.0):
    return self.fc(x) * scale


def _without_scale(self, x, bias=0.5):
    return self.fc(x) + bias


_WITH_SCALE_CODE = _with_scale.__code__


class Captured(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    forward = _capturing(_with_scale)


@pytest.mark.parametrize("change", ["code", "defaults"])
def test_code_parts_of_a_closure_function(change):
    torch.manual_seed(0)
    edit = {"code": lambda m: setattr(_with_scale, "__code__", _without_scale.__code__),
            "defaults": lambda m: setattr(_with_scale, "__defaults__", (2.0,))}[change]
    try:
        _run(Captured(), edit)
    finally:
        _with_scale.__code__, _with_scale.__defaults__ = _WITH_SCALE_CODE, (1.0,)
    entries = _C.cache_entries(Captured.forward.__code__)
    texts = [e for entry in entries for g in (entry.guard, entry.closure) if g is not None for e in guard_texts(g)]
    assert not any("co_varnames" in e or "__code__" in e for e in texts), texts  # the `func` check fixes them
