"""Random graphs mixing pointwise ops, reductions along either dim, softmax, broadcasting
and matmuls (ATen steps between kernels): the partitioner's fusion and scheduling must
give eager's results for every one of them (seeded, so failures reproduce)."""
import random

import pytest
import torch
import torch.fx as fx

from .support import check

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::RuntimeWarning")]

UNARY = [torch.tanh, torch.sin, torch.relu, torch.abs, torch.sigmoid, torch.neg]
BINARY = [torch.add, torch.sub, torch.mul, torch.maximum]


def random_graph(seed, rows, cols):
    rng = random.Random(seed)
    graph = fx.Graph()
    values = [(graph.placeholder("x"), (rows, cols)), (graph.placeholder("y"), (cols,)),
              (graph.placeholder("z"), (rows, 1)), (graph.placeholder("w"), (cols, cols))]
    weight = values.pop()[0]
    for _ in range(rng.randint(4, 14)):
        kind = rng.random()
        node, shape = rng.choice(values)
        if kind < 0.35:
            values.append((graph.call_function(rng.choice(UNARY), (node,)), shape))
        elif kind < 0.65:
            other, other_shape = rng.choice(values)
            out = torch.broadcast_shapes(shape, other_shape)
            values.append((graph.call_function(rng.choice(BINARY), (node, other)), tuple(out)))
        elif kind < 0.8 and len(shape) == 2 and shape[0] > 1 and shape[1] > 1:
            dim = rng.choice([0, 1])
            op = rng.choice([torch.sum, torch.amax, torch.mean])
            reduced = (1, shape[1]) if dim == 0 else (shape[0], 1)
            values.append((graph.call_function(op, (node, dim), {"keepdim": True}), reduced))
        elif kind < 0.9 and shape == (rows, cols):
            values.append((graph.call_function(torch.softmax, (node, rng.choice([0, 1]))), shape))
        elif shape == (rows, cols):
            values.append((graph.call_function(torch.matmul, (node, weight)), shape))
    outputs = [v for v, _ in values[-3:]] + [v for v, _ in rng.sample(values, 2)]
    graph.output(tuple(outputs))
    return fx.GraphModule(torch.nn.Module(), graph)


@pytest.mark.parametrize("seed", range(30))
def test_random_graph_matches_eager(seed):
    torch.manual_seed(seed)
    rows, cols = 7, 13
    gm = random_graph(seed, rows, cols)
    check(gm, torch.randn(rows, cols), torch.randn(cols), torch.randn(rows, 1), torch.randn(cols, cols) * 0.3,
          atol=1e-4, rtol=1e-4, what=f"seed {seed}\n{gm.graph}")


@pytest.mark.parametrize("seed", range(4))
def test_random_graph_with_long_rows_matches_eager(seed):
    torch.manual_seed(seed)
    rows, cols = 3, 4500
    gm = random_graph(100 + seed, rows, cols)
    check(gm, torch.randn(rows, cols), torch.randn(cols), torch.randn(rows, 1), torch.randn(cols, cols) * 0.02,
          atol=1e-3, rtol=1e-3, what=f"seed {seed}\n{gm.graph}")
