"""terra_dyn demo: a captured model, a graph break, and the report that explains them.

    .venv/bin/python examples/demo.py

1. `optimize(model)`: the model's forward becomes one FX graph; results equal eager.
2. `step` prints a shape (a Python value: replayed, no break) and logs `loss.item()`
   (needs the tensor's value: the graph is split there and Python runs it).
3. `terra_dyn.explain(step, ...)` shows the graphs, the break with its file:line and
   source line, and the time spent translating and compiling.
"""
import torch

import terra_dyn


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(16, 32), torch.nn.Linear(32, 4)

    def forward(self, x):
        return self.fc2(torch.nn.functional.gelu(self.fc1(x)))


def step(model, x, target):
    out = model(x)
    print("output shape:", tuple(out.shape))  # a shape: no tensor value needed
    loss = torch.nn.functional.mse_loss(out, target)
    print("loss:", round(loss.item(), 4))  # a tensor value: graph break
    return (loss * 2).relu()


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

    print("2. a step with a graph break, eager then optimized:")
    eager_loss = step(model, x, target)
    fast_loss = terra_dyn.optimize(step)(model, x, target)
    print("   same result:", torch.allclose(eager_loss, fast_loss))

    print("3. what terra_dyn did with the step:\n")
    print(terra_dyn.explain(step, model, x, target))


if __name__ == "__main__":
    main()
