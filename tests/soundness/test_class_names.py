"""Name-aware class facts: when a class's version tag moved, a translation is reused only if
the names it read are unchanged along the MRO (guard_snapshot.ClassUnchanged with names).

torch.compile's first trace replaces nn.Module.__init__ and __setstate__ (and SGD's
_init_group) for good: every module entry translated before it was translated once more
(yolov3 beside compile:eager: 7 late translations of forward). A write to a name the
translation read, a name added that would shadow one read (in a subclass, or a class
attribute over a module's parameter or submodule) and a data descriptor added over an
instance attribute read must still be seen.
"""
import torch
import torch.nn as nn
import pytest

import terra_dyn
from terra_dyn import _C
from terra_dyn.translate import guard_snapshot


@pytest.fixture(autouse=True)
def _fresh():
    terra_dyn.reset()
    yield
    terra_dyn.reset()


class _Base(nn.Module):
    scale = 2.0


class _Cfg:
    def __init__(self):
        self.k = 3.0


class _Net(_Base):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.alpha = 0.5
        self.cfg = _Cfg()

    def forward(self, x):
        return (self.fc(x).relu() * self.scale + self.alpha) * self.cfg.k


def _entries():
    return len(_C.cache_entries(_Net.forward.__code__))


def _setup():
    torch.manual_seed(0)
    net = _Net()
    fast = terra_dyn.optimize(net, backend="interpreter")
    x = torch.randn(3, 4)
    torch.testing.assert_close(fast(x), net(x), rtol=0, atol=0)
    assert _entries() == 1
    return net, fast, x


def _same(fast, net, x):
    expected = net(x)
    torch.testing.assert_close(fast(x), expected, rtol=0, atol=0)


def test_a_lasting_write_to_an_unrelated_base_attribute_is_no_recompile():
    net, fast, x = _setup()
    tag = _C.type_version_tag(nn.Module)
    try:
        nn.Module._terra_unrelated = 1  # lasting, on the MRO of every module class
        assert _C.type_version_tag(nn.Module) != tag
        for _ in range(3):
            _same(fast, net, x)
    finally:
        del nn.Module._terra_unrelated
    _same(fast, net, x)
    assert _entries() == 1


def test_module_init_and_setstate_replaced_for_good_is_no_recompile():
    # what torch.compile's first trace does (mutation_guard's generation tagging)
    net, fast, x = _setup()
    init, setstate = nn.Module.__init__, nn.Module.__setstate__
    try:
        nn.Module.__init__ = lambda self, *a, **k: init(self, *a, **k)
        nn.Module.__setstate__ = lambda self, state: setstate(self, state)
        for _ in range(3):
            _same(fast, net, x)
        assert _entries() == 1
    finally:
        nn.Module.__init__, nn.Module.__setstate__ = init, setstate


def test_a_write_to_a_base_attribute_read_is_seen():
    net, fast, x = _setup()
    nn.Module._terra_unrelated = 1  # the tag moves and the new one is kept
    try:
        _same(fast, net, x)
        _Base.scale = 5.0
        _same(fast, net, x)
        assert _entries() == 2
    finally:
        _Base.scale = 2.0
        del nn.Module._terra_unrelated
    _same(fast, net, x)


def test_a_name_added_in_the_subclass_shadowing_a_base_attribute_is_seen():
    net, fast, x = _setup()
    try:
        _Net.scale = -1.0  # _Net comes before _Base on the MRO
        _same(fast, net, x)
        assert _entries() == 2
    finally:
        del _Net.scale
    _same(fast, net, x)


def test_a_data_descriptor_added_over_an_instance_attribute_read_is_seen():
    net, fast, x = _setup()
    try:
        _Net.alpha = property(lambda self: 7.0)  # wins over net.__dict__['alpha']
        assert net.alpha == 7.0
        _same(fast, net, x)
    finally:
        del _Net.alpha
    _same(fast, net, x)
    assert net.alpha == 0.5


def test_a_class_attribute_over_a_submodule_is_seen():
    net, fast, x = _setup()
    try:
        _Net.fc = staticmethod(lambda t: t * 0 + 1)  # found before nn.Module.__getattr__
        _same(fast, net, x)
    finally:
        del _Net.fc
    _same(fast, net, x)


def test_a_data_descriptor_on_a_plain_object_s_class_is_seen():
    net, fast, x = _setup()
    try:
        _Cfg.k = property(lambda self: -2.0)
        assert net.cfg.k == -2.0
        _same(fast, net, x)
    finally:
        del _Cfg.k
    _same(fast, net, x)


def test_an_unrelated_write_to_a_plain_object_s_class_is_no_recompile():
    net, fast, x = _setup()
    try:
        _Cfg.other = 1
        _same(fast, net, x)
        assert _entries() == 1
    finally:
        del _Cfg.other


def test_class_unchanged_compares_the_names_read_and_the_dunders():
    class A:
        a = 1
        b = 2

    class B(A):
        c = 3

    same = guard_snapshot.ClassUnchanged(B, names=("a",))
    whole = guard_snapshot.ClassUnchanged(B, names=None)
    assert same() and whole()
    A.b = 20  # not read
    assert same() and not whole()
    B.a = 1  # shadows A.a (the same value, another place: a new object is not needed)
    assert same() is False
    del B.a
    assert same()
    A.__init__ = lambda self: None  # inert dunder
    assert same()
    A.__getattr__ = lambda self, name: 0  # a lookup dunder: compared though not named
    assert not same()
    del A.__getattr__
    assert same()
    same.read(None)  # a reader that did not say what it read: everything compared
    assert not same()
