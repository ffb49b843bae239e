"""MultiBoxLoss's host-side bookkeeping: ground truth, matching, hard example mining
(``FindMatches``, ``MineHardExamples``, ``GetGroundTruth`` of the SSD fork's bbox_util.cpp).

Everything here works on detached float32 numpy copies and returns indices;
the loss itself (and so the gradient) is computed with torch in
:mod:`.multibox_loss`.

A match map is ``{label: int array (P,)}`` per image: the ground-truth index
a prior is matched to, -1 for none, -2 for a prior ignored as crossing the
image boundary. Labels are -1 when locations are shared, else the classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...proto import caffe_pb2
from . import _bbox

_M = caffe_pb2.MultiBoxLossParameter
FLT_MIN = np.float32(1.17549435e-38)


@dataclass
class GroundTruth:
    boxes: np.ndarray  # (G, 4) float32
    labels: np.ndarray  # (G,) int


@dataclass
class Matches:
    indices: list[dict[int, np.ndarray]] = field(default_factory=list)
    overlaps: list[dict[int, np.ndarray]] = field(default_factory=list)
    negatives: list[list[int]] = field(default_factory=list)
    num_matches: int = 0
    num_negs: int = 0


def ground_truth(gt: np.ndarray, background: int, use_difficult: bool, where: str) -> dict[int, GroundTruth]:
    """Rows ``[image, label, instance, xmin, ymin, xmax, ymax, difficult]`` by image.

    Rows with image -1 are padding. A background-labelled box is an error,
    as in the fork.
    """
    rows = gt.reshape(-1, 8).astype(np.float32)
    out: dict[int, list[tuple[np.ndarray, int]]] = {}
    for r in rows:
        item = int(r[0])
        if item == -1:
            continue
        label = int(r[1])
        if label == background:
            raise ValueError(f"{where}: found the background label {background} in the ground truth")
        if not use_difficult and bool(r[7]):
            continue
        out.setdefault(item, []).append((r[3:7].copy(), label))
    return {k: GroundTruth(np.stack([b for b, _ in v]).astype(np.float32),
                           np.array([lab for _, lab in v], dtype=np.int64))
            for k, v in sorted(out.items())}


def _cross_boundary(b: np.ndarray) -> np.ndarray:
    return np.asarray(((b < 0) | (b > 1)).any(axis=1))


def match_boxes(gt: GroundTruth, preds: np.ndarray, label: int, match_type: int, threshold: float,
                ignore_cross: bool) -> tuple[np.ndarray, np.ndarray]:
    """``MatchBBox``: bipartite matching, then (PER_PREDICTION) every remaining
    prediction to its best ground truth with overlap ≥ threshold."""
    num_pred = len(preds)
    indices = np.full(num_pred, -1, dtype=np.int64)
    overlaps = np.zeros(num_pred, dtype=np.float32)
    gt_idx = np.arange(len(gt.labels)) if label == -1 else np.nonzero(gt.labels == label)[0]
    if len(gt_idx) == 0:
        return indices, overlaps
    ignored = _cross_boundary(preds) if ignore_cross else np.zeros(num_pred, bool)
    indices[ignored] = -2
    iou = _bbox.jaccard_matrix(preds, gt.boxes[gt_idx])
    present = (iou > 1e-6) & ~ignored[:, None]  # the pairs the fork keeps in its overlap map
    overlaps = np.where(present, iou, 0).max(axis=1).astype(np.float32)
    pool = np.ones(len(gt_idx), bool)
    free = indices == -1
    while pool.any():
        cand = np.where(present & free[:, None] & pool[None, :], iou, -1.0)
        flat = int(np.argmax(cand))  # first maximum in (prediction, ground truth) order
        i, j = divmod(flat, cand.shape[1])
        if cand[i, j] < 0:
            break
        indices[i], overlaps[i] = gt_idx[j], iou[i, j]
        free[i] = False
        pool[j] = False
    if match_type == _M.PER_PREDICTION:
        cand = np.where(present & (iou >= threshold), iou, -1.0)
        best = cand.argmax(axis=1)
        rows = np.nonzero(free & (cand.max(axis=1) >= 0) & present.any(axis=1))[0]
        indices[rows] = gt_idx[best[rows]]
        overlaps[rows] = iou[rows, best[rows]]
    return indices, overlaps


def find_matches(p: caffe_pb2.MultiBoxLossParameter, loc: np.ndarray, gts: dict[int, GroundTruth],
                 prior: np.ndarray, var: np.ndarray, loc_classes: int) -> Matches:
    """``FindMatches`` for every image; ``loc`` is (N, P, L, 4)."""
    m = Matches()
    for i in range(loc.shape[0]):
        idx: dict[int, np.ndarray] = {}
        ovl: dict[int, np.ndarray] = {}
        gt = gts.get(i)
        if gt is not None:
            if not p.use_prior_for_matching:
                for c in range(loc_classes):
                    label = -1 if p.share_location else c
                    if not p.share_location and label == p.background_label_id:
                        continue
                    boxes = _bbox.decode(prior, var, loc[i, :, c], p.code_type,
                                         p.encode_variance_in_target)
                    idx[label], ovl[label] = match_boxes(gt, boxes, label, p.match_type,
                                                         p.overlap_threshold, p.ignore_cross_boundary_bbox)
            else:
                t_idx, t_ovl = match_boxes(gt, prior, -1, p.match_type, p.overlap_threshold,
                                           p.ignore_cross_boundary_bbox)
                if p.share_location:
                    idx[-1], ovl[-1] = t_idx, t_ovl
                else:
                    for c in range(loc_classes):
                        if c == p.background_label_id:
                            continue
                        keep = (t_idx > -1) & (gt.labels[np.maximum(t_idx, 0)] == c)
                        idx[c] = np.where(keep, t_idx, -1)
                        ovl[c] = t_ovl.copy()
        m.indices.append(dict(sorted(idx.items())))
        m.overlaps.append(dict(sorted(ovl.items())))
    m.num_matches = sum(int((v > -1).sum()) for d in m.indices for v in d.values())
    return m


def conf_losses(conf: np.ndarray, labels: np.ndarray, conf_type: int) -> np.ndarray:
    """Per-prior confidence loss for the given target labels (``ComputeConfLoss``): (P,)."""
    x = conf.astype(np.float32)
    if conf_type == _M.SOFTMAX:
        z = x - x.max(axis=1, keepdims=True)
        e = np.exp(z)
        prob = e[np.arange(len(x)), labels] / e.sum(axis=1)
        return -np.log(np.maximum(prob, FLT_MIN)).astype(np.float32)
    target = np.zeros_like(x)
    ok = (labels >= 0) & (labels < x.shape[1])
    target[np.nonzero(ok)[0], labels[ok]] = 1
    pos = (x >= 0).astype(np.float32)
    return -(x * (target - pos) - np.log1p(np.exp(x - 2 * x * pos))).sum(axis=1).astype(np.float32)


def smooth_l1_sum(d: np.ndarray, loc_type: int) -> np.ndarray:
    a = np.abs(d)
    if loc_type == _M.SMOOTH_L1:
        return np.where(a < 1, 0.5 * d * d, a - 0.5).sum(axis=-1).astype(np.float32)
    return (0.5 * d * d).sum(axis=-1).astype(np.float32)


def mine_hard_examples(p: caffe_pb2.MultiBoxLossParameter, m: Matches, conf: np.ndarray,
                       loc: np.ndarray, gts: dict[int, GroundTruth], prior: np.ndarray,
                       var: np.ndarray, loc_targets) -> None:  # type: ignore[no-untyped-def]
    """``MineHardExamples``: choose negatives (MAX_NEGATIVE) or hard examples
    (HARD_EXAMPLE, which may also drop positives); fills ``m.negatives``."""
    n, num_priors = conf.shape[:2]
    m.negatives = [[] for _ in range(n)]
    if p.mining_type == _M.NONE:
        return
    nms_threshold = p.nms_param.nms_threshold if p.HasField("nms_param") else 0.0
    top_k = p.nms_param.top_k if p.HasField("nms_param") and p.nms_param.HasField("top_k") else -1
    hard = p.mining_type == _M.HARD_EXAMPLE
    for i in range(n):
        labels = np.full(num_priors, p.background_label_id, dtype=np.int64)
        for idx in m.indices[i].values():  # a prior is matched to one ground truth at most
            matched = (idx > -1) & (labels == p.background_label_id)
            labels[matched] = gts[i].labels[idx[matched]]
        loss = conf_losses(conf[i], labels, p.conf_loss_type)
        if hard:
            loss = loss + loc_targets(i)
        negatives: list[int] = []
        for label, idx in m.indices[i].items():
            ovl = m.overlaps[i][label]
            eligible = np.ones(num_priors, bool) if hard else (idx == -1) & (ovl < p.neg_overlap)
            cand = np.nonzero(eligible)[0]
            if hard:
                num_sel = min(p.sample_size, len(cand))
            else:
                num_sel = min(int(np.float32(int((idx > -1).sum())) * np.float32(p.neg_pos_ratio)),
                              len(cand))
            if p.HasField("nms_param") and nms_threshold > 0:
                if p.use_prior_for_nms:
                    boxes = prior[cand]
                else:
                    boxes = _bbox.decode(prior, var, loc[i, :, 0 if p.share_location else label],
                                         p.code_type, p.encode_variance_in_target)[cand]
                kept = _bbox.nms(boxes, loss[cand], nms_threshold, top_k)
                selected = set(int(cand[k]) for k in kept[:num_sel])
            else:
                order = np.argsort(-loss[cand].astype(np.float64), kind="stable")
                selected = set(int(cand[k]) for k in order[:num_sel])
            for j in range(num_priors):
                if idx[j] > -1:
                    if hard and j not in selected:
                        idx[j] = -1
                        m.num_matches -= 1
                elif idx[j] == -1 and j in selected:
                    negatives.append(j)
                    m.num_negs += 1
        m.negatives[i] = negatives
