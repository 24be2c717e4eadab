"""terra_dyn demo: a captured model, a measured comparison with eager, a graph break, and
the report that explains it.

    .venv/bin/python examples/demo.py

1. `optimize(model)`: the model's forward becomes one FX graph; results equal eager.
2. A training step, eager and optimized, timed on this machine (median of the steps after
   the first, which translates). On CPU the default backend runs the graph with the same
   ATen ops as eager, so expect about 1.0x; the fused-kernel backend (Triton on a GPU) is
   where graphs pay. The numbers printed are measured, whatever they are.
3. `step` prints a shape (a Python value: replayed, no break) and logs `loss.item()`
   (needs the tensor's value: the graph is split there and Python runs it);
   `terra_dyn.explain(step)(...)` shows the graphs, the break with its line, and the fix.
"""
import statistics
import time

import torch

import terra_dyn


class MLP(torch.nn.Module):
    def __init__(self, width=32):
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(16, width), torch.nn.Linear(width, 4)

    def forward(self, x):
        return self.fc2(torch.nn.functional.gelu(self.fc1(x)))


def train_step(model, optimizer, x, target):
    loss = torch.nn.functional.mse_loss(model(x), target)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach()


def step(model, x, target):
    out = model(x)
    print("output shape:", tuple(out.shape))  # a shape: no tensor value needed
    loss = torch.nn.functional.mse_loss(out, target)
    print("loss:", round(loss.item(), 4))  # a tensor value: graph break
    return (loss * 2).relu()


def time_steps(fn, model, x, target, steps=30):
    """Median seconds per step over `steps` steps, after one warm-up (translation) step."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    fn(model, optimizer, x, target)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn(model, optimizer, x, target)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    torch.manual_seed(0)
    model = MLP()
    x, target = torch.randn(8, 16), torch.randn(8, 4)

    fast = terra_dyn.optimize(model)
    expected = model(x)
    with terra_dyn.report.recording() as recorder:
        got = fast(x)
    graphs = recorder.report().graphs
    print(f"1. optimized model: {len(graphs)} graph of {sum(g.op_count for g in graphs)} ops, "
          f"max abs difference vs eager: {(got - expected).abs().max().item()}")

    big_x, big_target = torch.randn(256, 16), torch.randn(256, 4)
    eager = time_steps(train_step, MLP(256), big_x, big_target)
    optimized = time_steps(terra_dyn.optimize(train_step), MLP(256), big_x, big_target)
    device = "GPU" if torch.cuda.is_available() else "CPU"
    print(f"2. training step, median of 30 on this {device} (backend {terra_dyn.config.backend}): "
          f"eager {eager * 1e3:.2f} ms, terra_dyn {optimized * 1e3:.2f} ms, speedup {eager / optimized:.2f}x")

    print("3. a step with a graph break, eager then optimized:")
    eager_loss = step(model, x, target)
    fast_loss = terra_dyn.optimize(step)(model, x, target)
    print("   same result:", torch.allclose(eager_loss, fast_loss))
    print("   what terra_dyn did with the step:\n")
    print(terra_dyn.explain(step)(model, x, target))


if __name__ == "__main__":
    main()
