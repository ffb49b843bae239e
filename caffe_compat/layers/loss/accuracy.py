"""Accuracy: top-k classification accuracy (``accuracy_layer.cpp``).

Bottoms: scores (N, C, ...) with classes on ``axis`` (default 1) and labels
(one per position). Tops: the scalar accuracy and, optionally, per-class
accuracy (C,).

A position counts as correct when fewer than ``top_k`` other classes score
at least as high as the true class (ties count against). Positions whose
label is ``ignore_label`` are skipped; an empty count gives 0.

Differences from Caffe: out-of-range labels raise; with ``force_backward``
no gradient is sent to the bottoms (Caffe aborts).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape, canonical_axis
from ..registry import register_layer
from .softmax_loss import check_labels


@register_layer("Accuracy")
class Accuracy(Layer):
    exact_num_bottom = 2
    min_top = 1
    max_top = 2
    no_force_backward = frozenset({0, 1})

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.accuracy_param
        self.top_k = p.top_k
        self.axis = canonical_axis(p.axis, len(bottom_shapes[0]), self.where)
        self.ignore_label = p.ignore_label if p.HasField("ignore_label") else None
        c = bottom_shapes[0][self.axis]
        if self.top_k > c:
            raise self.error(f"top_k ({self.top_k}) must be at most the number of classes ({c})")

    def forward(self, x: torch.Tensor, label: torch.Tensor):  # type: ignore[override]
        shape = x.shape
        outer = math.prod(shape[: self.axis])
        c = shape[self.axis]
        inner = math.prod(shape[self.axis + 1:])
        if label.numel() != outer * inner:
            raise self.error(
                f"number of labels must match number of predictions: expected {outer * inner} "
                f"labels for prediction shape {list(shape)}, got {label.numel()}",
                ShapeError,
            )
        with torch.no_grad():
            scores = x.detach().reshape(outer, c, inner)
            lab = label.detach().reshape(outer, inner)
            valid = torch.ones_like(lab, dtype=torch.bool) if self.ignore_label is None \
                else lab != self.ignore_label
            check_labels(self, lab, c, valid)
            idx = torch.where(valid, lab.long(), torch.zeros_like(lab, dtype=torch.long))
            true_score = scores.gather(1, idx.unsqueeze(1))
            better = (scores >= true_score).sum(dim=1) - 1
            correct = (better < self.top_k) & valid
            count = valid.sum()
            acc = torch.where(count > 0, correct.sum().to(x.dtype) / count.clamp(min=1),
                              torch.zeros((), dtype=x.dtype, device=x.device))
            if len(self.layer_param.top) == 1:
                return acc
            per_n = torch.zeros(c, dtype=x.dtype, device=x.device).index_add_(
                0, idx[valid], torch.ones_like(idx[valid], dtype=x.dtype))
            per_ok = torch.zeros(c, dtype=x.dtype, device=x.device).index_add_(
                0, idx[correct], torch.ones_like(idx[correct], dtype=x.dtype))
            per_class = torch.where(per_n > 0, per_ok / per_n.clamp(min=1), torch.zeros_like(per_n))
            return acc, per_class
