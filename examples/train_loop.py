"""A plain PyTorch training script, with no terra_dyn in it: run it as

    TERRA_DYN=1 python examples/train_loop.py            # optimized, zero code change
    terra-dyn report examples/train_loop.py --steps 20   # the same, then the report

It has what imperative training code has: a data loader, a Python-random branch, logging
of shapes (no tensor value needed: no graph break) and of `loss.item()` (a break), and a
numpy call on tensor data (a break).
"""
import argparse
import random

import numpy as np
import torch


class MLP(torch.nn.Module):
    def __init__(self, width=32):
        super().__init__()
        self.fc1 = torch.nn.Linear(16, width)
        self.fc2 = torch.nn.Linear(width, 4)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def batches(n, seed=0):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randn(8, 16, generator=generator)
        yield x, (x[:, :4] * 2).sin()


def train_step(model, optimizer, x, y, step):
    if random.random() < 0.5:  # a Python-random augmentation, decided outside any graph
        x = x.flip(0)
        y = y.flip(0)
    loss = torch.nn.functional.mse_loss(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 5 == 0:
        print(f"step {step}: batch {tuple(x.shape)}, loss {loss.item():.4f}")
    return loss


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    random.seed(0)
    model = MLP()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for step, (x, y) in enumerate(batches(args.steps)):
        loss = train_step(model, optimizer, x, y, step)
    weights = model.fc1.weight.detach()
    print("final loss", round(loss.item(), 4), "weight norm", round(float(np.linalg.norm(weights.numpy())), 4))


if __name__ == "__main__":
    main()
