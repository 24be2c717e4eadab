"""A realistic training script, with no terra_dyn in it: argparse, logging, a DataLoader,
a tqdm-style progress line, an LR scheduler, gradient clipping, evaluation and checkpoints.

    TERRA_DYN=1 python examples/train_realistic.py --epochs 2
    terra-dyn report examples/train_realistic.py --epochs 2
    terra-dyn report --html report.html examples/train_realistic.py --epochs 2

Its tensor work is in `train_step` and `evaluate`; the rest is the Python around them
that every training script has. Two habits cost graph breaks here, as in real scripts:
`loss.item()` on every step (for the running average), and a last batch of another size.
"""
import argparse
import logging
import os
import sys
import tempfile
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

log = logging.getLogger("train")


class Progress:
    """A tqdm-style progress line: `epoch 1:  40% 8/20 loss 0.512 3.1 it/s`."""

    def __init__(self, total, desc, stream=sys.stderr):
        self.total, self.desc, self.stream = total, desc, stream
        self.n, self.start, self.postfix = 0, time.perf_counter(), ""

    def update(self, n=1, **postfix):
        self.n += n
        self.postfix = " ".join(f"{k} {v:.3f}" for k, v in postfix.items())
        rate = self.n / max(time.perf_counter() - self.start, 1e-9)
        self.stream.write(f"\r{self.desc}: {100 * self.n // self.total:3d}% {self.n}/{self.total} "
                          f"{self.postfix} {rate:.1f} it/s")

    def close(self):
        self.stream.write("\n")


class Classifier(torch.nn.Module):
    def __init__(self, features=32, hidden=64, classes=10, dropout=0.1):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(features, hidden), torch.nn.LayerNorm(hidden), torch.nn.GELU(),
            torch.nn.Dropout(dropout),
            torch.nn.Linear(hidden, hidden), torch.nn.GELU(),
        )
        self.head = torch.nn.Linear(hidden, classes)

    def forward(self, x):
        return self.head(self.body(x))


class AverageMeter:
    def __init__(self):
        self.total, self.count = 0.0, 0

    def update(self, value, n=1):
        self.total += value * n
        self.count += n

    @property
    def avg(self):
        return self.total / max(self.count, 1)


def make_data(n, features=32, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    y = (x[:, :classes] * torch.arange(1, classes + 1)).argmax(dim=1)
    return TensorDataset(x, y)


def train_step(model, optimizer, x, y, meter):
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    meter.update(loss.item(), x.shape[0])  # a tensor value every step: a graph break
    return loss


@torch.no_grad()
def evaluate(model, loader):
    model.eval()
    correct = total = 0
    for x, y in loader:
        correct += (model(x).argmax(dim=1) == y).sum()
        total += y.shape[0]
    model.train()
    return float(correct) / total


def save_checkpoint(path, model, optimizer, scheduler, epoch):
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "epoch": epoch}, path)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--checkpoint-dir", default=None)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    torch.manual_seed(0)
    train_loader = DataLoader(make_data(args.samples), batch_size=args.batch_size, shuffle=True)
    val_loader = DataLoader(make_data(300, seed=1), batch_size=128)
    model = Classifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    checkpoint_dir = args.checkpoint_dir or tempfile.mkdtemp(prefix="terra_dyn_ckpt_")
    for epoch in range(args.epochs):
        meter, progress = AverageMeter(), Progress(len(train_loader), f"epoch {epoch}")
        for x, y in train_loader:
            train_step(model, optimizer, x, y, meter)
            progress.update(loss=meter.avg)
        progress.close()
        scheduler.step()
        accuracy = evaluate(model, val_loader)
        log.info("epoch %d: loss %.4f, accuracy %.3f, lr %.4f", epoch, meter.avg, accuracy,
                 scheduler.get_last_lr()[0])
        save_checkpoint(os.path.join(checkpoint_dir, "last.pt"), model, optimizer, scheduler, epoch)
    print(f"final: loss {meter.avg:.4f}, accuracy {accuracy:.3f}")
    return accuracy


if __name__ == "__main__":
    main()
