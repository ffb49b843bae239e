"""MultiBoxLoss: SSD's training loss (``multibox_loss_layer.cpp`` + ``bbox_util.cpp``).

Bottoms: location offsets (N, P·L·4), confidences (N, P·C), priors (1, 2,
P·4), ground truth (1, 1, G, 8) with rows ``[image, label, instance, xmin,
ymin, xmax, ymax, difficult]`` (image -1: padding). Top: the scalar loss.

1. Match priors (``use_prior_for_matching``, default) or decoded predictions
   to the ground truth: bipartite, then PER_PREDICTION for IoU ≥
   ``overlap_threshold`` (see :mod:`._multibox_match`).
2. Mine (``mining_type``): MAX_NEGATIVE picks, per image, the
   int(num_pos·``neg_pos_ratio``) unmatched priors with IoU < ``neg_overlap``
   of highest confidence loss; HARD_EXAMPLE picks ``sample_size`` priors by
   confidence + localization loss (and drops unpicked positives); optional NMS.
3. Localization loss over the M matched priors, Σ SmoothL1(pred − target)
   (L2: Σ ½(pred − target)²), targets encoded per ``code_type``;
   confidence loss Σ −log(max(softmax, FLT_MIN)) (LOGISTIC: sigmoid cross
   entropy) over the positives and mined negatives, or over every prior when
   mining is NONE.
4. loss = loc_weight · L_loc / n + L_conf / n, n = max(1, normalizer) from
   ``loss_param`` (default VALID: M). A term is counted only when its bottom
   propagates down (``propagate_down``, default true, true, false, false).

Gradients go to the location and confidence bottoms only (priors and ground
truth get none); the softmax gradient is the unclamped p − onehot, as in the
fork's SoftmaxWithLoss.

Differences from Caffe: candidates of equal loss keep index order when
mined (the fork uses an unstable sort).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import LayerContext, LossLayer, Shape
from ..registry import register_layer
from . import _bbox
from . import _multibox_match as mm
from .detection_output import num_priors_of, prior_arrays

_M = caffe_pb2.MultiBoxLossParameter
_L = caffe_pb2.LossParameter
_LOG_FLT_MIN = 87.33654475055310898657  # -log(FLT_MIN): where Caffe clamps the probability


@register_layer("MultiBoxLoss")
class MultiBoxLoss(LossLayer):
    exact_num_bottom = 4
    no_force_backward = frozenset({2, 3})

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = self.p = param.multibox_loss_param
        if not p.HasField("num_classes"):
            raise self.error("multibox_loss_param: num_classes is required")
        if p.num_classes < 1:
            raise self.error(f"num_classes must be at least 1, got {p.num_classes}")
        self.loc_classes = 1 if p.share_location else p.num_classes
        if p.map_object_to_agnostic and p.num_classes != (2 if p.background_label_id >= 0 else 1):
            raise self.error("map_object_to_agnostic needs num_classes 2 (1 without background), "
                             f"got {p.num_classes}")
        self.mining = p.mining_type != _M.NONE
        if p.HasField("do_neg_mining") and p.do_neg_mining != self.mining:
            raise self.error(f"do_neg_mining ({p.do_neg_mining}) contradicts mining_type "
                             f"{_M.MiningType.Name(p.mining_type)} (do_neg_mining is deprecated)")
        if self.mining and not p.share_location:
            raise self.error("negative mining needs share_location: true")
        if p.mining_type == _M.HARD_EXAMPLE and p.sample_size <= 0:
            raise self.error(f"HARD_EXAMPLE mining needs sample_size > 0, got {p.sample_size}")
        lp = param.loss_param
        if not lp.HasField("normalization") and lp.HasField("normalize"):
            self.normalization = _L.VALID if lp.normalize else _L.BATCH_SIZE
        else:
            self.normalization = lp.normalization
        pd = list(param.propagate_down) or [True, True, False, False]
        self.count_loc, self.count_conf = bool(pd[0]), bool(pd[1])
        self._check(bottom_shapes)

    def _check(self, shapes: Sequence[Shape]) -> None:
        loc, conf, prior, _ = shapes
        per = lambda s: int(np.prod(s[1:])) if len(s) > 1 else 1  # noqa: E731
        num_p = num_priors_of(prior)
        if loc[0] != conf[0]:
            raise self.error(f"location {list(loc)} and confidence {list(conf)} bottoms need the "
                             "same first dimension", ShapeError)
        if per(loc) != num_p * self.loc_classes * 4 or per(conf) != num_p * self.p.num_classes:
            raise self.error(f"{num_p} priors need {num_p * self.loc_classes * 4} location and "
                             f"{num_p * self.p.num_classes} confidence values per image, got bottoms "
                             f"{list(loc)} and {list(conf)}", ShapeError)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        self._check(bottom_shapes)
        return [()]

    def _normalizer(self, n: int, num_priors: int, valid: int) -> float:
        mode = self.normalization
        value = {_L.FULL: n * num_priors, _L.VALID: valid, _L.BATCH_SIZE: n, _L.NONE: 1}[mode]
        return float(max(1.0, value))

    def forward(self, loc: torch.Tensor, conf: torch.Tensor,  # type: ignore[override]
                prior: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        if loc.is_meta:
            return torch.empty((), device="meta")
        p = self.p
        self._check([tuple(t.shape) for t in (loc, conf, prior, gt)])
        n, num_p, ncls = loc.shape[0], num_priors_of(tuple(prior.shape)), p.num_classes
        loc4 = loc.reshape(n, num_p, self.loc_classes, 4)
        confs = conf.reshape(n, num_p, ncls)
        boxes, var = prior_arrays(prior.detach().cpu().numpy(), num_p)
        loc_np = loc4.detach().cpu().numpy().astype(np.float32)
        gts = mm.ground_truth(gt.detach().cpu().numpy(), p.background_label_id, p.use_difficult_gt,
                              self.where)
        m = mm.find_matches(p, loc_np, gts, boxes, var, self.loc_classes)

        def loc_loss_per_prior(i: int) -> np.ndarray:  # for HARD_EXAMPLE mining
            out = np.zeros(num_p, dtype=np.float32)
            for label, idx in m.indices[i].items():
                j = np.nonzero(idx > -1)[0]
                if len(j):
                    pred, target, _ = self._targets(loc_np[i], label, j, idx[j], gts[i], boxes, var)
                    out[j] = mm.smooth_l1_sum(pred - target, p.loc_loss_type)
            return out

        mm.mine_hard_examples(p, m, confs.detach().cpu().numpy(), loc_np, gts, boxes, var,
                              loc_loss_per_prior)
        normalizer = self._normalizer(n, num_p, m.num_matches)
        total = loc.sum() * 0.0 + conf.sum() * 0.0  # keeps the graph when nothing is matched
        if self.count_loc and m.num_matches >= 1:
            total = total + p.loc_weight * self._loc_loss(loc4, loc_np, m, gts, boxes, var) / normalizer
        if self.count_conf:
            total = total + self._conf_loss(confs, m, gts) / normalizer
        return total

    # ------------------------------------------------------------ localization
    def _targets(self, loc_i: np.ndarray, label: int, j: np.ndarray, g: np.ndarray,
                 gt: mm.GroundTruth, boxes: np.ndarray, var: np.ndarray):  # type: ignore[no-untyped-def]
        """(prediction, target, prediction-replaced mask) of matched priors j (EncodeLocPrediction)."""
        p = self.p
        c = 0 if p.share_location else label
        target = _bbox.encode(boxes[j], var[j], gt.boxes[g], p.code_type, p.encode_variance_in_target)
        pred = loc_i[j, c]
        replaced = np.zeros_like(pred, dtype=bool)
        if p.bp_inside:
            match = boxes[j] if p.use_prior_for_matching else _bbox.decode(
                boxes[j], var[j], pred, p.code_type, p.encode_variance_in_target)
            replaced = (match < 0) | (match > 1)  # that coordinate gets no gradient
            pred = np.where(replaced, target, pred)
        if p.encode_variance_in_target:
            pred, target = pred / var[j], target / var[j]
        return pred.astype(np.float32), target.astype(np.float32), replaced

    def _loc_loss(self, loc4: torch.Tensor, loc_np: np.ndarray, m: mm.Matches,
                  gts: dict[int, mm.GroundTruth], boxes: np.ndarray, var: np.ndarray) -> torch.Tensor:
        p = self.p
        preds, targets = [], []
        for i, per_label in enumerate(m.indices):
            for label, idx in per_label.items():
                j = np.nonzero(idx > -1)[0]
                if not len(j):
                    continue
                _, target, replaced = self._targets(loc_np[i], label, j, idx[j], gts[i], boxes, var)
                c = 0 if p.share_location else label
                pred = loc4[i, torch.as_tensor(j, device=loc4.device), c]
                t = torch.as_tensor(target, device=pred.device, dtype=pred.dtype)
                if p.encode_variance_in_target:
                    pred = pred / torch.as_tensor(var[j], device=pred.device, dtype=pred.dtype)
                if replaced.any():
                    pred = torch.where(torch.as_tensor(replaced, device=pred.device), t, pred)
                preds.append(pred)
                targets.append(t)
        d = torch.cat(preds) - torch.cat(targets)
        if p.loc_loss_type == _M.SMOOTH_L1:
            a = d.abs()
            return torch.where(a < 1, 0.5 * d * d, a - 0.5).sum()
        return (0.5 * d * d).sum()

    # -------------------------------------------------------------- confidence
    def _label(self, gts: dict[int, mm.GroundTruth], i: int, g: int) -> int:
        p = self.p
        return p.background_label_id + 1 if p.map_object_to_agnostic else int(gts[i].labels[g])

    def _conf_rows(self, confs: torch.Tensor, m: mm.Matches,
                   gts: dict[int, mm.GroundTruth]) -> tuple[torch.Tensor, np.ndarray]:
        """(confidence rows, target label per row) in EncodeConfPrediction's order."""
        n, num_p = confs.shape[:2]
        bg = self.p.background_label_id
        if not self.mining:  # every prior of every image, background unless matched
            labels = np.full((n, num_p), bg, dtype=np.int64)
            for i, per_label in enumerate(m.indices):
                for idx in per_label.values():
                    for j in np.nonzero(idx > -1)[0]:
                        labels[i, j] = self._label(gts, i, idx[j])
            return confs.reshape(n * num_p, -1), labels.reshape(-1)
        picked: list[tuple[int, int, int]] = []  # (image, prior, label)
        for i, per_label in enumerate(m.indices):
            for idx in per_label.values():  # positives, then the mined negatives
                picked += [(i, int(j), self._label(gts, i, idx[j])) for j in np.nonzero(idx > -1)[0]]
            picked += [(i, j, bg) for j in m.negatives[i]]
        img, pri, lab = ([r[k] for r in picked] for k in range(3))
        dev = confs.device
        rows = confs[torch.as_tensor(img, dtype=torch.long, device=dev),
                     torch.as_tensor(pri, dtype=torch.long, device=dev)]
        return rows, np.asarray(lab, dtype=np.int64)

    def _logistic_targets(self, rows_shape: tuple[int, int], labels: np.ndarray,
                          m: mm.Matches, gts: dict[int, mm.GroundTruth], num_p: int) -> np.ndarray:
        """The fork's sigmoid targets: filled with background_label_id, then 1s set."""
        p = self.p
        bg, ncls = p.background_label_id, p.num_classes
        target = np.full(rows_shape[0] * ncls, float(bg), dtype=np.float32)
        if self.mining:
            pos = labels != bg
            rows = np.nonzero(pos)[0]
            target[rows * ncls + labels[pos]] = 1.0
            if 0 <= bg < ncls:
                target[np.nonzero(~pos)[0] * ncls + bg] = 1.0
        else:
            # Without mining the fork advances its target pointer by num_priors (not
            # num_priors * num_classes) per image; the offsets are reproduced as they are.
            for i, per_label in enumerate(m.indices):
                for idx in per_label.values():
                    for j in np.nonzero(idx > -1)[0]:
                        target[i * num_p + j * ncls + self._label(gts, i, idx[j])] = 1.0
        return target.reshape(rows_shape)

    def _conf_loss(self, confs: torch.Tensor, m: mm.Matches, gts: dict[int, mm.GroundTruth]) -> torch.Tensor:
        p = self.p
        rows, labels = self._conf_rows(confs, m, gts)
        if rows.shape[0] == 0:
            return confs.sum() * 0.0
        dev = rows.device
        if p.conf_loss_type == _M.SOFTMAX:
            if (labels < 0).any() or (labels >= p.num_classes).any():
                raise self.error(f"confidence target labels must lie in [0, {p.num_classes}), got "
                                 f"{sorted(set(labels.tolist()))}")
            nll = -F.log_softmax(rows, dim=1).gather(1, torch.as_tensor(labels, device=dev)[:, None])
            # Caffe's loss clamps the probability at FLT_MIN; its gradient is the unclamped p - onehot.
            return (nll + (nll.clamp(max=_LOG_FLT_MIN) - nll).detach()).sum()
        target = self._logistic_targets((rows.shape[0], rows.shape[1]), labels, m, gts, confs.shape[1])
        t = torch.as_tensor(target, device=dev, dtype=rows.dtype)
        x = rows
        return (torch.clamp(x, min=0) - x * t + torch.log1p(torch.exp(-x.abs()))).sum()
