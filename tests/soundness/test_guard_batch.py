"""Soundness of the snapshot batch (csrc/snapshot_batch.c): once a guard with many
module snapshots passed in full, its cached calls check every memoized snapshot in flat
passes (objects, dict tags, 3.13's split instance dicts, parameters) instead of one memo at a time.

Each test optimizes a model of several blocks, makes enough calls that the batch holds
(asserted through `Guard.batched`), changes one thing a snapshot covers, in the first, a
middle or the last block (a parameter replaced or resized, requires_grad flipped, a
module appended or replaced, a hook added or removed, an attribute changed, the class
changed, a dict written directly), and compares the next calls with eager. A change
after the batch was rebuilt is caught too (a second change, then a third)."""

import pytest
import torch
import torch.nn as nn

import terra_dyn
from terra_dyn import _C

pytestmark = pytest.mark.usefixtures("guard_snapshot_modes")


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.scale = 2.0

    def forward(self, x):
        return self.norm(self.fc(x)) * self.scale + x


class Stack(nn.Module):
    def __init__(self, n=4):
        super().__init__()
        self.blocks = nn.ModuleList(Block() for _ in range(n))
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def _guard(model):
    entries = _C.cache_entries(type(model).forward.__code__)
    assert entries, "no cache entry"
    return entries[-1].guard


def _compare(fast, model, x):
    expected = model(x)
    got = fast(x)
    assert torch.allclose(got, expected, atol=1e-6), (got - expected).abs().max()


def _run(*changes, grad=False):
    """Calls until the batch holds, then each change followed by three compared calls."""
    torch.manual_seed(0)
    model = Stack()
    kept = list(model.modules())  # replaced children stay alive (a user may hold them)
    fast = terra_dyn.optimize(model, backend="interpreter")
    x = torch.randn(3, 4)
    with torch.set_grad_enabled(grad):
        for _ in range(4):
            _compare(fast, model, x)
        snapshots = sum(c[0] == "snapshot" for c in _guard(model).checks)
        # snapshots on (tests/conftest.py runs them off too); 3.13's split instance dicts
        # (a module's) are batched too, read by index (csrc/split_keys.c)
        if snapshots >= 2:
            assert _guard(model).batched >= 2, "the batch does not hold"
        for change in changes:
            change(model)
            for _ in range(3):
                _compare(fast, model, x)
    del kept


def _replace_weight(i):
    def change(m):
        block = m.blocks[i] if i is not None else m
        target = block.fc if i is not None else m.head
        target.weight = nn.Parameter(torch.randn_like(target.weight))
    return change


@pytest.mark.parametrize("i", [0, 2, None])
def test_parameter_replaced(i):
    _run(_replace_weight(i))


def test_parameter_replaced_in_the_dict_directly():
    def change(m):
        m.blocks[3].norm._parameters["bias"] = nn.Parameter(torch.full((4,), 3.0))
    _run(change)


def test_parameter_data_resized():
    def change(m):
        m.head.bias.data = torch.zeros(1)  # broadcasts to (3, 2): a different graph
    _run(change)


def test_parameter_requires_grad_flipped():
    def change(m):
        m.blocks[1].fc.weight.requires_grad_(False)
    _run(change, grad=True)


def test_parameter_set_to_none():
    def change(m):
        m.blocks[2].fc.bias = None
    _run(change)


def test_module_appended():
    def change(m):
        m.blocks.append(Block())
    _run(change)


def test_module_replaced():
    def change(m):
        m.blocks[1].norm = nn.Identity()
    _run(change)


def test_forward_hook_added_then_removed():
    handles = []

    def add(m):
        handles.append(m.blocks[2].fc.register_forward_hook(lambda mod, args, out: out * 10))

    def remove(m):
        handles.pop().remove()
    _run(add, remove, add)


def test_forward_pre_hook_added():
    def change(m):
        m.blocks[3].register_forward_pre_hook(lambda mod, args: (args[0] + 1,))
    _run(change)


def test_attribute_changed_each_time():
    def change(value):
        def set_scale(m):
            m.blocks[2].scale = value
        return set_scale
    _run(change(3.0), change(4.0), change(2.0))


def test_layer_norm_eps_changed():
    def change(m):
        m.blocks[0].norm.eps = 0.5
    _run(change)


def test_class_changed():
    class Doubled(Block):
        def forward(self, x):
            return super().forward(x) * 2

    def change(m):
        m.blocks[1].__class__ = Doubled
    _run(change)


def test_instance_dict_replaced():
    def change(m):
        block = m.blocks[2]
        state = dict(vars(block))
        state["scale"] = 5.0
        block.__dict__ = state
    _run(change)


def test_forward_set_on_the_instance():
    def change(m):
        m.blocks[0].fc.forward = lambda x: x * 0
    _run(change)


def test_changes_in_different_blocks_one_after_the_other():
    _run(_replace_weight(0), _replace_weight(3), _replace_weight(None), _replace_weight(1))


# ---- a parameter's metadata changed in place (the same tensor object and TensorImpl):
# the batch checks parameters by the raw fields recorded when they last matched
# (csrc/tensor_check.cpp, tensors_match). A forward that reads its weight's dtype, sizes,
# strides and requires_grad in Python makes each visible in the result (a graph that
# raises would be rerun as written: each change here keeps the stale graph running).

class MetaBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        w = self.fc.weight
        y = (x @ w.float().t() * (w.shape[0] + 10 * w.stride(0))).to(w.dtype)
        return y + (1.0 if w.requires_grad else -1.0)


class MetaStack(nn.Module):
    def __init__(self, n=4):
        super().__init__()
        self.blocks = nn.ModuleList(MetaBlock() for _ in range(n))

    def forward(self, x):
        return sum(block(x).sum() for block in self.blocks)


def _run_meta(*changes):
    """Calls until the batch holds, then each change followed by three calls compared with
    eager: value, dtype and requires_grad of the result."""
    torch.manual_seed(0)
    model = MetaStack()
    fast = terra_dyn.optimize(model, backend="interpreter")
    x = torch.randn(3, 4)
    with torch.no_grad():
        def compare():
            expected, got = model(x), fast(x)
            assert got.dtype == expected.dtype and got.requires_grad == expected.requires_grad
            assert torch.allclose(got.double(), expected.double(), atol=1e-5), (got, expected)
        batch_then_changes(model, compare, changes)


def batch_then_changes(model, compare, changes):
    """compare() until the batch holds (asserted with snapshots on), then each change
    followed by three compare() calls."""
    for _ in range(4):
        compare()
    if sum(c[0] == "snapshot" for c in _guard(model).checks) >= 2:
        assert _guard(model).batched >= 2, "the batch does not hold"
    for change in changes:
        change(model)
        for _ in range(3):
            compare()


def _weight(m, i=2):
    return m.blocks[i].fc.weight


def _unfrozen(edit):
    """edit(w) on a weight that requires grad: done with requires_grad off, then on again
    (resize_ and t_ refuse a leaf that requires grad)."""
    def change(m):
        w = _weight(m)
        w.requires_grad_(False)
        edit(w)
        w.requires_grad_(True)
    return change


def test_parameter_dtype_changed_through_data():
    _run_meta(lambda m: setattr(_weight(m), "data", _weight(m).data.double()),
              lambda m: setattr(_weight(m), "data", _weight(m).data.float()))


def test_parameter_requires_grad_flipped_and_back():
    _run_meta(lambda m: _weight(m).requires_grad_(False), lambda m: _weight(m).requires_grad_(True),
              lambda m: _weight(m, 0).requires_grad_(False))


def test_parameter_resized_in_place():
    _run_meta(_unfrozen(lambda w: w.resize_(2, 4)), _unfrozen(lambda w: w.resize_(4, 4)))


def test_parameter_transposed_in_place():
    # square: the sizes stay, the strides change
    _run_meta(_unfrozen(lambda w: w.t_()), _unfrozen(lambda w: w.t_()))


def test_parameter_data_replaced_by_a_view():
    # the same sizes, a strided view of a bigger tensor: other strides, another storage;
    # then another such view: only the strides differ (both not contiguous)
    _run_meta(lambda m: setattr(_weight(m), "data", torch.randn(4, 8)[:, ::2]),
              lambda m: setattr(_weight(m), "data", torch.randn(4, 12)[:, ::3]))


# ---- held objects: a module's children are not read through their weakrefs ----
# (csrc/snapshot_batch.c "held objects": a child's liveness follows from its parent's
# `_modules` table, checked untouched just before it in the same pass)

def _batched_stack():
    torch.manual_seed(0)
    model = Stack()
    fast = terra_dyn.optimize(model, backend="interpreter")
    x = torch.randn(3, 4)
    for _ in range(4):
        _compare(fast, model, x)
    return model, fast, x


def test_children_are_held_by_their_parents_tables(guard_snapshot_modes):
    if not guard_snapshot_modes.snapshots:
        pytest.skip("snapshots off: no batch")
    model, fast, x = _batched_stack()
    guard = _guard(model)
    # every module but the root: the root is read through its weakref
    assert guard.batch_held == len(list(model.modules())) - 1 == guard.batched - 1


@pytest.mark.parametrize("how", ["setattr", "dict", "delete"])
def test_held_child_freed_then_another_at_its_place(how):
    """The old child is freed (no one keeps it) and a new one may take its address: the
    parent's table, checked before the child, sees the change."""
    model, fast, x = _batched_stack()
    for round in range(3):
        block = model.blocks[round]
        if how == "setattr":
            block.fc = nn.Linear(4, 4)
        elif how == "dict":
            block._modules["fc"] = nn.Linear(4, 4)
        else:
            del block._modules["norm"]
            block.norm = nn.LayerNorm(4, eps=0.5)
        for _ in range(3):
            _compare(fast, model, x)


def test_held_child_class_changed_after_its_parent_dropped_it():
    """A child kept alive by the user, dropped by its parent and put back with another
    class: still seen (its type is read, its weakref is not)."""
    model, fast, x = _batched_stack()

    class Doubled(nn.Linear):
        def forward(self, x):
            return super().forward(x) * 2

    fc = model.blocks[1].fc
    fc.__class__ = Doubled
    for _ in range(3):
        _compare(fast, model, x)
    fc.__class__ = nn.Linear
    model.blocks[1].fc = nn.Linear(4, 4)
    model.blocks[1].fc = fc
    for _ in range(3):
        _compare(fast, model, x)


# ---- a parameter's record holds its spec's sizes and strides (csrc/tensor_check.cpp) ----
# up to 4 dimensions copied into the record; more: compared with the spec itself

class Convs(nn.Module):
    def __init__(self):
        super().__init__()
        self.c2 = nn.Conv2d(2, 2, 3, padding=1)  # a 4-d weight: its record's copy
        self.c3 = nn.Conv3d(2, 2, 3, padding=1)  # a 5-d weight: the spec

    def forward(self, x):
        return self.c2(x.sum(2)).sum() + self.c3(x).sum()


@pytest.mark.parametrize("name", ["c2", "c3"])
@pytest.mark.parametrize("edit", ["strides", "sizes", "dtype"])
def test_conv_weight_changed_through_data(name, edit):
    torch.manual_seed(0)
    model = Convs()
    fast = terra_dyn.optimize(model, backend="interpreter")
    x = torch.randn(1, 2, 4, 5, 5)
    for _ in range(4):
        _compare(fast, model, x)
    w = getattr(model, name).weight
    if edit == "strides":  # the same sizes, channels last: other strides
        fmt = torch.channels_last if w.dim() == 4 else torch.channels_last_3d
        w.data = w.data.contiguous(memory_format=fmt)
    elif edit == "sizes":  # one output channel: other sizes
        w.data = w.data[:1].clone()
        getattr(model, name).bias.data = getattr(model, name).bias.data[:1].clone()
    else:
        model.double()
        x = x.double()
    for _ in range(3):
        _compare(fast, model, x)
