"""A class's version tag that moved because a write was undone is no recompile; a write that
stays is seen.

torch.fx's trace patches nn.Module.__call__ and __getattr__ and restores them; torch.compile
does the same on every trace. Each restore gives nn.Module (and every module class) a new
version tag, so a guard that compared tags only translated every optimized module again
after each trace: run.py's resnet50 translated 11 times after step 2 when torch.compile
ran beside it in one process. The type_version check now asks, when the tag moved, whether
the classes along the MRO hold what the translation read (guard_snapshot.ClassUnchanged).
"""
import torch
import torch.fx
import torch.nn as nn

import terra_dyn
from terra_dyn import _C
import pytest


@pytest.fixture(autouse=True)
def _fresh():
    terra_dyn.reset()
    yield
    terra_dyn.reset()


class _Net(nn.Module):
    scale = 2.0

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x).relu() * self.scale


def _entries():
    return len(_C.cache_entries(_Net.forward.__code__))


def test_an_fx_trace_between_calls_is_no_recompile():
    torch.manual_seed(0)
    net = _Net()
    fast = terra_dyn.optimize(net, backend="interpreter")
    x = torch.randn(3, 4)
    for _ in range(4):
        tag = _C.type_version_tag(nn.Module)
        torch.fx.symbolic_trace(_Net())  # patches nn.Module and restores it
        assert _C.type_version_tag(nn.Module) != tag  # the restore moved the tag
        torch.testing.assert_close(fast(x), net(x), rtol=0, atol=0)
    assert _entries() == 1


def test_a_write_undone_on_a_base_class_is_no_recompile_and_a_lasting_one_is_seen():
    torch.manual_seed(0)
    net = _Net()
    fast = terra_dyn.optimize(net, backend="interpreter")
    x = torch.randn(3, 4)
    torch.testing.assert_close(fast(x), net(x), rtol=0, atol=0)
    original = nn.Module.__call__
    nn.Module.__call__ = lambda self, *a, **k: original(self, *a, **k)
    nn.Module.__call__ = original  # set and restored: the same objects again
    torch.testing.assert_close(fast(x), net(x), rtol=0, atol=0)
    assert _entries() == 1
    try:
        _Net.scale = 3.0  # lasting: read by the translation
        expected = net(x)
        assert torch.equal(expected, (net.fc(x).relu() * 3.0))
        torch.testing.assert_close(fast(x), expected, rtol=0, atol=0)
        # the tag after a lasting write is checked again: later calls keep seeing it
        _Net.scale = 4.0
        torch.testing.assert_close(fast(x), net(x), rtol=0, atol=0)
    finally:
        _Net.scale = 2.0
    torch.testing.assert_close(fast(x), net(x), rtol=0, atol=0)


def test_forward_replaced_on_the_class_after_a_restore_is_seen():
    torch.manual_seed(0)
    net = _Net()
    fast = terra_dyn.optimize(net, backend="interpreter")
    x = torch.randn(3, 4)
    fast(x)
    torch.fx.symbolic_trace(_Net())  # the tag moves and the check keeps the new one
    fast(x)
    old = _Net.forward
    try:
        _Net.forward = lambda self, x: x - 1  # then a real change: seen
        torch.testing.assert_close(fast(x), x - 1, rtol=0, atol=0)
    finally:
        _Net.forward = old
    torch.testing.assert_close(fast(x), net(x), rtol=0, atol=0)


def test_a_guard_built_by_hand_accepts_the_optional_check():
    class K:
        a = 1

    same_calls = []

    def same():
        same_calls.append(1)
        return K.a == 1

    tag = _C.type_version_tag(K)
    guard = _C.Guard([("type_version", K, tag, same)])
    assert guard.check() and not same_calls  # the tag holds: same() is not asked
    K.a = 2
    assert not guard.check()
    K.a = 1
    assert guard.check() and len(same_calls) == 2
    assert guard.check() and len(same_calls) == 2  # the new tag kept: not asked again
    assert _C.Guard([("type_version", K, _C.type_version_tag(K))]).check()
