"""SSD's box arithmetic (``bbox_util.cpp`` of weiliu89/caffe), on the host in float32.

Boxes are ``(K, 4)`` float32 arrays of normalized corners ``xmin, ymin,
xmax, ymax``. Like the fork, an inverted box has size 0 and two boxes that
only touch have overlap 0. The code types of ``PriorBoxParameter.CodeType``:

* CORNER:      box = prior + var·loc (each corner moves by itself);
* CENTER_SIZE: center = var₀₁·loc₀₁·prior_size + prior_center,
               size = exp(var₂₃·loc₂₃)·prior_size;
* CORNER_SIZE: box = prior + var·loc·prior_size.

With ``variance_encoded_in_target`` the variances are taken as 1. Encoding is
the inverse map (used by MultiBoxLoss for the regression targets).
"""

from __future__ import annotations

import numpy as np

from ...proto import caffe_pb2

__all__ = ["box_size", "jaccard", "jaccard_matrix", "decode", "encode", "nms_fast", "nms",
           "CORNER", "CENTER_SIZE", "CORNER_SIZE"]

_P = caffe_pb2.PriorBoxParameter
CORNER, CENTER_SIZE, CORNER_SIZE = _P.CORNER, _P.CENTER_SIZE, _P.CORNER_SIZE
F32 = np.float32


def box_size(b: np.ndarray) -> np.ndarray:
    """Area of each box; 0 where xmax < xmin or ymax < ymin."""
    w, h = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
    return np.where((w < 0) | (h < 0), F32(0), w * h).astype(F32)


def jaccard_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (A, 4) with every box of ``b`` (B, 4): (A, B)."""
    a, b = a[:, None, :], b[None, :, :]
    apart = (b[..., 0] > a[..., 2]) | (b[..., 2] < a[..., 0]) | (b[..., 1] > a[..., 3]) \
        | (b[..., 3] < a[..., 1])
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    inter = (iw * ih).astype(F32)
    union = box_size(a) + box_size(b) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = (inter / union).astype(F32)
    return np.where(apart | (iw <= 0) | (ih <= 0), F32(0), iou)


def jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box ``a`` (4,) with each box of ``b`` (B, 4)."""
    return jaccard_matrix(a[None], b)[0]


def _var(var: np.ndarray, in_target: bool) -> np.ndarray:
    return np.ones_like(var) if in_target else var


def decode(prior: np.ndarray, var: np.ndarray, loc: np.ndarray, code_type: int,
           variance_in_target: bool) -> np.ndarray:
    """Boxes from predicted offsets ``loc`` against ``prior`` (all (K, 4) float32)."""
    v = _var(var, variance_in_target).astype(F32)
    loc = loc.astype(F32)
    if code_type == CORNER:
        return (prior + v * loc).astype(F32)
    pw = prior[:, 2] - prior[:, 0]
    ph = prior[:, 3] - prior[:, 1]
    if code_type == CENTER_SIZE:
        pcx = ((prior[:, 0] + prior[:, 2]) / 2).astype(F32)
        pcy = ((prior[:, 1] + prior[:, 3]) / 2).astype(F32)
        cx = v[:, 0] * loc[:, 0] * pw + pcx
        cy = v[:, 1] * loc[:, 1] * ph + pcy
        w = (np.exp(v[:, 2] * loc[:, 2]) * pw).astype(F32)
        h = (np.exp(v[:, 3] * loc[:, 3]) * ph).astype(F32)
        return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(F32)
    if code_type == CORNER_SIZE:
        size = np.stack([pw, ph, pw, ph], axis=1)
        return (prior + v * loc * size).astype(F32)
    raise ValueError(f"unknown code_type {code_type}")


def encode(prior: np.ndarray, var: np.ndarray, gt: np.ndarray, code_type: int,
           variance_in_target: bool) -> np.ndarray:
    """Regression targets of boxes ``gt`` against ``prior`` (the inverse of :func:`decode`)."""
    v = _var(var, variance_in_target).astype(F32)
    if code_type == CORNER:
        return ((gt - prior) / v).astype(F32)
    pw = prior[:, 2] - prior[:, 0]
    ph = prior[:, 3] - prior[:, 1]
    if code_type == CENTER_SIZE:
        pcx, pcy = (prior[:, 0] + prior[:, 2]) / 2, (prior[:, 1] + prior[:, 3]) / 2
        gw, gh = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
        gcx, gcy = (gt[:, 0] + gt[:, 2]) / 2, (gt[:, 1] + gt[:, 3]) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.stack([(gcx - pcx) / pw / v[:, 0], (gcy - pcy) / ph / v[:, 1],
                            np.log(gw / pw) / v[:, 2], np.log(gh / ph) / v[:, 3]], axis=1)
        return out.astype(F32)
    if code_type == CORNER_SIZE:
        size = np.stack([pw, ph, pw, ph], axis=1)
        return ((gt - prior) / size / v).astype(F32)
    raise ValueError(f"unknown code_type {code_type}")


def _descending(scores: np.ndarray) -> np.ndarray:
    """Indices by descending score; equal scores keep index order (std::stable_sort)."""
    return np.argsort(-scores.astype(np.float64), kind="stable")


def nms_fast(boxes: np.ndarray, scores: np.ndarray, score_threshold: float, nms_threshold: float,
             eta: float, top_k: int) -> list[int]:
    """``ApplyNMSFast``: greedy NMS over boxes scoring above the threshold, best first.

    A candidate is kept when its IoU with every kept box is ≤ the (adaptive)
    threshold; after each kept box the threshold is multiplied by ``eta``
    while it is above 0.5.
    """
    cand = np.nonzero(scores > score_threshold)[0]
    cand = cand[_descending(scores[cand])]
    if top_k > -1:
        cand = cand[:top_k]
    kept: list[int] = []
    if len(cand) == 0:
        return kept
    iou = jaccard_matrix(boxes[cand], boxes[cand]) if len(cand) <= 2048 else None
    threshold = nms_threshold
    kept_pos: list[int] = []
    for pos, idx in enumerate(cand):
        if kept_pos:
            ov = iou[pos, kept_pos] if iou is not None else jaccard(boxes[idx], boxes[cand[kept_pos]])
            keep = bool(np.all(ov <= threshold))
        else:
            keep = True
        if keep:
            kept.append(int(idx))
            kept_pos.append(pos)
            if eta < 1 and threshold > 0.5:
                threshold *= eta
    return kept


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, top_k: int) -> list[int]:
    """``ApplyNMS`` (used by hard example mining): boxes smaller than 1e-5 are dropped;
    a box is removed when its IoU with a kept box exceeds the threshold; at most top_k kept."""
    order = list(_descending(scores))
    if top_k > -1:
        order = order[:top_k]
    sizes = box_size(boxes)
    kept: list[int] = []
    while order:
        best = order.pop(0)
        if sizes[best] < 1e-5:
            continue
        kept.append(int(best))
        if top_k > -1 and len(kept) >= top_k:
            break
        if order:
            rest = np.asarray(order)
            ov = jaccard(boxes[best], boxes[rest])
            order = [int(i) for i, o, s in zip(rest, ov, sizes[rest]) if s >= 1e-5 and o <= threshold]
    return kept
