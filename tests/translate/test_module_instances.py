"""One code object run for many instances of a module type (the layers of a model whose
forward is translated on its own after a break, `nn.Softmax(dim=-1)(x)` built per call):
after one recompile caused by another instance, the module is guarded by type and its
parameters are graph inputs, so one translation serves every instance, without ever
reusing one instance's parameters, attributes, hooks or children for another.

Every test compares each call with eager on the same instance and inputs.
"""
import warnings

import torch
from torch import nn

import terra_dyn
from terra_dyn import report


def run_both(fn, calls):
    """fn(*args) eagerly and optimized for each args in calls; returns the report."""
    fast = terra_dyn.optimize(fn, backend="interpreter")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="terra_dyn")  # the recompile-limit warning fails
        with report.recording() as rec:
            for args in calls:
                expected = fn(*args)
                got = fast(*args)
                assert torch.equal(expected, got), f"mismatch for {args!r}"
    terra_dyn.reset()
    return rec.report()


class Block(nn.Module):
    def __init__(self, d, log):
        super().__init__()
        self.fc = nn.Linear(d, d)
        self.log = log

    def forward(self, x):
        self.log.append(x.shape[0])  # a recorded side effect, not a break
        h = self.fc(x).relu()
        print(end="")  # a break: this frame is translated on its own, per instance
        return h + nn.Softmax(dim=-1)(x)  # a module built per call


def test_twelve_layers_share_one_translation():
    torch.manual_seed(0)
    eager_log = []
    blocks = [Block(8, eager_log) for _ in range(12)]

    def step(b, x):
        return b(x)

    x = torch.randn(4, 8)
    calls = [(b, x) for _ in range(3) for b in blocks]
    rep = run_both(step, calls)
    assert len(eager_log) == 2 * len(calls)  # eager and optimized both appended once per call
    assert len(rep.recompiles) <= 6, [str(r) for r in rep.recompiles]
    assert not rep.fallbacks


def test_attribute_values_and_counters_are_per_instance():
    class Scaled(nn.Module):
        def __init__(self, scale):
            super().__init__()
            self.scale = scale
            self.calls = 0
            self.w = nn.Parameter(torch.randn(3))

        def forward(self, x):
            self.calls += 1
            return x * self.w * self.scale

    torch.manual_seed(0)
    mods = [Scaled(s) for s in (1.0, 2.0, 1.0, 3.0, 1.0)]
    x = torch.randn(3)

    def step(m, x):
        return m(x)

    run_both(step, [(m, x) for m in mods] * 2)
    # eager and optimized calls each counted on the instance they ran on
    assert [m.calls for m in mods] == [4] * len(mods)


def test_hooks_and_children_differ_between_instances():
    torch.manual_seed(0)
    seen = []
    plain = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    hooked = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    hooked[0].register_forward_hook(lambda m, i, o: seen.append(1) or o * 2)
    longer = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
    x = torch.randn(2, 4)

    def step(m, x):
        return m(x) + 1

    run_both(step, [(plain, x), (hooked, x), (longer, x), (plain, x), (hooked, x), (longer, x)])
    assert len(seen) == 4  # two eager and two optimized calls of the hooked model


def test_a_module_swapped_in_an_attribute():
    torch.manual_seed(0)

    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Linear(3, 3)

        def forward(self, x):
            return self.inner(x) * 2

    holder = Holder()
    x = torch.randn(3)
    fast = terra_dyn.optimize(holder, backend="interpreter")
    for _ in range(4):
        holder.inner = nn.Linear(3, 3)  # a fresh instance every step
        assert torch.equal(fast(x), holder(x))
    terra_dyn.reset()


# ----------------------------------------------------------------------------- traversals
# module.parameters() and friends are generators in eager; they are modelled as iterators
# over the same objects in the same order, so loops over them stay in the graph.

def test_traversals_match_eager_and_stay_in_one_graph():
    torch.manual_seed(0)
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared, nn.Sequential(nn.Linear(4, 2), nn.BatchNorm1d(2))).eval()

    def step(x):
        reg = sum(p.pow(2).sum() for p in model.parameters())  # the tied layer counted once
        names = [n for n, _ in model.named_parameters(prefix="m")]
        top = [n for n, _ in model.named_parameters(recurse=False)]
        bufs = [b.float().sum() for b in model.buffers()]
        kinds = [type(c).__name__ for c in model.children()] + [n for n, _ in model.named_modules()]
        first = next(model.parameters())
        return model(x).sum() + reg + sum(bufs), names, top, kinds, first.shape

    x = torch.randn(5, 4)
    fast = terra_dyn.optimize(step, backend="interpreter")
    with report.recording() as rec:
        for _ in range(2):
            expected, got = step(x), fast(x)
            assert torch.equal(expected[0], got[0]) and expected[1:] == got[1:]
    assert len(rec.report().graphs) == 1 and not rec.report().breaks
    model.append(nn.Linear(2, 2))  # a new child: the guarded structure changed
    expected, got = step(x), fast(x)
    assert torch.equal(expected[0], got[0]) and expected[1:] == got[1:]
    terra_dyn.reset()


def test_an_overridden_traversal_is_not_modelled():
    class Picky(nn.Linear):
        def parameters(self, recurse=True):
            yield self.weight  # no bias

    m = Picky(3, 3)

    def step(x):
        return sum(p.sum() for p in m.parameters()) + x

    x = torch.randn(3)
    assert torch.equal(terra_dyn.optimize(step, backend="interpreter")(x), step(x))
    terra_dyn.reset()
