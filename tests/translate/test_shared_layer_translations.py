"""Instances of one module class that differ only in their parameters share a translation
(issue 17, Deliver 2): 12 layers of a stack, each translated as its own frame (optimized one by
one, or reached natively across a break in the model's loop), cost at most two translations of
the layer's forward, one guarded by identity and one by type after the second instance
(wrap.modules_by_type), and none on later calls. Values and Python effects match eager."""
import pytest
import torch

import terra_dyn
from terra_dyn import report

LOG = []


class _Block(torch.nn.Module):
    """A BERT-like layer: attention-free, but linear, layer norm, GELU, residual."""

    def __init__(self, width=16):
        super().__init__()
        self.up = torch.nn.Linear(width, 2 * width)
        self.down = torch.nn.Linear(2 * width, width)
        self.norm = torch.nn.LayerNorm(width)

    def forward(self, x):
        return self.norm(x + self.down(torch.nn.functional.gelu(self.up(x))))


class _Stack(torch.nn.Module):
    def __init__(self, n=12, break_between=False):
        super().__init__()
        torch.manual_seed(0)
        self.layers = torch.nn.ModuleList(_Block() for _ in range(n))
        self.break_between = break_between

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
            if self.break_between:
                LOG.append(round(x.sum().item(), 3))  # a break between the layers' calls
        return x


def _layer_translations(rep):
    code = _Block.forward.__code__
    return sum((t.filename, t.lineno) == (code.co_filename, code.co_firstlineno) for t in rep.translations)


def _check(fast, model, calls=3):
    counts = []
    for i in range(calls):
        x = torch.randn(3, 16, generator=torch.Generator().manual_seed(i))
        LOG.clear()
        eager = model(x)
        eager_log = list(LOG)
        LOG.clear()
        with report.recording() as rec:
            ours = fast(x)
        torch.testing.assert_close(ours, eager)
        assert LOG == eager_log
        counts.append(_layer_translations(rec.report()))
    return counts


def test_twelve_layers_optimized_one_by_one_share_a_translation(fresh_terra_dyn):
    model = _Stack()
    fasts = [terra_dyn.optimize(layer, backend="interpreter") for layer in model.layers]

    def fast(x):
        for f in fasts:
            x = f(x)
        return x

    counts = _check(fast, model)
    assert 1 <= counts[0] <= 2 and counts[1:] == [0, 0], counts


@pytest.mark.parametrize("n", [12])
def test_twelve_linear_layers_share_a_translation(fresh_terra_dyn, n):
    torch.manual_seed(0)
    layers = [torch.nn.Linear(8, 8) for _ in range(n)]
    fasts = [terra_dyn.optimize(layer, backend="interpreter") for layer in layers]
    code = torch.nn.Linear.forward.__code__
    for call in range(3):
        x = torch.randn(2, 8)
        with report.recording() as rec:
            for f, layer in zip(fasts, layers):
                torch.testing.assert_close(f(x), layer(x))
        made = sum((t.filename, t.lineno) == (code.co_filename, code.co_firstlineno)
                   for t in rec.report().translations)
        assert made <= (2 if call == 0 else 0), (call, made)


def test_layers_inlined_in_a_model_with_breaks_between_them(fresh_terra_dyn):
    model = _Stack(break_between=True)
    counts = _check(terra_dyn.optimize(model, backend="interpreter"), model)
    assert counts[0] <= 2 and counts[1:] == [0, 0], counts
