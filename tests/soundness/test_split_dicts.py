"""Soundness of the guard facts about a module's own attributes when its instance dict is
split (3.13: the dict shares the class's keys, and `m.x = v` writes the object's values
array with no dict tag or watcher event). The snapshot check reads such facts by the key's
index in the class's shared keys (csrc/split_keys.c), in the batch and in each memo.

Each test optimizes a stack of blocks, calls it until the batch holds, then changes a
block's attributes in a way the index reading must follow (a value stored, deleted,
added where the guard said absent, the class's keys grown by another instance, __dict__
replaced, a tuple attribute freed and another allocated at its address) and compares the
next calls with eager. On 3.11 / 3.12 the same changes go through the dict tags and
watchers: the tests run there too."""
import sys

import pytest
import torch
import torch.nn as nn

import terra_dyn

from .test_guard_batch import _guard, batch_then_changes

pytestmark = pytest.mark.usefixtures("guard_snapshot_modes")


class Block(nn.Module):
    scale = 1.0  # a class default that `del block.scale` exposes

    def __init__(self, bonus=False):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.scale = 2.0
        self.shift = (0.5, -0.5)
        if bonus:
            self.bonus = 3.0  # puts "bonus" in the class's shared keys

    def forward(self, x):
        y = self.fc(x) * self.scale + self.shift[0]
        if hasattr(self, "bonus"):
            y = y + self.bonus
        return y


class Stack(nn.Module):
    def __init__(self, n=4):
        super().__init__()
        self.blocks = nn.ModuleList(Block() for _ in range(n))

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


def _run(*changes, prepare=None):
    """Calls until the batch holds, then each change followed by three compared calls."""
    torch.manual_seed(0)
    if prepare is not None:
        prepare()
    model = Stack()
    fast = terra_dyn.optimize(model, backend="interpreter")
    x = torch.randn(3, 4)
    with torch.no_grad():
        def compare():
            expected, got = model(x), fast(x)
            assert torch.allclose(got, expected, atol=1e-6), (got - expected).abs().max()
        batch_then_changes(model, compare, changes)


def _set(i, name, value):
    return lambda m: setattr(m.blocks[i], name, value() if callable(value) else value)


@pytest.mark.parametrize("i", [0, 2, 3])
def test_attribute_stored(i):
    _run(_set(i, "scale", 3.0), _set(i, "scale", 2.0), _set(i, "scale", 4.0))


def test_attribute_deleted_then_stored_again():
    _run(lambda m: delattr(m.blocks[1], "scale"), _set(1, "scale", 5.0))


def test_absent_attribute_added():
    # "bonus" is not among the class's keys when recorded: adding it grows them
    _run(_set(2, "bonus", 1.5), _set(2, "bonus", 2.5), lambda m: delattr(m.blocks[2], "bonus"))


def test_absent_attribute_added_when_already_among_the_class_keys():
    # another instance made first puts "bonus" in the shared keys: the guarded blocks lack
    # it at an index that exists, and a store there changes no keys
    kept = []
    _run(_set(1, "bonus", 1.5), _set(3, "bonus", -1.0), prepare=lambda: kept.append(Block(bonus=True)))


def test_the_class_keys_grown_by_another_instance():
    # an unrelated instance adds a new attribute name: the keys grow, nothing guarded
    # changes (must still pass and stay right), then a guarded block changes
    other = Block()
    _run(lambda m: setattr(other, "unrelated", 1), _set(0, "scale", 6.0), _set(0, "other_name", 1))


def test_instance_dict_replaced_then_written():
    def replace(m):
        m.blocks[2].__dict__ = dict(vars(m.blocks[2]))
    _run(replace, _set(2, "scale", 7.0), _set(2, "scale", 2.0))


def test_instance_dict_written_directly():
    _run(lambda m: m.blocks[1].__dict__.__setitem__("scale", 8.0))


def _fresh_tuple(a, b):
    return tuple([a, b])  # built at run time: a freed tuple's memory is reused


def test_tuple_attribute_freed_and_another_allocated_at_its_address():
    """3.13 compared the tuple's address only: the old tuple freed (the dict held it alone)
    and a new one of the same size allocated there (the tuple free list) passed."""
    def change(value):
        def swap(m):
            block = m.blocks[2]
            block.shift = None
            block.shift = _fresh_tuple(value, -value)
        return swap
    _run(change(4.0), change(0.5), change(-2.0))


def test_tuple_attribute_replaced_by_a_longer_one():
    _run(_set(1, "shift", lambda: (1.0, 2.0, 3.0)))


def test_class_swapped_for_a_subclass():
    class Other(Block):
        def forward(self, x):
            return super().forward(x) - 1

    _run(lambda m: setattr(m.blocks[3], "__class__", Other))


@pytest.mark.skipif(sys.version_info < (3, 13), reason="3.13's split instance dicts")
def test_split_dicts_are_batched_on_313(guard_snapshot_modes):
    if not guard_snapshot_modes:
        pytest.skip("snapshots off")
    torch.manual_seed(0)
    model = Stack()
    fast = terra_dyn.optimize(model, backend="interpreter")
    x = torch.randn(3, 4)
    with torch.no_grad():
        for _ in range(4):
            fast(x)
    guard = _guard(model)
    assert guard.batched == sum(c[0] == "snapshot" for c in guard.checks)


class _Lookup(nn.Module):
    """Its own __getattr__ answers from `extras`: no guard covers what it may say."""

    def __init__(self):
        super().__init__()
        self.extras = {}

    def __getattr__(self, name):
        extras = self.__dict__.get("extras", {})
        if name in extras:
            return extras[name]
        return super().__getattr__(name)

    def forward(self, x):
        return x + 1.0 if hasattr(self, "bonus") else x - 1.0


class _Gate(nn.Module):
    """A property whose getter raises AttributeError while `opened` is False."""

    def __init__(self):
        super().__init__()
        self.opened = False

    @property
    def bonus(self):
        if not self.opened:
            raise AttributeError("bonus")
        return 1.0

    def forward(self, x):
        return x + 1.0 if hasattr(self, "bonus") else x - 1.0


@pytest.mark.parametrize("cls, change", [(_Lookup, lambda m: m.extras.__setitem__("bonus", 1)),
                                         (_Gate, lambda m: setattr(m, "opened", True))],
                         ids=["own_getattr", "raising_property"])
def test_hasattr_that_no_guard_covers_follows_the_change(cls, change):
    """hasattr on a module whose class decides by its own code was answered from the first
    call with no guard: a change that the class's code sees must reach the next call."""
    plain, m = cls(), cls()
    opt = terra_dyn.optimize(m, backend="interpreter")
    x = torch.ones(3)
    for _ in range(3):
        assert torch.equal(opt(x), plain(x))
    change(plain), change(m)
    for _ in range(2):
        assert torch.equal(opt(x), plain(x))
