"""meta_rules gives the facts torch's own (Python) meta kernels give, or declines; and a
first translation in a fresh process imports none of torch._dynamo, torch._inductor, sympy."""
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
import operator

from terra_dyn.translate import meta_rules


def _meta(t, grad=False):
    m = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta")
    return m.requires_grad_(True) if grad else m


def _qkv():
    return torch.randn(2, 8, 3, 4, 16).permute(2, 0, 3, 1, 4).unbind(0)


CASES = [
    (F.linear, lambda: (torch.randn(2, 8, 64), torch.randn(32, 64), torch.randn(32)), {}),
    (F.linear, lambda: (torch.randn(64), torch.randn(32, 64)), {}),
    (torch.addmm, lambda: (torch.randn(32), torch.randn(5, 64), torch.randn(64, 32)), {}),
    (F.relu, lambda: (torch.randn(3, 4),), {}),
    (F.gelu, lambda: (torch.randn(3, 4),), {"approximate": "tanh"}),
    (operator.add, lambda: (torch.randn(2, 1, 4), torch.randn(5, 1)), {}),
    (operator.mul, lambda: (2, torch.randn(3, 4)), {}),
    (operator.truediv, lambda: (torch.randn(3, 4), torch.tensor(2.0)), {}),
    (torch.pow, lambda: (torch.randn(3, 4), 3), {}),
    (F.layer_norm, lambda: (torch.randn(2, 8, 64), (64,), torch.randn(64), torch.randn(64)), {}),
    (torch.cat, lambda: ([torch.randn(2, 3), torch.randn(2, 5)],), {"dim": -1}),
    (F.embedding, lambda: (torch.randint(0, 10, (2, 8)), torch.randn(10, 16)), {}),
    (F.scaled_dot_product_attention, _qkv, {"is_causal": True}),
    (operator.matmul, lambda: (torch.randn(4, 4, 8, 16).transpose(1, 2), torch.randn(4, 1, 16, 5)), {}),
    (torch.matmul, lambda: (torch.randn(3, 8, 16), torch.randn(16, 5)), {}),
    (F.softmax, lambda: (torch.randn(4, 8),), {"dim": -1}),
    (torch.Tensor.masked_fill, lambda: (torch.randn(2, 4, 4), torch.ones(4, 4, dtype=torch.bool).triu(1), 0.5), {}),
    (torch.triu, lambda: (torch.randn(5, 5),), {"diagonal": 1}),
    (torch.Tensor.reshape, lambda: (torch.randn(4, 8, 2, 3).transpose(1, 2), 4, -1), {}),
]


@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("fn,make,kwargs", CASES, ids=[f"{c[0].__name__}{i}" for i, c in enumerate(CASES)])
def test_rule_matches_eager_facts(fn, make, kwargs, grad):
    args = make()
    eager = fn(*args, **kwargs)
    metas = [[_meta(a, grad) for a in x] if isinstance(x, list) else
             _meta(x, grad and x.is_floating_point()) if isinstance(x, torch.Tensor) else x for x in args]
    if isinstance(fn, type(torch.Tensor.reshape)):  # a method: the translator calls it by name
        out = meta_rules.infer("call_method", fn.__name__, metas, kwargs, torch.device("cpu"))
    else:
        out = meta_rules.infer("call_function", fn, metas, kwargs, torch.device("cpu"))
    assert out is not None
    assert (out.shape, out.stride(), out.dtype) == (eager.shape, eager.stride(), eager.dtype)
    assert out.requires_grad == grad and (not grad or out.grad_fn is not None)


def test_rule_declines_what_eager_rejects():
    bad = meta_rules.infer("call_function", F.linear, [_meta(torch.randn(2, 63)), _meta(torch.randn(4, 64))], {})
    assert bad is None
    mixed = meta_rules.infer("call_function", operator.add,
                             [_meta(torch.randn(3)), _meta(torch.randn(3, dtype=torch.float64))], {})
    assert mixed.dtype == (torch.randn(3) + torch.randn(3, dtype=torch.float64)).dtype  # promoted, as eager
    assert meta_rules.infer("call_function", operator.sub,
                            [_meta(torch.randn(3)), _meta(torch.ones(3, dtype=torch.bool))], {}) is None
    assert meta_rules.infer("call_function", operator.add, [_meta(torch.randn(3)), _meta(torch.randn(4))], {}) is None
    # a reshape that can be a view is one (aliasing): left to the meta kernel
    assert meta_rules.infer("call_method", "reshape", [_meta(torch.randn(4, 6).t()), 24], {}) is not None
    assert meta_rules.infer("call_method", "reshape", [_meta(torch.randn(4, 6)[:, :2]), 4, 2, 1], {}) is None


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("grad", [False, True])
def test_batch_norm_and_leaky_relu_match_eager_facts(training, affine, grad):
    """yolov3's conv blocks (each a Python decomposition on meta tensors: 5-15 ms a call)."""
    x, mean, var = torch.randn(2, 4, 3, 5), torch.zeros(4), torch.ones(4)
    w, b = (torch.rand(4), torch.rand(4)) if affine else (None, None)
    eager = F.batch_norm(x, mean.clone(), var.clone(), w, b, training, 0.1, 1e-5)
    metas = [_meta(x, grad), _meta(mean), _meta(var)] + [None if t is None else _meta(t, grad) for t in (w, b)]
    out = meta_rules.infer("call_function", F.batch_norm, metas + [training, 0.1, 1e-5], {}, torch.device("cpu"))
    assert (out.shape, out.stride(), out.dtype) == (eager.shape, eager.stride(), eager.dtype)
    assert out.requires_grad == grad and (not grad or out.grad_fn is not None)
    relu = meta_rules.infer("call_function", F.leaky_relu, [out, 0.1], {}, torch.device("cpu"))
    assert (relu.shape, relu.stride(), relu.requires_grad) == (eager.shape, eager.stride(), grad)


def test_batch_norm_declines_what_eager_rejects():
    def infer(x, *rest, **kwargs):
        return meta_rules.infer("call_function", F.batch_norm, [_meta(x), *rest], kwargs, torch.device("cpu"))

    one = torch.randn(1, 4, 1, 1)
    with pytest.raises(ValueError):
        F.batch_norm(one, torch.zeros(4), torch.ones(4), training=True)
    assert infer(one, _meta(torch.zeros(4)), _meta(torch.ones(4)), training=True) is None
    assert infer(torch.randn(2, 3, 4), _meta(torch.zeros(4)), _meta(torch.ones(4))) is None  # channels differ
    assert infer(torch.randn(2, 4, 4), None, None) is None  # evaluation needs statistics
    assert infer(torch.randn(2, 4, 4).transpose(0, 2), _meta(torch.zeros(4)), _meta(torch.ones(4))) is None
    assert meta_rules.infer("call_function", F.leaky_relu, [_meta(one), 0.1, True], {}) is None  # in place


def test_factories_on_meta():
    out = meta_rules.infer("call_function", torch.ones, [3, 4], {"dtype": torch.bool, "device": "meta"})
    assert (out.shape, out.dtype) == ((3, 4), torch.bool)
    assert meta_rules.infer("call_function", torch.arange, [2, 11, 3], {"device": "meta"}).shape == (3,)
    assert meta_rules.infer("call_function", torch.arange, [5, 1, -2], {"device": "meta"}).shape == (2,)
    assert meta_rules.infer("call_function", torch.ones, [3], {"device": "meta", "requires_grad": True}) is None


FRESH = r"""
import json, sys, torch, torch.nn as nn, torch.nn.functional as F
import terra_dyn

class Block(nn.Module):
    def __init__(self, d=64, heads=4):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.up, self.down = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (y.view(b, t, self.heads, c // self.heads).transpose(1, 2) for y in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).contiguous().view(b, t, c))
        return x + self.down(F.gelu(self.up(self.ln2(x))))

torch.manual_seed(0)
mlp = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 8))
x = torch.randn(2, 8, 64)
same = []
for model in (mlp, Block()):
    for backend in ("interpreter", "auto"):
        with torch.no_grad():
            same.append(torch.allclose(terra_dyn.optimize(model, backend=backend)(x), model(x)))
        terra_dyn.reset()
    same.append(torch.allclose(terra_dyn.optimize(model)(x), model(x)))  # with autograd


def train_step(conv, head, images, labels):  # a CNN classifier's loss: conv, reductions, masks
    h = F.dropout(F.relu(conv(images)), 0.1, training=False)
    logits = head(h.mean((2, 3)))
    loss = F.cross_entropy(logits, labels) + 0.1 * torch.where(logits > 0, logits, 0.0).sum(-1).mean()
    return loss + F.mse_loss(h.amax(1), h.amin(1)) * (labels == 0).any()

conv, head = nn.Conv2d(3, 8, 3, padding=1), nn.Linear(8, 5)
images, labels = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 4, 2])
same.append(torch.allclose(terra_dyn.optimize(train_step)(conv, head, images, labels),
                           train_step(conv, head, images, labels)))
print(json.dumps({"same": same, "imported": [m for m in ("torch._dynamo", "torch._inductor", "sympy")
                                              if m in sys.modules]}))
"""


def test_first_translation_imports_nothing_heavy():
    out = subprocess.run([sys.executable, "-c", FRESH], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "TERRA_DYN": ""})
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert all(result["same"]), result
    assert result["imported"] == [], result
