"""HingeLoss: one-vs-all hinge (SVM) loss (``hinge_loss_layer.cpp``).

Bottoms: scores (N, ...) flattened to (N, D), D = count/N, and labels, one
integer in [0, D) per item (N values). Top: the scalar loss.

With m = ``hinge_loss_param.margin`` (an extension, default 1 = Caffe):
t_j = max(0, m + x_j) for j ≠ label and t_label = max(0, m − x_label),
i.e. max(0, m − y·x) with y = ±1. ``norm: L1`` (default): loss = Σ t / N;
``norm: L2``: loss = Σ t² / N. Gradients as Caffe: sign(t)·(±1)/N for L1,
2t·(±1)/N for L2 (zero where t = 0). ``loss_param`` is ignored, as in Caffe.

Differences from Caffe: ``margin`` does not exist upstream (field 10001 of
our caffe.proto). Labels must be N integers in [0, D): Caffe reads the first
N values of any label blob with N rows and does not range-check them.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...proto import caffe_pb2
from ..base import LayerContext, LossLayer, Shape
from ..registry import register_layer
from ._common import check_count, class_labels

_Norm = caffe_pb2.HingeLossParameter


@register_layer("HingeLoss")
class HingeLoss(LossLayer):

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.hinge_loss_param
        self.norm = p.norm
        if self.norm not in (_Norm.L1, _Norm.L2):
            raise self.error(f"unknown norm {self.norm}: expected L1 or L2")
        self.margin = float(p.margin)

    def forward(self, x: torch.Tensor, label: torch.Tensor):  # type: ignore[override]
        self.check_batch(x, label)
        n = x.shape[0]
        check_count(self, "label (bottom 1)", label, n, f"one per item of bottom 0 {list(x.shape)}")
        scores = x.reshape(n, -1)
        idx, _ = class_labels(self, label.reshape(n), scores.shape[1], None)
        # y = +1 for the true class, -1 elsewhere: t = max(0, margin - y * x).
        y = torch.full_like(scores, -1.0).scatter_(1, idx.unsqueeze(1), 1.0)
        t = torch.relu(self.margin - y * scores)
        if self.norm == _Norm.L2:
            t = t * t
        return t.sum() / n
