"""Soundness of guard snapshots: facts about modules pinned by identity, checked in C.

Each test optimizes a nested model, calls it, changes one thing the translation read of a
submodule (a child replaced, a hook added, an attribute, a parameter, a dict entry, a tuple
item, the class itself), and compares the next optimized call with eager. The facts are
checked on the module itself (translate/guard_snapshot.py, csrc/snapshot.c); with
TERRA_DYN_GUARD_SNAPSHOTS=0 (`snapshots` off) the same facts are Python expressions, so
every test runs both ways. A fact the snapshot dropped would return the old answer.
"""
import gc
import weakref

import pytest
import torch
import torch.nn as nn

import terra_dyn
from terra_dyn import _C
from terra_dyn.translate.guard_paths import guard_texts


# each test runs with guard snapshots on and off (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("guard_snapshot_modes")


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.act = nn.LeakyReLU(0.1)
        self.scale = 2.0
        self.gain = nn.Parameter(torch.ones(2))
        self.dims = (1,)
        self.table = {"a": 1.0}

    def forward(self, x):
        y = self.act(self.fc(x)) * self.scale * self.gain.numel()
        for key in self.table:
            y = y + self.table[key]
        return y.sum(self.dims, keepdim=True) + y


class Doubled(Inner):
    def forward(self, x):
        return super().forward(x) * 2


class Negated(nn.Linear):
    def forward(self, x):
        return -super().forward(x)


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(Inner(), nn.Linear(4, 4))

    def forward(self, x):
        return self.body(x)


def _run(change):
    torch.manual_seed(0)
    model = Outer()
    kept = list(model.modules())  # a replaced child stays alive (a user may hold it)
    fast = terra_dyn.optimize(model, backend="interpreter")
    x = torch.randn(3, 4)
    with torch.no_grad():
        for _ in range(3):  # cached calls: the snapshots' memo (csrc/snapshot.c) holds
            assert torch.allclose(fast(x), model(x))
        change(model)
        expected = model(x)
        got = fast(x)
    assert torch.allclose(got, expected), (got - expected).abs().max()


def test_submodule_replaced():
    def change(m):
        m.body[0].fc = Negated(4, 4)
    _run(change)


def test_sequential_child_replaced():
    def change(m):
        m.body[1] = Negated(4, 4)
    _run(change)


def test_forward_hook_added_to_a_child():
    def change(m):
        m.body[0].fc.register_forward_hook(lambda mod, args, out: out * 3)
    _run(change)


def test_forward_pre_hook_added_to_a_child():
    def change(m):
        m.body[0].act.register_forward_pre_hook(lambda mod, args: (args[0] + 1,))
    _run(change)


def test_float_attribute_changed():
    def change(m):
        m.body[0].scale = 5.0
    _run(change)


def test_attribute_of_a_leaf_module_changed():
    def change(m):
        m.body[0].act.negative_slope = 0.5
    _run(change)


def test_parameter_replaced():
    def change(m):  # forward reads gain.numel(): a constant of the translation
        m.body[0].gain = nn.Parameter(torch.ones(3))
    _run(change)


def test_dict_entry_added():
    def change(m):
        m.body[0].table["b"] = 10.0
    _run(change)


def test_dict_entry_removed():
    def change(m):
        del m.body[0].table["a"]
    _run(change)


def test_dict_value_changed():
    def change(m):
        m.body[0].table["a"] = -4.0
    _run(change)


def test_tuple_attribute_changed():
    def change(m):
        m.body[0].dims = (0,)
    _run(change)


def test_class_swapped_on_a_child():
    def change(m):
        m.body[0].__class__ = Doubled
    _run(change)


def _call(m, x):
    return m(x)


def test_class_swapped_on_a_module_argument():
    class Tripled(Outer):
        def forward(self, x):
            return self.body(x) * 3

    torch.manual_seed(0)
    model, x = Outer(), torch.randn(3, 4)
    fast = terra_dyn.optimize(_call, backend="interpreter")
    with torch.no_grad():
        assert torch.allclose(fast(model, x), model(x))
        model.__class__ = Tripled  # the same object: only its class says forward changed
        assert torch.allclose(fast(model, x), model(x))


def test_forward_set_on_a_child_instance():
    def change(m):
        m.body[1].forward = lambda x: x - 100
    _run(change)


def test_unchanged_model_reuses_its_translation(guard_snapshot_modes):
    torch.manual_seed(0)
    model = Outer()
    fast = terra_dyn.optimize(model, backend="interpreter")
    x = torch.randn(3, 4)
    for _ in range(3):
        fast(x)
    entries = _C.cache_entries(Outer.forward.__code__)
    assert len(entries) == 1
    kinds = [c[0] for c in entries[0].guard.checks]
    # every module pinned by identity has one (its class is checked either way)
    assert kinds.count("snapshot") == len(list(model.modules()))
    if guard_snapshot_modes:  # the facts are in them, not in Python expressions
        assert not any("_modules" in e for e in guard_texts(entries[0].guard))


def test_snapshots_hold_modules_weakly():
    torch.manual_seed(0)
    model = Outer()
    fast = terra_dyn.optimize(model, backend="interpreter")
    fast(torch.randn(3, 4))
    refs = [weakref.ref(m) for m in model.modules()] + [weakref.ref(p) for p in model.parameters()]
    del model, fast
    gc.collect()
    assert all(r() is None for r in refs)


def test_lazy_module_translated_once_and_right():
    torch.manual_seed(0)
    model = nn.Sequential(nn.LazyLinear(3), nn.ReLU())
    fast = terra_dyn.optimize(model, backend="interpreter")
    x = torch.randn(2, 5)
    first = fast(x)
    assert type(model[0]) is nn.Linear
    for _ in range(3):
        assert torch.allclose(fast(x), model(x))
    assert torch.allclose(first, model(x))
    assert len(_C.cache_entries(nn.Sequential.forward.__code__)) == 1


def test_recompile_names_the_changed_attribute(guard_snapshot_modes):
    from terra_dyn import report

    torch.manual_seed(0)
    model = Outer()
    fast = terra_dyn.optimize(model, backend="interpreter")
    x = torch.randn(3, 4)
    fast(x)
    model.body[0].scale = 7.0
    with report.recording() as rec:
        fast(x)
    causes = [r.cause() for r in rec.report().recompiles]
    assert any("scale changed: 2 -> 7" in c for c in causes), causes  # as with expressions


class _Config:  # guarded by type, its attributes by value: read through one shared prefix
    def __init__(self):
        self.width, self.shift, self.flags = 4, 1.0, {"neg": False}


class _Configured(nn.Module):
    def __init__(self):
        super().__init__()
        self.config = _Config()

    def forward(self, x):
        y = x * self.config.width + self.config.shift
        return -y if self.config.flags["neg"] else y


def test_attributes_of_an_object_guarded_by_type_read_once_and_guarded(guard_snapshot_modes):
    model = _Configured()
    fast = terra_dyn.optimize(model, backend="interpreter")
    x = torch.randn(2, 4)
    assert torch.allclose(fast(x), model(x))
    for change in (lambda c: setattr(c, "shift", -3.0), lambda c: c.flags.update(neg=True),
                   lambda c: setattr(c, "width", 2)):
        change(model.config)
        assert torch.allclose(fast(x), model(x))
    guard = _C.cache_entries(_Configured.forward.__code__)[0].guard
    if guard_snapshot_modes.paths:  # a tree: `self.config` read once, its attributes below it
        assert guard.fallback is None and any(c[0] == "paths" for c in guard.checks)
    else:
        assert ":= " in guard.fallback.text  # `self.config` (and its dict) evaluated once per check


class _WithEmptyList(nn.Module):  # convnext's drop-path list: a pinned module that is falsy
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.extra = nn.ModuleList()

    def forward(self, x):
        for layer in self.extra:
            x = layer(x)
        return self.fc(x)


def test_falsy_module_gets_its_class_guarded_and_one_graph():
    model = _WithEmptyList()
    fast = terra_dyn.optimize(model, backend="interpreter", fullgraph=True)
    x = torch.randn(2, 4)
    with torch.no_grad():
        assert torch.allclose(fast(x), model(x))
        model.extra.append(nn.ReLU())  # the empty list's entries are among the facts
        assert torch.allclose(fast(x), model(x))


class _LayerConfig:
    scale = 1.0

    def __init__(self):
        self.shift = 0.5


class Flagged(nn.Module):
    """A transformers-like layer: a class-level flag (`gradient_checkpointing = False`),
    the training flag, a shared config object and a child with hooks and parameters."""
    checkpointing = False

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.fc = nn.Linear(4, 4)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        y = self.drop(self.fc(x)) + self.config.shift
        if self.checkpointing:
            y = y * 3
        if self.training:
            y = y - 1
        return y


class Stack(nn.Module):
    def __init__(self):
        super().__init__()
        config = _LayerConfig()
        self.layers = nn.ModuleList(Flagged(config) for _ in range(3))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def _alter(m):
    m.layers[1].fc.weight.data = m.layers[1].fc.weight.data * 2


@pytest.mark.parametrize("change", [
    lambda m: setattr(m.layers[1], "checkpointing", True),  # shadows the class attribute
    lambda m: setattr(Flagged, "checkpointing", True),
    lambda m: m.layers[2].train(),  # the training flag of one layer (dropout off: p=0 below)
    lambda m: m.train(),
    lambda m: setattr(m.layers[0].config, "shift", 2.0),  # a config value shared by the layers
    lambda m: setattr(m.layers[1], "config", _LayerConfig()) or setattr(m.layers[1].config, "shift", -1.0),
    lambda m: m.layers[1].fc.register_forward_hook(lambda mod, inp, out: out * 5),
    lambda m: m.layers[2].register_forward_pre_hook(lambda mod, inp: (inp[0] + 1,)),
    lambda m: setattr(m.layers[1], "fc", nn.Linear(4, 4)),  # a submodule replaced
    lambda m: m.layers.__setitem__(0, Flagged(_LayerConfig())),
    lambda m: setattr(m.layers[2].fc, "weight", nn.Parameter(torch.randn(4, 4))),  # a parameter swapped
    _alter,  # a parameter's data replaced in place
    lambda m: m.layers[0].fc.weight.requires_grad_(False),
    lambda m: m.layers[1].fc.__dict__["_parameters"].__setitem__("bias", None),
], ids=["instance_shadows_class_flag", "class_flag_set", "one_layer_train", "train", "config_value",
        "config_replaced", "hook_on_child", "pre_hook", "submodule_replaced", "layer_replaced",
        "parameter_swapped", "parameter_data_replaced", "requires_grad", "bias_removed"])
def test_each_merged_fact_of_a_layer_stack_still_reaches_the_result(change):
    """Guards of modules pinned by identity are merged into one snapshot per module, and a
    snapshot checked again skips what its dicts say is untouched: each change after many
    cached calls must still give eager's result."""
    torch.manual_seed(0)
    model = Stack().eval()
    for layer in model.layers:
        layer.drop.p = 0.0
    fast = terra_dyn.optimize(model, backend="interpreter")
    x = torch.randn(3, 4)
    try:
        for _ in range(4):
            torch.testing.assert_close(fast(x), model(x))
        change(model)
        for layer in model.layers:
            layer.drop.p = 0.0
        for _ in range(2):
            torch.testing.assert_close(fast(x), model(x))
    finally:
        Flagged.checkpointing = False
