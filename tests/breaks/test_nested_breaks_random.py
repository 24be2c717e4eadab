"""Random call chains with a break at the bottom, against eager (nested_breaks.py).

Each case is a chain f0 -> f1 -> ... -> fd (d = 1..3) written as source: every level does
tensor work, logs to LOG before and after its call, and calls the next level in one of
several forms that leave different things on the stack under the call (nothing, a tensor,
a NULL and a callable, a list being built, keyword arguments, a bound method). The deepest
level breaks in one of several ways (.item(), a branch on a tensor's value, printing a
tensor, .tolist(), a numpy call, .item() inside try or a no_grad block), once or twice. The optimized f0 must give eager's values,
LOG and printed text on three calls with different inputs.
"""
import io
import random

import numpy as np
import pytest
import torch

import terra_dyn

CALL_FORMS = [
    "r = {callee}(a, n + 1)",
    "r = a + {callee}(a, n + 1)",
    "r = torch.cat([a, {callee}(a, n + 1)])[: a.shape[0]]",
    "r = _combine({callee}(a, k=n + 1), other=a)",
    "r = HOLDER.call({callee}, a, n + 1)",
    "r = (a, {callee}(a, n + 1))[1] * 1.5",
]
BREAKS = [
    "s = x.sum().item()\n    x = x * 0.5 + s",
    "if x.sum() > 0:\n        x = x + 1\n    else:\n        x = x - 1",
    "print('value', x.sum(), file=OUT)",
    "x = x + len([v for v in x.flatten().tolist() if v > 0])",
    "x = x * float(np.tanh(x.detach().numpy()).sum())",
    "try:\n        s = x.sum().item()\n    except ValueError:\n        s = 0.0\n    x = x + s",
    "with torch.no_grad():\n        x = x * x.abs().max().item()",
]


def _combine(t, other):
    return t - other


class _Holder:
    def call(self, fn, a, n):
        LOG.append(("holder", n))
        return fn(a, n)


def _source(rng):
    depth = rng.randint(1, 3)
    lines = []
    for k in range(depth + 1):
        lines.append(f"def f{k}(x, n=0, k=None):")
        lines.append("    n = n if k is None else k")
        lines.append(f"    a = x * {rng.choice([0.5, 1.5, -2.0])} + n")
        lines.append(f"    LOG.append(('in', {k}, n))")
        if k < depth:
            lines.append("    " + rng.choice(CALL_FORMS).format(callee=f"f{k + 1}"))
            lines.append(f"    LOG.append(('out', {k}))")
            lines.append(f"    return (r * {rng.choice([1.0, 2.0, 0.25])} - a).tanh()")
        else:
            lines.append("    x = a.relu() - 0.1")
            for b in rng.sample(BREAKS, rng.choice([1, 2])):
                lines.append("    " + b)
                lines.append(f"    LOG.append(('after break', {k}))")
            lines.append("    return x.sin()")
        lines.append("")
    return "\n".join(lines)


def _namespace(src, log, out):
    ns = {"torch": torch, "np": np, "LOG": log, "OUT": out, "_combine": _combine, "HOLDER": _Holder()}
    exec(compile(src, "<nested case>", "exec"), ns)  # noqa: S102
    return ns


LOG = []


@pytest.mark.parametrize("seed", range(48))
def test_random_chain_matches_eager(seed, fresh_terra_dyn):
    src = _source(random.Random(seed))
    eager_log, eager_out = [], io.StringIO()
    ours_log, ours_out = [], io.StringIO()
    eager_ns = _namespace(src, eager_log, eager_out)
    ours_ns = _namespace(src, ours_log, ours_out)
    fast = terra_dyn.optimize(ours_ns["f0"], backend="interpreter")
    for call in range(3):
        x = torch.randn(4, generator=torch.Generator().manual_seed(seed * 10 + call))
        for log in (eager_log, ours_log, LOG):
            log.clear()
        eager = eager_ns["f0"](x.clone())
        eager_holder = list(LOG)
        LOG.clear()
        ours = fast(x.clone())
        torch.testing.assert_close(ours, eager, msg=lambda m: f"{m}\n{src}")
        assert ours_log == eager_log, src
        assert list(LOG) == eager_holder, src
    assert ours_out.getvalue() == eager_out.getvalue(), src
