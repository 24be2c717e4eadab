"""DropBlock (Ghiasi et al. 2018) in a ResNet-50, after the widely used `dropblock` package.

The block masks are drawn on the Python side with numpy (`np.random.rand(...) < gamma`) and
turned into tensors with `torch.from_numpy`; a LinearScheduler raises `drop_prob` along a
numpy `linspace` every iteration (a Python float attribute that changes between steps).
DropBlock sits after stages 3 and 4, as in the paper.

What a user optimizes: the training step (`train_step`): scheduler step, forward with
DropBlock, cross-entropy, SGD, `loss.item()` into an AverageMeter.

    prog = build("small", "cpu")
    loss = prog.run(prog.make_batch(0))
"""
import logging

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import common
from .common import Program
from .resnet_blocks import AverageMeter, Bottleneck, init_weights, make_layer

log = logging.getLogger(__name__)


class DropBlock2D(nn.Module):
    """Drops contiguous block_size x block_size regions of each feature map."""

    def __init__(self, drop_prob, block_size):
        super().__init__()
        self.drop_prob = drop_prob
        self.block_size = block_size

    def forward(self, x):
        if not self.training or self.drop_prob == 0.0:
            return x
        gamma = self._compute_gamma(x)
        # sample the block centres on the Python side
        n, _, h, w = x.shape
        mask = (np.random.rand(n, h, w) < gamma).astype(np.float32)
        mask = torch.from_numpy(mask).to(x.device)
        block_mask = self._compute_block_mask(mask)
        out = x * block_mask[:, None, :, :]
        # normalize so that the expected activation stays the same
        out = out * block_mask.numel() / block_mask.sum()
        return out

    def _compute_block_mask(self, mask):
        block_mask = F.max_pool2d(mask[:, None, :, :], kernel_size=(self.block_size, self.block_size),
                                  stride=(1, 1), padding=self.block_size // 2)
        if self.block_size % 2 == 0:
            block_mask = block_mask[:, :, :-1, :-1]
        return 1 - block_mask.squeeze(1)

    def _compute_gamma(self, x):
        return self.drop_prob / (self.block_size ** 2)


class LinearScheduler(nn.Module):
    """Wraps a DropBlock and walks its drop_prob along a linspace, one value per step()."""

    def __init__(self, dropblock, start_value, stop_value, nr_steps):
        super().__init__()
        self.dropblock = dropblock
        self.i = 0
        self.drop_values = np.linspace(start=start_value, stop=stop_value, num=int(nr_steps))

    def forward(self, x):
        return self.dropblock(x)

    def step(self):
        if self.i < len(self.drop_values):
            self.dropblock.drop_prob = self.drop_values[self.i]
        self.i += 1


class ResNetDropBlock(nn.Module):
    def __init__(self, layers, width, num_classes, drop_prob, block_size, nr_steps):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.dropblock = LinearScheduler(DropBlock2D(0.0, block_size), 0.0, drop_prob, nr_steps)
        inplanes, stages = width, []
        for i, blocks in enumerate(layers):
            planes = width * 2 ** i
            stages.append(make_layer(Bottleneck, inplanes, planes, blocks, stride=1 if i == 0 else 2))
            inplanes = planes * Bottleneck.expansion
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(inplanes, num_classes)
        init_weights(self)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        x = self.dropblock(self.layer3(x))
        x = self.dropblock(self.layer4(x))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


class DropBlock(Program):
    name = "dropblock"
    configs = {
        "small": dict(batch=4, image=32, width=8, layers=[1, 1, 1, 1], classes=10, lr=0.01,
                      drop_prob=0.25, block_size=3, nr_steps=4),
        "full": dict(batch=64, image=224, width=64, layers=[3, 4, 6, 3], classes=1000, lr=0.1,
                     drop_prob=0.1, block_size=7, nr_steps=5000),
    }

    def setup(self):
        c = self.cfg
        self.model = ResNetDropBlock(c.layers, c.width, c.classes, c.drop_prob, c.block_size,
                                     c.nr_steps).to(self.device)
        self.criterion = nn.CrossEntropyLoss()
        self.optimizer = torch.optim.SGD(self.model.parameters(), c.lr, momentum=0.9, weight_decay=1e-4)
        self.losses = AverageMeter("Loss")

    def make_batch(self, i):
        return common.image_classification_batch(self.cfg, self.generator(i), self.device)

    def train_step(self, batch):
        images, target = batch
        self.model.dropblock.step()
        output = self.model(images)
        loss = self.criterion(output, target)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.losses.update(loss.item(), images.size(0))
        log.debug("dropblock p=%.3f %r", self.model.dropblock.dropblock.drop_prob, self.losses)
        return loss.detach()


def build(config="small", device="cpu", seed=0):
    return DropBlock(config, device, seed)
