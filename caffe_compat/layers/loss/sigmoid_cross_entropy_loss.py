"""SigmoidCrossEntropyLoss: per-element logistic loss (``sigmoid_cross_entropy_loss_layer.cpp``).

Bottoms: scores x (N, ...) and targets t with the same count and first
dimension (targets may be soft, any value). Top: the scalar loss.

loss = Σ [max(x, 0) − x·t + log(1 + exp(−|x|))] / normaliser, the stable form
Caffe evaluates; the gradient is (sigmoid(x) − t)/normaliser. Positions whose
target truncates (``static_cast<int>``) to ``loss_param.ignore_label`` add
nothing and get zero gradient. The normaliser defaults to **BATCH_SIZE** (N)
unless ``normalization`` or the legacy ``normalize`` is given; VALID counts
the non-ignored elements, FULL all elements, NONE is 1. The targets get no
gradient.

Differences from Caffe: none known.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import LayerContext, LossLayer, Shape
from ..registry import register_layer
from ._common import normalization_mode, normalizer

_L = caffe_pb2.LossParameter


@register_layer("SigmoidCrossEntropyLoss")
class SigmoidCrossEntropyLoss(LossLayer):

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        lp = param.loss_param
        self.ignore_label = lp.ignore_label if lp.HasField("ignore_label") else None
        self.mode = normalization_mode(param, default=_L.BATCH_SIZE)

    def forward(self, x: torch.Tensor, target: torch.Tensor):  # type: ignore[override]
        self.check_batch(x, target)
        if x.numel() != target.numel():
            raise self.error(
                "scores and targets must have the same count: bottom[0] "
                f"{list(x.shape)} ({x.numel()}) vs bottom[1] {list(target.shape)} "
                f"({target.numel()})", ShapeError)
        t = target.detach().reshape(x.shape)
        loss = F.binary_cross_entropy_with_logits(x, t, reduction="none")
        count = None
        if self.ignore_label is not None:
            valid = t.trunc() != self.ignore_label
            loss = loss * valid
            count = valid.sum()
        outer = x.shape[0]
        return loss.sum() / normalizer(self.mode, outer, x.numel() // max(outer, 1), count)
