"""The interface every benchmark program implements, and the seeding that makes runs comparable.

    prog = dcgan.build("small", "cpu", seed=0)   # seeds torch/random/numpy, builds model + optimizer
    prog.optimize(terra_dyn.optimize)             # wraps what a user would wrap: the train step
    for i in range(5):
        loss = prog.run(prog.make_batch(i))       # a detached scalar loss tensor

Several copies of one program (eager, terra_dyn, torch.compile) run interleaved in one
process and must still draw the same random numbers (dropout, `random.randint`, numpy
masks). So each Program owns private RNG streams — torch (CPU and CUDA), Python `random`,
numpy — and `run` swaps them in around every step. Batches come from generators seeded by
(seed, iteration), never from the global streams, so `make_batch(i)` is the same everywhere.

A subclass defines `configs` ("small": a CPU-sized model, well under a second per step on
two cores; "full": the paper-sized model for a GPU), `setup()` (build modules and
optimizers from `self.cfg`), `make_batch(i)` and `train_step(batch)` (forward, loss,
backward, optimizer step and whatever Python the original program runs).
"""
import random
from types import SimpleNamespace

import numpy as np
import torch


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


class RngStreams:
    """A snapshot of the global random streams: torch CPU, torch CUDA, Python, numpy."""

    def __init__(self):
        self.torch = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        self.python = random.getstate()
        self.numpy = np.random.get_state()

    def restore(self):
        torch.set_rng_state(self.torch)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)
        random.setstate(self.python)
        np.random.set_state(self.numpy)

    def __repr__(self):
        return f"<RngStreams torch={int(self.torch.sum())} python={self.python[1][0]}>"


class Program:
    """One training program: modules, optimizers, private RNG streams and a step to run."""

    name = "program"
    configs = {}
    # What a user optimizes. "step": the whole training step function (Terra's unit: the
    # program's Python runs imperatively, its DL operations as graphs). "model": the modules.
    unit = "step"
    module_attrs = ("model",)  # attributes holding the nn.Modules that "model" unit wraps

    def __init__(self, config="small", device="cpu", seed=0):
        if config not in self.configs:
            raise ValueError(f"{self.name}: unknown config {config!r}; known: {sorted(self.configs)}")
        self.config = config
        self.cfg = SimpleNamespace(**self.configs[config])
        self.device = torch.device(device)
        self.seed = seed
        self.iteration = 0
        outer = RngStreams()
        seed_everything(seed)
        self.setup()
        self._originals = {attr: getattr(self, attr) for attr in self.module_attrs}
        self._rng = RngStreams()  # the program's own streams, right after building
        outer.restore()
        self.step = self.train_step

    # -- what a subclass defines -------------------------------------------------------
    def setup(self):
        raise NotImplementedError

    def make_batch(self, i):
        raise NotImplementedError

    def train_step(self, batch):
        raise NotImplementedError

    # -- what a runner uses ----------------------------------------------------------
    def optimize(self, wrap, unit=None):
        """Replace the unit a user would optimize with `wrap(unit)` (e.g. terra_dyn.optimize)."""
        unit = unit or self.unit
        if unit == "step":
            self.step = wrap(self.train_step)
        elif unit == "model":
            for attr in self.module_attrs:
                setattr(self, attr, wrap(getattr(self, attr)))
        else:
            raise ValueError(f"unit must be 'step' or 'model', got {unit!r}")
        return self

    def run(self, batch):
        """One training step under this program's own random streams; returns the loss."""
        outer = RngStreams()
        self._rng.restore()
        try:
            loss = self.step(batch)
        finally:
            self._rng = RngStreams()
            outer.restore()
            self.iteration += 1
        return loss

    def named_parameters(self):
        """Parameters of the unwrapped modules, named `attr.param` (wrapping adds no prefix)."""
        return {
            f"{attr}.{name}": p
            for attr, module in self._originals.items()
            for name, p in module.named_parameters()
        }

    # -- helpers for subclasses ------------------------------------------------------
    def generator(self, i):
        """A CPU torch.Generator for batch i, independent of every global stream."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + i)

    def numpy_rng(self, i):
        return np.random.default_rng([self.seed, i])

    def __repr__(self):
        return f"<{self.name} config={self.config} device={self.device} unit={self.unit}>"


def image_classification_batch(cfg, generator, device):
    """Synthetic (images, labels) for the image classifiers (resnet50, sdpoint, dropblock)."""
    images = torch.randn(cfg.batch, 3, cfg.image, cfg.image, generator=generator)
    target = torch.randint(0, cfg.classes, (cfg.batch,), generator=generator)
    return images.to(device), target.to(device)
