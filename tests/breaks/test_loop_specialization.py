"""A loop whose resume function needs a new translation on every iteration (sdpoint's
`for i, block in enumerate(self.blocks): if i + 1 == point: ...`): the function and what it
calls run as written after a few translations, instead of one per block, per shape and per
call until the recompile limit. Every test compares with eager on the same inputs.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

import terra_dyn
from terra_dyn import report


class Block(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class PointNet(nn.Module):
    """SDPoint's shape: downsample after block `point` (0: nowhere), widths differ per block."""

    def __init__(self, widths=(4, 4, 8, 8, 16, 16)):
        super().__init__()
        ins = (3,) + widths[:-1]
        self.blocks = nn.ModuleList(Block(a, b) for a, b in zip(ins, widths))

    def forward(self, x, point, ratio):
        for i, block in enumerate(self.blocks):
            if i + 1 == point:
                h, w = x.shape[-2:]
                x = F.adaptive_avg_pool2d(x, (max(1, int(round(h * ratio))), max(1, int(round(w * ratio)))))
            x = block(x)
        return x.mean()


DRAWS = [(0, 0.5), (3, 0.5), (1, 0.75), (5, 0.5), (2, 0.75), (6, 0.5), (4, 0.75), (3, 0.75), (0, 0.5),
         (5, 0.75), (1, 0.5), (2, 0.5)]


def _run(model, step_model, draws):
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    out = []
    for point, ratio in draws:
        loss = step_model(x, point, ratio)
        loss.backward()
        out.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
        model.zero_grad()
    return out


def test_a_loop_specializing_per_iteration_runs_as_written_and_stops_translating():
    torch.manual_seed(0)
    eager = PointNet()
    torch.manual_seed(0)
    model = PointNet()
    terra_dyn.reset()
    fast = terra_dyn.optimize(model, backend="interpreter")
    expected = _run(eager, eager, DRAWS)
    with report.recording() as first:
        got = _run(model, fast, DRAWS[:3])
    with report.recording() as later:
        got += _run(model, fast, DRAWS[3:])
    for (a, ga), (b, gb) in zip(expected, got):
        torch.testing.assert_close(b, a)
        for u, v in zip(ga, gb):
            torch.testing.assert_close(v, u)
    # before: each block's resume translation, then each Block/Conv2d/BatchNorm2d frame per
    # instance and shape, until the recompile limit, spread over every call
    assert len(first.report().translations) <= 16  # 20 before
    assert not later.report().translations and not later.report().fallbacks
    assert any("every iteration" in r.reason for r in first.report().as_written)
    terra_dyn.reset()
