"""Box utilities shared by the detection programs (faster_rcnn, yolov3); not a program.

    iou = box_iou(a, b)                 # (N, 4) x (M, 4) xyxy -> (N, M)
    keep = nms_numpy(boxes, scores, 0.7)  # greedy NMS on the host, as py-faster-rcnn did
    deltas = BoxCoder((1, 1, 1, 1)).encode(gt, anchors); boxes = coder.decode(deltas, anchors)
"""
import math

import numpy as np
import torch


def box_area(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1, boxes2):
    area1, area2 = box_area(boxes1), box_area(boxes2)
    lt = torch.max(boxes1[:, None, :2], boxes2[:, :2])
    rb = torch.min(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    return inter / (area1[:, None] + area2 - inter)


def nms_numpy(dets, scores, thresh):
    """Greedy non-maximum suppression on numpy arrays (the py_cpu_nms of py-faster-rcnn)."""
    x1, y1, x2, y2 = dets[:, 0], dets[:, 1], dets[:, 2], dets[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    order = scores.argsort(kind="stable")[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])
        inter = np.maximum(0.0, xx2 - xx1) * np.maximum(0.0, yy2 - yy1)
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[np.where(ovr <= thresh)[0] + 1]
    return np.array(keep, dtype=np.int64)


class BoxCoder:
    """Encodes boxes as (dx, dy, dw, dh) offsets from reference boxes, and back."""

    def __init__(self, weights, bbox_xform_clip=math.log(1000.0 / 16)):
        self.weights = weights
        self.bbox_xform_clip = bbox_xform_clip

    def encode(self, gt, ref):
        wx, wy, ww, wh = self.weights
        ref_w, ref_h = ref[:, 2] - ref[:, 0], ref[:, 3] - ref[:, 1]
        ref_x, ref_y = ref[:, 0] + 0.5 * ref_w, ref[:, 1] + 0.5 * ref_h
        gt_w, gt_h = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
        gt_x, gt_y = gt[:, 0] + 0.5 * gt_w, gt[:, 1] + 0.5 * gt_h
        return torch.stack((wx * (gt_x - ref_x) / ref_w, wy * (gt_y - ref_y) / ref_h,
                            ww * torch.log(gt_w / ref_w), wh * torch.log(gt_h / ref_h)), dim=1)

    def decode(self, deltas, ref):
        wx, wy, ww, wh = self.weights
        widths, heights = ref[:, 2] - ref[:, 0], ref[:, 3] - ref[:, 1]
        ctr_x, ctr_y = ref[:, 0] + 0.5 * widths, ref[:, 1] + 0.5 * heights
        dx, dy = deltas[:, 0] / wx, deltas[:, 1] / wy
        dw = (deltas[:, 2] / ww).clamp(max=self.bbox_xform_clip)
        dh = (deltas[:, 3] / wh).clamp(max=self.bbox_xform_clip)
        pred_ctr_x, pred_ctr_y = dx * widths + ctr_x, dy * heights + ctr_y
        pred_w, pred_h = torch.exp(dw) * widths, torch.exp(dh) * heights
        return torch.stack((pred_ctr_x - 0.5 * pred_w, pred_ctr_y - 0.5 * pred_h,
                            pred_ctr_x + 0.5 * pred_w, pred_ctr_y + 0.5 * pred_h), dim=1)


def random_boxes(rng, n, image_size, min_size=8):
    """n random xyxy boxes inside an image_size x image_size image (numpy float32)."""
    wh = rng.uniform(min_size, image_size * 0.6, size=(n, 2))
    xy = rng.uniform(0, 1, size=(n, 2)) * (image_size - wh)
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
