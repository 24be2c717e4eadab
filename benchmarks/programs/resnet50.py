"""ResNet-50 (He et al. 2016) trained like the PyTorch ImageNet example's `train()` loop.

What a user optimizes: the training step (`train_step`): forward, cross-entropy, top-1/top-5
accuracy, `loss.item()` into AverageMeters, SGD with momentum and weight decay, and a
progress line every `print_freq` steps (Python formatting of meter values).

    prog = build("small", "cpu")     # ResNet-50 layout [3, 4, 6, 3] at width 8, 32x32 images
    loss = prog.run(prog.make_batch(0))
"""
import logging

import torch
import torch.nn as nn

from . import common
from .common import Program
from .resnet_blocks import AverageMeter, Bottleneck, accuracy, init_weights, make_layer

log = logging.getLogger(__name__)


class ResNet(nn.Module):
    def __init__(self, block, layers, width=64, num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes, stages = width, []
        for i, blocks in enumerate(layers):
            planes = width * 2 ** i
            stages.append(make_layer(block, inplanes, planes, blocks, stride=1 if i == 0 else 2))
            inplanes = planes * block.expansion
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, num_classes)
        init_weights(self)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


class ResNet50(Program):
    name = "resnet50"
    configs = {
        "small": dict(batch=4, image=32, width=8, classes=10, lr=0.01, print_freq=10),
        "full": dict(batch=64, image=224, width=64, classes=1000, lr=0.1, print_freq=10),
    }

    def setup(self):
        c = self.cfg
        self.model = ResNet(Bottleneck, [3, 4, 6, 3], c.width, c.classes).to(self.device)
        self.criterion = nn.CrossEntropyLoss()
        self.optimizer = torch.optim.SGD(self.model.parameters(), c.lr, momentum=0.9, weight_decay=1e-4)
        self.losses, self.top1, self.top5 = AverageMeter("Loss"), AverageMeter("Acc@1"), AverageMeter("Acc@5")

    def make_batch(self, i):
        return common.image_classification_batch(self.cfg, self.generator(i), self.device)

    def train_step(self, batch):
        images, target = batch
        output = self.model(images)
        loss = self.criterion(output, target)
        acc1, acc5 = accuracy(output, target, topk=(1, min(5, self.cfg.classes)))
        self.losses.update(loss.item(), images.size(0))
        self.top1.update(acc1[0].item(), images.size(0))
        self.top5.update(acc5[0].item(), images.size(0))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        if self.iteration % self.cfg.print_freq == 0:
            log.info("[%d] %r %r %r", self.iteration, self.losses, self.top1, self.top5)
        return loss.detach()


def build(config="small", device="cpu", seed=0):
    return ResNet50(config, device, seed)
