"""DetectionOutput: SSD's box decoding and per-class NMS (``detection_output_layer.cpp``).

Bottoms: location offsets (N, P·L·4), confidences (N, P·num_classes) (usually
after a Softmax), priors (1, 2, P·4) from PriorBox (L = 1 with
``share_location``, else num_classes; per prior the L boxes follow each
other, then the classes' scores). Top: (1, 1, K, 7), one row
``[image, label, score, xmin, ymin, xmax, ymax]`` per detection.

Per image: the offsets are decoded against the priors (``code_type``,
variances; no clipping); for every class but ``background_label_id`` the
boxes scoring above ``confidence_threshold`` go through greedy NMS
(``nms_param``: threshold, ``top_k`` candidates, adaptive ``eta``); if more
than ``keep_top_k`` (> -1) survive over all classes, the best keep_top_k do.
Rows are grouped by image, then by label (ascending), then by descending
score. With no detection at all the top is (1, 1, N, 7) of -1 with the image
index in column 0, as in the fork.

No backward (the fork has none). Saving results to files and visualizing
(``save_output_param`` with an output directory, ``visualize``) are not
implemented: a warning says so and the top is still computed.

Differences from Caffe: equal scores keep index order (the fork's keep_top_k
uses an unstable sort, so ties may come out in another order there).
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import FLT_MAX, Layer, LayerContext, Shape
from ..registry import register_layer
from . import _bbox

_log = logging.getLogger("caffe_compat")


def prior_arrays(prior: np.ndarray, num_priors: int) -> tuple[np.ndarray, np.ndarray]:
    """(boxes, variances) of the PriorBox top, each (P, 4) float32."""
    flat = prior.reshape(-1).astype(np.float32)
    return flat[: num_priors * 4].reshape(-1, 4), flat[num_priors * 4: num_priors * 8].reshape(-1, 4)


def num_priors_of(shape: Shape) -> int:
    # The fork reads bottom[2]->height() / 4: axis 2 of the (1, 2, P·4) top.
    return (shape[2] if len(shape) > 2 else 1) // 4


@register_layer("DetectionOutput")
class DetectionOutput(Layer):
    exact_num_bottom = 3
    exact_num_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.detection_output_param
        if not p.HasField("num_classes"):
            raise self.error("detection_output_param: num_classes is required")
        self.num_classes = p.num_classes
        self.share_location = p.share_location
        self.loc_classes = 1 if self.share_location else self.num_classes
        self.background = p.background_label_id
        self.code_type = p.code_type
        self.variance_in_target = p.variance_encoded_in_target
        self.keep_top_k = p.keep_top_k
        self.threshold = p.confidence_threshold if p.HasField("confidence_threshold") else -FLT_MAX
        self.nms_threshold = p.nms_param.nms_threshold
        self.eta = p.nms_param.eta
        self.top_k = p.nms_param.top_k if p.nms_param.HasField("top_k") else -1
        if self.nms_threshold < 0:
            raise self.error(f"nms_threshold must be non-negative, got {self.nms_threshold:g}")
        if not 0 < self.eta <= 1:
            raise self.error(f"nms_param.eta must be in (0, 1], got {self.eta:g}")
        save = p.save_output_param
        if save.output_directory or p.visualize:
            _log.warning("%s: saving detections to files and visualizing are not implemented; "
                         "the detections are still computed", self.where)
        self._check(bottom_shapes)

    def _check(self, shapes: Sequence[Shape]) -> None:
        loc, conf, prior = shapes
        per = lambda s: int(np.prod(s[1:])) if len(s) > 1 else 1  # noqa: E731
        p = num_priors_of(prior)
        if loc[0] != conf[0]:
            raise self.error(f"location {list(loc)} and confidence {list(conf)} bottoms need the "
                             "same first dimension", ShapeError)
        if per(loc) != p * self.loc_classes * 4:
            raise self.error(f"{p} priors need {p * self.loc_classes * 4} location values per image, "
                             f"bottom 0 {list(loc)} has {per(loc)}", ShapeError)
        if per(conf) != p * self.num_classes:
            raise self.error(f"{p} priors and {self.num_classes} classes need "
                             f"{p * self.num_classes} confidences per image, bottom 1 {list(conf)} "
                             f"has {per(conf)}", ShapeError)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        self._check(bottom_shapes)
        return [(1, 1, 1, 7)]  # the fork's placeholder; forward knows the count

    def forward(self, loc: torch.Tensor, conf: torch.Tensor,  # type: ignore[override]
                prior: torch.Tensor) -> torch.Tensor:
        if loc.is_meta:
            return torch.empty((1, 1, 1, 7), device="meta")
        self._check([tuple(loc.shape), tuple(conf.shape), tuple(prior.shape)])
        rows = self.detect(loc.detach().cpu().numpy(), conf.detach().cpu().numpy(),
                           prior.detach().cpu().numpy())
        return torch.from_numpy(rows).to(device=loc.device, dtype=loc.dtype)

    def detect(self, loc: np.ndarray, conf: np.ndarray, prior: np.ndarray) -> np.ndarray:
        n = loc.shape[0]
        p = num_priors_of(prior.shape)
        boxes, var = prior_arrays(prior, p)
        loc = loc.reshape(n, p, self.loc_classes, 4).astype(np.float32)
        conf = conf.reshape(n, p, self.num_classes).astype(np.float32)
        out: list[np.ndarray] = []
        for i in range(n):
            decoded = {c: _bbox.decode(boxes, var, loc[i, :, c], self.code_type, self.variance_in_target)
                       for c in range(self.loc_classes)
                       if self.share_location or c != self.background}
            kept: dict[int, list[int]] = {}
            for c in range(self.num_classes):
                if c == self.background:
                    continue
                b = decoded[0 if self.share_location else c]
                kept[c] = _bbox.nms_fast(b, conf[i, :, c], self.threshold, self.nms_threshold,
                                         self.eta, self.top_k)
            total = sum(len(v) for v in kept.values())
            if self.keep_top_k > -1 and total > self.keep_top_k:
                pairs = [(c, j) for c in sorted(kept) for j in kept[c]]
                scores = np.array([conf[i, j, c] for c, j in pairs], dtype=np.float32)
                best = np.argsort(-scores.astype(np.float64), kind="stable")[: self.keep_top_k]
                kept = {}
                for k in best:
                    c, j = pairs[k]
                    kept.setdefault(c, []).append(j)
            for c in sorted(kept):
                b = decoded[0 if self.share_location else c]
                for j in kept[c]:
                    out.append(np.array([i, c, conf[i, j, c], *b[j]], dtype=np.float32))
        if not out:
            empty = np.full((n, 7), -1.0, dtype=np.float32)
            empty[:, 0] = np.arange(n)
            return empty[None, None]
        return np.stack(out)[None, None]
