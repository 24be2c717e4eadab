"""Faster R-CNN-style two-stage detection (Ren et al. 2015), after torchvision's GeneralizedRCNN.

model(images, targets) returns a dict of losses, like torchvision's detection models; all
of its data-dependent Python runs inside forward:
  - the RPN matches anchors to a *variable number* of ground-truth boxes per image (IoU
    matrix, thresholds, `torch.where`), samples positives/negatives with `torch.randperm`;
  - proposals: decode, clip, top-k, then greedy NMS on the host in numpy
    (`.cpu().numpy()`, a Python while loop), so each image keeps a different number;
  - the box head samples proposals by IoU, pools 7x7 features per proposal with
    `affine_grid`/`grid_sample` (RoIAlign-like), and computes class and box losses on the
    foreground proposals only (boolean indexing: data-dependent shapes).

What a user optimizes: the training step (`train_step`), as in torchvision's
references/detection/engine.py: sum the loss dict, `losses.item()` with a finiteness check,
SGD step, logging.

    prog = build("small", "cpu")
    loss = prog.run(prog.make_batch(0))     # batch = (images, [{"boxes", "labels"}, ...])
"""
import logging
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .boxes import BoxCoder, box_iou, nms_numpy, random_boxes
from .common import Program

log = logging.getLogger(__name__)


def sample_balanced(labels, batch_size_per_image, positive_fraction):
    """Indices of up to batch_size_per_image labels, at most positive_fraction of them positive."""
    positive = torch.where(labels >= 1)[0]
    negative = torch.where(labels == 0)[0]
    num_pos = min(positive.numel(), int(batch_size_per_image * positive_fraction))
    num_neg = min(negative.numel(), batch_size_per_image - num_pos)
    perm1 = torch.randperm(positive.numel(), device=positive.device)[:num_pos]
    perm2 = torch.randperm(negative.numel(), device=negative.device)[:num_neg]
    return positive[perm1], negative[perm2]


class Backbone(nn.Module):
    def __init__(self, width, out_channels):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, 2, 1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width * 2, 3, 2, 1), nn.BatchNorm2d(width * 2), nn.ReLU(inplace=True),
            nn.Conv2d(width * 2, out_channels, 3, 2, 1), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
        )
        self.stride = 8

    def forward(self, x):
        return self.body(x)


class RegionProposalNetwork(nn.Module):
    def __init__(self, channels, sizes, ratios, stride, pre_nms_top_n, post_nms_top_n, nms_thresh):
        super().__init__()
        self.sizes, self.ratios, self.stride = sizes, ratios, stride
        num_anchors = len(sizes) * len(ratios)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.cls_logits = nn.Conv2d(channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(channels, num_anchors * 4, 1)
        self.box_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
        self.pre_nms_top_n, self.post_nms_top_n, self.nms_thresh = pre_nms_top_n, post_nms_top_n, nms_thresh
        self._anchor_cache = {}

    def anchors(self, h, w, device):
        key = (h, w, str(device))
        if key not in self._anchor_cache:
            base = []
            for size in self.sizes:
                for ratio in self.ratios:
                    hr, wr = math.sqrt(ratio), 1 / math.sqrt(ratio)
                    base.append([-size * wr / 2, -size * hr / 2, size * wr / 2, size * hr / 2])
            base = torch.tensor(base, device=device)
            shifts_x = (torch.arange(w, device=device) + 0.5) * self.stride
            shifts_y = (torch.arange(h, device=device) + 0.5) * self.stride
            sy, sx = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
            shifts = torch.stack((sx, sy, sx, sy), dim=-1).reshape(-1, 1, 4)
            self._anchor_cache[key] = (shifts + base[None]).reshape(-1, 4)
        return self._anchor_cache[key]

    def assign(self, anchors, gt_boxes):
        """Label anchors 1 (object) / 0 (background) / -1 (ignored) and their matched boxes."""
        iou = box_iou(gt_boxes, anchors)  # (G, A)
        best_iou, best_gt = iou.max(dim=0)
        labels = torch.full_like(best_iou, -1.0)
        labels[best_iou < 0.3] = 0.0
        labels[best_iou >= 0.7] = 1.0
        # every ground-truth box keeps its best anchors, however low their IoU
        highest = iou.max(dim=1, keepdim=True).values
        gt_idx, anchor_idx = torch.where(iou == highest)
        labels[anchor_idx] = 1.0
        return labels, gt_boxes[best_gt]

    def forward(self, features, image_size, targets):
        n, _, h, w = features.shape
        t = F.relu(self.conv(features))
        objectness = self.cls_logits(t).permute(0, 2, 3, 1).reshape(n, -1)
        deltas = self.bbox_pred(t).view(n, -1, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 4)
        anchors = self.anchors(h, w, features.device)

        proposals = []
        with torch.no_grad():
            for i in range(n):
                boxes = self.box_coder.decode(deltas[i].detach(), anchors).clamp(0, image_size)
                scores = objectness[i].detach()
                top = scores.topk(min(self.pre_nms_top_n, scores.numel())).indices
                boxes, scores = boxes[top], scores[top]
                wide = ((boxes[:, 2] - boxes[:, 0]) > 1e-3) & ((boxes[:, 3] - boxes[:, 1]) > 1e-3)
                boxes, scores = boxes[wide], scores[wide]
                keep = nms_numpy(boxes.cpu().numpy(), scores.cpu().numpy(), self.nms_thresh)
                keep = torch.from_numpy(keep[: self.post_nms_top_n]).to(boxes.device)
                proposals.append(boxes[keep])

        cls_losses, box_losses = [], []
        for i in range(n):
            labels, matched = self.assign(anchors, targets[i]["boxes"])
            pos, neg = sample_balanced(labels, 64, 0.5)
            sampled = torch.cat([pos, neg])
            cls_losses.append(F.binary_cross_entropy_with_logits(objectness[i][sampled], labels[sampled]))
            target_deltas = self.box_coder.encode(matched[pos], anchors[pos])
            box_losses.append(F.smooth_l1_loss(deltas[i][pos], target_deltas, beta=1 / 9, reduction="sum")
                              / max(1, sampled.numel()))
        losses = {"loss_objectness": sum(cls_losses) / n, "loss_rpn_box_reg": sum(box_losses) / n}
        return proposals, losses


class RoIHeads(nn.Module):
    def __init__(self, channels, num_classes, pool, hidden, stride):
        super().__init__()
        self.pool, self.stride, self.num_classes = pool, stride, num_classes
        self.fc6 = nn.Linear(channels * pool * pool, hidden)
        self.fc7 = nn.Linear(hidden, hidden)
        self.cls_score = nn.Linear(hidden, num_classes + 1)
        self.bbox_pred = nn.Linear(hidden, (num_classes + 1) * 4)
        self.box_coder = BoxCoder((10.0, 10.0, 5.0, 5.0))

    def roi_pool(self, features, rois, image_index, image_size):
        """Bilinear 7x7 crops of the feature map for each RoI (x1, y1, x2, y2 in pixels)."""
        s = float(image_size)
        x1, y1, x2, y2 = rois.unbind(1)
        zeros = torch.zeros_like(x1)
        theta = torch.stack([torch.stack([(x2 - x1) / s, zeros, (x1 + x2) / s - 1], 1),
                             torch.stack([zeros, (y2 - y1) / s, (y1 + y2) / s - 1], 1)], 1)
        grid = F.affine_grid(theta, [rois.size(0), features.size(1), self.pool, self.pool], align_corners=False)
        return F.grid_sample(features[image_index], grid, align_corners=False)

    def select_training_samples(self, proposals, targets):
        rois, image_index, labels, regression_targets = [], [], [], []
        for i, (props, target) in enumerate(zip(proposals, targets)):
            props = torch.cat([props, target["boxes"]])  # the ground truth joins the proposals
            iou = box_iou(target["boxes"], props)
            best_iou, best_gt = iou.max(dim=0)
            cls = target["labels"][best_gt].clone()
            cls[best_iou < 0.5] = 0
            pos, neg = sample_balanced(cls, 32, 0.25)
            sampled = torch.cat([pos, neg])
            rois.append(props[sampled])
            image_index.append(torch.full((sampled.numel(),), i, dtype=torch.long, device=props.device))
            labels.append(cls[sampled])
            regression_targets.append(self.box_coder.encode(target["boxes"][best_gt[sampled]], props[sampled]))
        return torch.cat(rois), torch.cat(image_index), torch.cat(labels), torch.cat(regression_targets)

    def forward(self, features, proposals, image_size, targets):
        rois, image_index, labels, regression_targets = self.select_training_samples(proposals, targets)
        x = self.roi_pool(features, rois, image_index, image_size).flatten(1)
        x = F.relu(self.fc7(F.relu(self.fc6(x))))
        class_logits, box_regression = self.cls_score(x), self.bbox_pred(x)
        loss_classifier = F.cross_entropy(class_logits, labels)
        # box loss only on foreground proposals, with their class's regression outputs
        pos = torch.where(labels > 0)[0]
        box_regression = box_regression.reshape(box_regression.size(0), -1, 4)
        box_loss = F.smooth_l1_loss(box_regression[pos, labels[pos]], regression_targets[pos], beta=1 / 9,
                                    reduction="sum") / labels.numel()
        return {"loss_classifier": loss_classifier, "loss_box_reg": box_loss}


class FasterRCNNModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.backbone = Backbone(c.width, c.channels)
        self.rpn = RegionProposalNetwork(c.channels, c.anchor_sizes, (0.5, 1.0, 2.0), self.backbone.stride,
                                         c.pre_nms_top_n, c.post_nms_top_n, 0.7)
        self.roi_heads = RoIHeads(c.channels, c.classes, 7, c.hidden, self.backbone.stride)

    def forward(self, images, targets):
        image_size = images.shape[-1]
        features = self.backbone(images)
        proposals, proposal_losses = self.rpn(features, image_size, targets)
        detector_losses = self.roi_heads(features, proposals, image_size, targets)
        losses = {}
        losses.update(detector_losses)
        losses.update(proposal_losses)
        return losses


class FasterRCNN(Program):
    name = "faster_rcnn"
    configs = {
        "small": dict(batch=2, image=64, width=8, channels=32, hidden=64, classes=5, anchor_sizes=(16, 32),
                      pre_nms_top_n=200, post_nms_top_n=50, max_objects=5, lr=0.01),
        "full": dict(batch=8, image=512, width=64, channels=256, hidden=1024, classes=80,
                     anchor_sizes=(32, 64, 128, 256), pre_nms_top_n=2000, post_nms_top_n=1000,
                     max_objects=20, lr=0.02),
    }

    def setup(self):
        self.model = FasterRCNNModel(self.cfg).to(self.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(params, lr=self.cfg.lr, momentum=0.9, weight_decay=1e-4)

    def make_batch(self, i):
        c, rng = self.cfg, self.numpy_rng(i)
        images = torch.rand(c.batch, 3, c.image, c.image, generator=self.generator(i)).to(self.device)
        targets = []
        for _ in range(c.batch):
            n = int(rng.integers(1, c.max_objects + 1))  # a different number of objects per image
            boxes = torch.from_numpy(random_boxes(rng, n, c.image)).to(self.device)
            labels = torch.from_numpy(rng.integers(1, c.classes + 1, size=n)).to(self.device)
            targets.append({"boxes": boxes, "labels": labels})
        return images, targets

    def train_step(self, batch):
        images, targets = batch
        loss_dict = self.model(images, targets)
        losses = sum(loss for loss in loss_dict.values())
        loss_value = losses.item()
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"Loss is {loss_value}, stopping training: {loss_dict}")
        self.optimizer.zero_grad()
        losses.backward()
        self.optimizer.step()
        log.debug("loss %.4f %s", loss_value, {k: round(v.item(), 4) for k, v in loss_dict.items()})
        return losses.detach()


def build(config="small", device="cpu", seed=0):
    return FasterRCNN(config, device, seed)
