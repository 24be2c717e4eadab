"""SDPoint (Kuen et al. 2018, "Stochastic Downsampling for Cost-Adjustable Inference").

Each training iteration picks, with Python's `random`, a downsampling point (after one of
the residual blocks, or none) and a ratio (0.5 or 0.75); the feature map is average-pooled
to that size there, so the shapes of everything after the point change from step to step.
This is the dynamic control flow Terra's evaluation uses SDPoint for.

What a user optimizes: the training step (`train_step`), which draws the point, runs the
model, and steps SGD; `loss.item()` feeds an AverageMeter as in the ImageNet example.

    prog = build("small", "cpu")     # ResNet-18 layout at width 8; 9 points x 2 ratios
    loss = prog.run(prog.make_batch(0))
"""
import logging
import random

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import common
from .common import Program
from .resnet_blocks import BLOCKS, AverageMeter, init_weights, make_layer

log = logging.getLogger(__name__)


class SDPointResNet(nn.Module):
    """A ResNet whose forward takes (point, ratio): downsample after block `point` (0 = none)."""

    def __init__(self, block, layers, width, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        blocks, inplanes = [], width
        for i, n in enumerate(layers):
            planes = width * 2 ** i
            blocks.extend(make_layer(block, inplanes, planes, n, stride=1 if i == 0 else 2))
            inplanes = planes * block.expansion
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(inplanes, num_classes)
        init_weights(self)

    def forward(self, x, point=0, ratio=1.0):
        x = self.relu(self.bn1(self.conv1(x)))
        for i, block in enumerate(self.blocks):
            if i + 1 == point:
                x = self.stochastic_downsample(x, ratio)
            x = block(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)

    @staticmethod
    def stochastic_downsample(x, ratio):
        h, w = x.shape[-2:]
        size = (max(1, int(round(h * ratio))), max(1, int(round(w * ratio))))
        return F.adaptive_avg_pool2d(x, size)


class SDPoint(Program):
    name = "sdpoint"
    configs = {
        "small": dict(batch=4, image=32, width=8, block="basic", layers=[2, 2, 2, 2], classes=10,
                      lr=0.01, ratios=[0.5, 0.75]),
        "full": dict(batch=64, image=224, width=64, block="bottleneck", layers=[3, 4, 23, 3],
                     classes=1000, lr=0.1, ratios=[0.5, 0.75]),
    }

    def setup(self):
        c = self.cfg
        self.model = SDPointResNet(BLOCKS[c.block], c.layers, c.width, c.classes).to(self.device)
        self.criterion = nn.CrossEntropyLoss()
        self.optimizer = torch.optim.SGD(self.model.parameters(), c.lr, momentum=0.9, weight_decay=1e-4)
        self.losses = AverageMeter("Loss")
        self.num_points = len(self.model.blocks) + 1  # 0 means "no downsampling this step"

    def make_batch(self, i):
        return common.image_classification_batch(self.cfg, self.generator(i), self.device)

    def train_step(self, batch):
        images, target = batch
        point = random.randint(0, self.num_points - 1)
        ratio = random.choice(self.cfg.ratios)
        output = self.model(images, point, ratio)
        loss = self.criterion(output, target)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.losses.update(loss.item(), images.size(0))
        log.debug("sdpoint point=%d ratio=%.2f %r", point, ratio, self.losses)
        return loss.detach()


def build(config="small", device="cpu", seed=0):
    return SDPoint(config, device, seed)
