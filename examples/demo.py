"""terra_dyn demo: a captured model, a measured comparison with eager, a graph break, and
the report that explains it.

    .venv/bin/python examples/demo.py

1. `optimize(model)`: the model's forward becomes one FX graph; results equal eager.
2. Speed, measured on this machine (medians of the calls after the first ones, which
   translate and lower): a GELU-like chain of pointwise ops over 1M floats, where the
   default backend fuses the chain into one generated loop (C++ on CPU, Triton on a GPU),
   and a small MLP's training step, where matmuls dominate and the graph runs eager's own
   ops (expect about 1.0x there). The numbers printed are measured, whatever they are.
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


def gelu_like(x):
    return 0.5 * x * (1.0 + torch.tanh(0.7978845608 * (x + 0.044715 * x * x * x)))


def time_calls(fn, x, calls=30, warmup=8):
    """Median seconds per call of fn(x) after `warmup` calls (translation, lowering, the
    backend's measured choice between its kernels and eager's ops)."""
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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

    device = "GPU" if torch.cuda.is_available() else "CPU"
    wide = torch.randn(1 << 20, device="cuda" if device == "GPU" else "cpu")
    eager = time_calls(gelu_like, wide)
    fused = terra_dyn.optimize(gelu_like)
    optimized = time_calls(fused, wide)
    same = torch.allclose(fused(wide), gelu_like(wide), rtol=1e-5, atol=1e-6)
    print(f"2. gelu-like chain over 1M floats, median of 30 on this {device} (backend {terra_dyn.config.backend}): "
          f"eager {eager * 1e3:.2f} ms, terra_dyn {optimized * 1e3:.2f} ms, speedup {eager / optimized:.2f}x, "
          f"same result: {same}")

    big_x, big_target = torch.randn(256, 16), torch.randn(256, 4)
    eager = time_steps(train_step, MLP(256), big_x, big_target)
    optimized = time_steps(terra_dyn.optimize(train_step), MLP(256), big_x, big_target)
    print(f"   training step, median of 30 on this {device} (backend {terra_dyn.config.backend}): "
          f"eager {eager * 1e3:.2f} ms, terra_dyn {optimized * 1e3:.2f} ms, speedup {eager / optimized:.2f}x")

    print("3. a step with a graph break, eager then optimized:")
    eager_loss = step(model, x, target)
    fast_loss = terra_dyn.optimize(step)(model, x, target)
    print("   same result:", torch.allclose(eager_loss, fast_loss))
    print("   what terra_dyn did with the step:\n")
    print(terra_dyn.explain(step)(model, x, target))


if __name__ == "__main__":
    main()
