"""A class that CPython gives no version tag is still translated and still guarded.

CPython 3.13 gives a class at most 1000 version tags in a process; every torch.fx trace
patches nn.Module and restores it, so after about a thousand traces nn.Module (and every
module class under it) has none. terra_dyn used to run such modules as plain Python from
then on; now the guard compares the classes' dicts along the MRO (guard_snapshot.ClassUnchanged).
The first tests take the tag away by hand (any version); the last one exhausts it for real
in a child process where CPython has the limit.
"""
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn as nn

import terra_dyn
from terra_dyn import _C
from terra_dyn.translate import guards


@pytest.fixture(autouse=True)
def _fresh():
    terra_dyn.reset()
    yield
    terra_dyn.reset()


class _Offset:
    offset = 1


class _Child(_Offset):
    def run(self, x):
        return x + self.offset


@pytest.fixture
def no_tags(monkeypatch):
    """Every class reads as having no version tag, as after CPython 3.13 ran out of them."""
    class NoTags:
        def __getattr__(self, name):
            return getattr(_C, name)

        @staticmethod
        def type_version_tag(cls):
            return 0

    monkeypatch.setattr(guards, "_C", NoTags())


def test_class_attribute_changes_are_seen_without_a_tag(no_tags):
    obj = _Child()
    fast = terra_dyn.optimize(obj.run, backend="interpreter")
    x = torch.zeros(2)
    try:
        assert torch.equal(fast(x), x + 1)
        _Offset.offset = 5  # on the base class
        assert torch.equal(fast(x), x + 5)
        _Child.offset = 7  # now shadowed on the subclass
        assert torch.equal(fast(x), x + 7)
        del _Child.offset
        assert torch.equal(fast(x), x + 5)
    finally:
        _Offset.offset = 1
        if "offset" in _Child.__dict__:
            del _Child.offset


def test_a_module_without_tags_is_one_graph_and_sees_forward_replaced(no_tags):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x).relu()

    torch.manual_seed(0)
    net, x = Net(), torch.randn(3, 4)
    fast = terra_dyn.optimize(net, backend="interpreter")
    explained = terra_dyn.explain(fast, x)
    assert (explained.graph_count, explained.break_count) == (1, 0), explained
    assert torch.equal(fast(x), net(x))
    original = Net.forward
    try:
        Net.forward = lambda self, x: self.fc(x) * 2
        assert torch.equal(fast(x), net(x))
    finally:
        Net.forward = original
    assert torch.equal(fast(x), net(x))


@pytest.mark.skipif(sys.version_info < (3, 13), reason="CPython limits version tags per class from 3.13 on")
def test_modules_stay_optimized_after_a_thousand_fx_traces():
    script = textwrap.dedent("""
        import torch, torch.fx as fx, torch.nn as nn, terra_dyn
        from terra_dyn import _C
        for _ in range(1100):
            fx.symbolic_trace(lambda x: x + 1)
        assert _C.type_version_tag(nn.Module) == 0, "nn.Module still has a tag"
        net, x = nn.Sequential(nn.Linear(4, 4), nn.ReLU()), torch.randn(2, 4)
        fast = terra_dyn.optimize(net, backend="interpreter")
        explained = terra_dyn.explain(fast, x)
        assert torch.equal(fast(x), net(x))
        print("graphs", explained.graph_count, "breaks", explained.break_count)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "graphs 1 breaks 0" in out.stdout, out.stdout
