"""YOLOv3-style one-stage detection (Redmon & Farhadi 2018), after the popular PyTorch port.

The YOLO layers compute their own loss in forward, with the data-dependent target building
of the original: targets arrive as one (n, 6) tensor [image, class, x, y, w, h] with a
*variable number of rows* per batch; each target picks its best anchor by IoU, fills
object/no-object masks by advanced indexing, a Python loop clears the no-object mask where
any anchor overlaps enough, and the losses use boolean-mask indexing (`x[obj_mask]`), so
their sizes depend on the data. Metrics (recall, precision, class accuracy) are computed
with `.item()` on every step, as the original does for its logger.

What a user optimizes: the training step (`train_step`): forward with targets, backward,
Adam, and the metrics table.

    prog = build("small", "cpu")     # Darknet-style backbone, two detection scales
    loss = prog.run(prog.make_batch(0))
"""
import logging

import numpy as np
import torch
import torch.nn as nn

from .common import Program

log = logging.getLogger(__name__)


def conv_bn(cin, cout, k, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, bias=False), nn.BatchNorm2d(cout, momentum=0.01),
                         nn.LeakyReLU(0.1))


class Residual(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = conv_bn(channels, channels // 2, 1)
        self.conv2 = conv_bn(channels // 2, channels, 3)

    def forward(self, x):
        return x + self.conv2(self.conv1(x))


def bbox_wh_iou(wh1, wh2):
    wh2 = wh2.t()
    w1, h1 = wh1[0], wh1[1]
    w2, h2 = wh2[0], wh2[1]
    inter_area = torch.min(w1, w2) * torch.min(h1, h2)
    union_area = (w1 * h1 + 1e-16) + w2 * h2 - inter_area
    return inter_area / union_area


def bbox_iou_xywh(box1, box2):
    b1_x1, b1_x2 = box1[:, 0] - box1[:, 2] / 2, box1[:, 0] + box1[:, 2] / 2
    b1_y1, b1_y2 = box1[:, 1] - box1[:, 3] / 2, box1[:, 1] + box1[:, 3] / 2
    b2_x1, b2_x2 = box2[:, 0] - box2[:, 2] / 2, box2[:, 0] + box2[:, 2] / 2
    b2_y1, b2_y2 = box2[:, 1] - box2[:, 3] / 2, box2[:, 1] + box2[:, 3] / 2
    inter = (torch.min(b1_x2, b2_x2) - torch.max(b1_x1, b2_x1)).clamp(min=0) * \
            (torch.min(b1_y2, b2_y2) - torch.max(b1_y1, b2_y1)).clamp(min=0)
    area1 = (b1_x2 - b1_x1) * (b1_y2 - b1_y1)
    area2 = (b2_x2 - b2_x1) * (b2_y2 - b2_y1)
    return inter / (area1 + area2 - inter + 1e-16)


def build_targets(pred_boxes, pred_cls, target, anchors, ignore_thres):
    nB, nA, nG, nC = pred_boxes.size(0), pred_boxes.size(1), pred_boxes.size(2), pred_cls.size(-1)
    device = pred_boxes.device
    obj_mask = torch.zeros(nB, nA, nG, nG, dtype=torch.bool, device=device)
    noobj_mask = torch.ones(nB, nA, nG, nG, dtype=torch.bool, device=device)
    class_mask = torch.zeros(nB, nA, nG, nG, device=device)
    iou_scores = torch.zeros(nB, nA, nG, nG, device=device)
    tx, ty, tw, th = (torch.zeros(nB, nA, nG, nG, device=device) for _ in range(4))
    tcls = torch.zeros(nB, nA, nG, nG, nC, device=device)

    target_boxes = target[:, 2:6] * nG  # to grid units
    gxy, gwh = target_boxes[:, :2], target_boxes[:, 2:]
    ious = torch.stack([bbox_wh_iou(anchor, gwh) for anchor in anchors])
    best_ious, best_n = ious.max(0)
    b, target_labels = target[:, :2].long().t()
    gx, gy = gxy.t()
    gw, gh = gwh.t()
    gi, gj = gxy.long().t()
    obj_mask[b, best_n, gj, gi] = 1
    noobj_mask[b, best_n, gj, gi] = 0
    # no-object mask is cleared where an anchor's IoU exceeds the ignore threshold
    for i, anchor_ious in enumerate(ious.t()):
        noobj_mask[b[i], anchor_ious > ignore_thres, gj[i], gi[i]] = 0
    tx[b, best_n, gj, gi] = gx - gx.floor()
    ty[b, best_n, gj, gi] = gy - gy.floor()
    tw[b, best_n, gj, gi] = torch.log(gw / anchors[best_n][:, 0] + 1e-16)
    th[b, best_n, gj, gi] = torch.log(gh / anchors[best_n][:, 1] + 1e-16)
    tcls[b, best_n, gj, gi, target_labels] = 1
    class_mask[b, best_n, gj, gi] = (pred_cls[b, best_n, gj, gi].argmax(-1) == target_labels).float()
    iou_scores[b, best_n, gj, gi] = bbox_iou_xywh(pred_boxes[b, best_n, gj, gi], target_boxes)
    tconf = obj_mask.float()
    return iou_scores, class_mask, obj_mask, noobj_mask, tx, ty, tw, th, tcls, tconf


class YOLOLayer(nn.Module):
    def __init__(self, anchors, num_classes, img_dim):
        super().__init__()
        self.anchors = anchors
        self.num_anchors = len(anchors)
        self.num_classes = num_classes
        self.ignore_thres = 0.5
        self.mse_loss = nn.MSELoss()
        self.bce_loss = nn.BCELoss()
        self.obj_scale, self.noobj_scale = 1, 100
        self.img_dim = img_dim
        self.metrics = {}

    def forward(self, x, targets):
        nB, nG = x.size(0), x.size(2)
        stride = self.img_dim / nG
        prediction = x.view(nB, self.num_anchors, self.num_classes + 5, nG, nG).permute(0, 1, 3, 4, 2).contiguous()
        px, py = torch.sigmoid(prediction[..., 0]), torch.sigmoid(prediction[..., 1])
        w, h = prediction[..., 2], prediction[..., 3]
        pred_conf = torch.sigmoid(prediction[..., 4])
        pred_cls = torch.sigmoid(prediction[..., 5:])

        grid_x = torch.arange(nG, device=x.device).repeat(nG, 1).view(1, 1, nG, nG).float()
        grid_y = torch.arange(nG, device=x.device).repeat(nG, 1).t().view(1, 1, nG, nG).float()
        scaled_anchors = torch.tensor([(a_w / stride, a_h / stride) for a_w, a_h in self.anchors],
                                      device=x.device)
        anchor_w = scaled_anchors[:, 0:1].view(1, self.num_anchors, 1, 1)
        anchor_h = scaled_anchors[:, 1:2].view(1, self.num_anchors, 1, 1)
        pred_boxes = torch.stack([px.detach() + grid_x, py.detach() + grid_y,
                                  torch.exp(w.detach()) * anchor_w, torch.exp(h.detach()) * anchor_h], -1)

        iou_scores, class_mask, obj_mask, noobj_mask, tx, ty, tw, th, tcls, tconf = build_targets(
            pred_boxes, pred_cls.detach(), targets, scaled_anchors, self.ignore_thres)
        # losses on the masked cells only (mask sizes depend on the targets)
        loss_x = self.mse_loss(px[obj_mask], tx[obj_mask])
        loss_y = self.mse_loss(py[obj_mask], ty[obj_mask])
        loss_w = self.mse_loss(w[obj_mask], tw[obj_mask])
        loss_h = self.mse_loss(h[obj_mask], th[obj_mask])
        loss_conf_obj = self.bce_loss(pred_conf[obj_mask], tconf[obj_mask])
        loss_conf_noobj = self.bce_loss(pred_conf[noobj_mask], tconf[noobj_mask])
        loss_conf = self.obj_scale * loss_conf_obj + self.noobj_scale * loss_conf_noobj
        loss_cls = self.bce_loss(pred_cls[obj_mask], tcls[obj_mask])
        total_loss = loss_x + loss_y + loss_w + loss_h + loss_conf + loss_cls

        # metrics, with .item() as the original logs them every batch
        cls_acc = 100 * class_mask[obj_mask].mean()
        conf50 = (pred_conf > 0.5).float()
        iou50 = (iou_scores > 0.5).float()
        detected_mask = conf50 * class_mask * tconf
        precision = torch.sum(iou50 * detected_mask) / (conf50.sum() + 1e-16)
        recall50 = torch.sum(iou50 * detected_mask) / (obj_mask.sum() + 1e-16)
        self.metrics = {"loss": total_loss.item(), "x": loss_x.item(), "conf": loss_conf.item(),
                        "cls": loss_cls.item(), "cls_acc": cls_acc.item(), "recall50": recall50.item(),
                        "precision": precision.item(), "grid_size": nG}
        return total_loss


class YOLOv3Model(nn.Module):
    """Darknet-style backbone; heads at strides 16 and 8 with a top-down upsample + concat route."""

    def __init__(self, width, num_classes, img_dim, anchors):
        super().__init__()
        w = width
        self.stem = conv_bn(3, w, 3)
        self.stage1 = nn.Sequential(conv_bn(w, 2 * w, 3, 2), Residual(2 * w))          # /2
        self.stage2 = nn.Sequential(conv_bn(2 * w, 4 * w, 3, 2), Residual(4 * w))      # /4
        self.stage3 = nn.Sequential(conv_bn(4 * w, 8 * w, 3, 2), Residual(8 * w), Residual(8 * w))    # /8
        self.stage4 = nn.Sequential(conv_bn(8 * w, 16 * w, 3, 2), Residual(16 * w), Residual(16 * w))  # /16
        out = 3 * (num_classes + 5)
        self.head16 = nn.Sequential(conv_bn(16 * w, 8 * w, 1), conv_bn(8 * w, 16 * w, 3))
        self.out16 = nn.Conv2d(16 * w, out, 1)
        self.route = conv_bn(16 * w, 4 * w, 1)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.head8 = nn.Sequential(conv_bn(12 * w, 4 * w, 1), conv_bn(4 * w, 8 * w, 3))
        self.out8 = nn.Conv2d(8 * w, out, 1)
        self.yolo_layers = nn.ModuleList([YOLOLayer(anchors[3:], num_classes, img_dim),
                                          YOLOLayer(anchors[:3], num_classes, img_dim)])

    def forward(self, x, targets):
        x8 = self.stage3(self.stage2(self.stage1(self.stem(x))))
        h16 = self.head16(self.stage4(x8))
        up = self.upsample(self.route(h16))
        h8 = self.head8(torch.cat([up, x8], 1))
        loss = 0
        for yolo, features in zip(self.yolo_layers, (self.out16(h16), self.out8(h8))):
            loss = loss + yolo(features, targets)
        return loss


class YOLOv3(Program):
    name = "yolov3"
    configs = {
        "small": dict(batch=2, image=64, width=8, classes=4, max_objects=4, lr=1e-3,
                      anchors=[(6, 8), (10, 14), (16, 12), (20, 28), (30, 22), (40, 40)]),
        "full": dict(batch=16, image=416, width=32, classes=80, max_objects=20, lr=1e-3,
                     anchors=[(10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119)]),
    }

    def setup(self):
        c = self.cfg
        self.model = YOLOv3Model(c.width, c.classes, c.image, c.anchors).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=c.lr)
        self.yolo_layers = self.model.yolo_layers  # metrics live here; kept unwrapped

    def make_batch(self, i):
        """Images and an (n, 6) target table; at most one object per coarse grid cell."""
        c, rng = self.cfg, self.numpy_rng(i)
        images = torch.rand(c.batch, 3, c.image, c.image, generator=self.generator(i))
        coarse = c.image // 16
        rows = []
        for b in range(c.batch):
            n = int(rng.integers(1, c.max_objects + 1))
            cells = rng.choice(coarse * coarse, size=min(n, coarse * coarse), replace=False)
            for cell in cells:
                cx = (cell % coarse + rng.uniform(0.1, 0.9)) / coarse
                cy = (cell // coarse + rng.uniform(0.1, 0.9)) / coarse
                w, h = rng.uniform(0.05, 0.6, size=2)
                rows.append([b, rng.integers(0, c.classes), cx, cy, w, h])
        targets = torch.from_numpy(np.array(rows, dtype=np.float32))
        return images.to(self.device), targets.to(self.device)

    def train_step(self, batch):
        imgs, targets = batch
        loss = self.model(imgs, targets)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        metric_table = [(name, [yolo.metrics.get(name, 0) for yolo in self.yolo_layers])
                        for name in ("loss", "cls_acc", "recall50", "precision")]
        log.debug("yolo metrics %s", metric_table)
        return loss.detach()


def build(config="small", device="cpu", seed=0):
    return YOLOv3(config, device, seed)
