"""nn.Module subclasses with their own attribute lookup (a Python `__getattr__` or
`__getattribute__`): read in Python's order in one graph, with what the lookup read
guarded. Each case runs the optimized module and an identical eager twin through the same
calls and mutations, and compares outputs and the lookup's side effects call by call."""
import pytest
import torch
from torch import nn

import terra_dyn
from terra_dyn import report


@pytest.fixture(autouse=True)
def _fresh():
    terra_dyn.reset()
    yield
    terra_dyn.reset()


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = 2.0
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        return self.lin(x)


class Forwarding(nn.Module):  # PEFT-style: unknown names are the wrapped model's
    def __init__(self):
        super().__init__()
        self.inner = Inner()

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.inner, name)

    def forward(self, x):
        return x * self.scale + self.inner(x) + (1 if hasattr(self, "flag") else 0)


class Renaming(nn.Module):  # its __getattr__ answers another child for a name in _modules
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)
        self.use_b = False

    def __getattr__(self, name):
        if name == "a" and self.__dict__["use_b"]:
            name = "b"
        return super().__getattr__(name)

    def forward(self, x):
        return self.a(x)


class Counting(nn.Module):  # its __getattribute__ logs the reads of two names
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.reads = []

    def __getattribute__(self, name):
        if name in ("lin", "flag"):
            object.__getattribute__(self, "reads").append(name)
        return super().__getattribute__(name)

    def forward(self, x):
        return self.lin(x) * 2 + (1 if hasattr(self, "flag") else 0)


def _set(m, name, value):
    setattr(m, name, value)


def _scale(m, value):
    m.inner.scale = value


MUTATIONS = {
    # (class, mutation between calls 1 and 2, the state compared)
    "forwarded_attribute": (Forwarding, lambda m: _scale(m, 3.0), None),
    "hasattr_through_getattr": (Forwarding, lambda m: _set(m, "flag", 1), None),
    "renamed_child": (Renaming, lambda m: _set(m, "use_b", True), None),
    "counted_reads": (Counting, lambda m: None, "reads"),
    "counted_hasattr": (Counting, lambda m: _set(m, "flag", 1), "reads"),
}


def _twins(cls):
    torch.manual_seed(0)
    ours = cls()
    torch.manual_seed(0)
    return ours, cls()


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_module_with_its_own_lookup_matches_eager_in_one_graph(case):
    cls, mutate, state = MUTATIONS[case]
    ours, eager = _twins(cls)
    fast = terra_dyn.optimize(ours)
    x = torch.randn(2, 4)
    for call in range(4):
        with report.recording() as rec:
            got = fast(x)
        want = eager(x)
        assert torch.equal(got, want), f"call {call}"
        if state is not None:
            assert getattr(ours, state) == getattr(eager, state), f"call {call}"
        rep = rec.report()
        assert not rep.breaks and not rep.fallbacks, [b.reason for b in rep.breaks]
        assert len(rep.graphs) <= 1
        if call in (1, 3):
            assert not rep.graphs, "a cached call translated again"
        if call == 1:
            mutate(ours)
            mutate(eager)


def test_a_lookup_replaced_on_the_class_is_seen():
    ours, eager = _twins(Renaming)
    fast = terra_dyn.optimize(ours)
    x = torch.randn(2, 4)
    assert torch.equal(fast(x), eager(x))

    def always_b(self, name):
        return nn.Module.__getattr__(self, "b" if name == "a" else name)

    Renaming.__getattr__, saved = always_b, Renaming.__getattr__
    try:
        assert torch.equal(fast(x), eager(x))
        assert torch.equal(fast(x), ours.b(x))
    finally:
        Renaming.__getattr__ = saved
