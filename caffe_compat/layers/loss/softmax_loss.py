"""SoftmaxWithLoss: softmax then multinomial logistic loss (``softmax_loss_layer.cpp``).

Bottoms: scores (N, C, ...) with the class axis at ``softmax_param.axis``
(default 1), labels with one integer value per position (N·H·W values).
Tops: the scalar loss and, optionally, the softmax probabilities.

loss = −Σ log(max(p_label, FLT_MIN)) / normaliser over non-ignored positions;
the normaliser follows ``loss_param.normalization`` (default VALID) or the
legacy ``normalize`` flag (false → BATCH_SIZE). The gradient is the unclamped
(p − onehot) / normaliser, as Caffe's hand-written backward computes it.

Differences from Caffe: a label outside [0, C) raises instead of reading
out-of-bounds memory; the probability top never passes gradient back (Caffe
aborts when it is given a loss weight).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ...errors import LayerError, ShapeError
from ...proto import caffe_pb2
from ..base import FLT_MIN, LayerContext, LossLayer, Shape, canonical_axis
from ..registry import register_layer
from .normalization import normalization_mode, normalizer

_NEG_LOG_FLT_MIN = -math.log(FLT_MIN)


def check_labels(layer: LossLayer, labels: torch.Tensor, num_classes: int,
                 valid: torch.Tensor | None) -> None:
    """Raise if a (non-ignored) label is not an integer class index."""
    if labels.is_meta:
        return
    bad = (labels < 0) | (labels >= num_classes)
    if valid is not None:
        bad &= valid
    if bool(bad.any()):
        first = labels[bad].flatten()[0].item()
        raise layer.error(f"label {first:g} out of range: labels must lie in [0, {num_classes})",
                          LayerError)


@register_layer("SoftmaxWithLoss")
class SoftmaxWithLoss(LossLayer):
    exact_num_top = None
    min_top = 1
    max_top = 2

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        self.axis = canonical_axis(param.softmax_param.axis, len(bottom_shapes[0]), self.where)
        lp = param.loss_param
        self.ignore_label = lp.ignore_label if lp.HasField("ignore_label") else None
        self.mode = normalization_mode(param)
        if len(param.top) == 2 and len(param.loss_weight) == 2 and param.loss_weight[1] != 0:
            raise self.error("the probability top (top 1) cannot carry a loss weight")

    def forward(self, x: torch.Tensor, label: torch.Tensor):  # type: ignore[override]
        shape = x.shape
        outer = math.prod(shape[: self.axis])
        c = shape[self.axis]
        inner = math.prod(shape[self.axis + 1:])
        if label.numel() != outer * inner:
            raise self.error(
                "number of labels must match number of predictions: with softmax axis "
                f"{self.axis} and prediction shape {list(shape)} the label count must be "
                f"{outer * inner}, got {label.numel()} (label shape {list(label.shape)})",
                ShapeError,
            )
        logp = torch.log_softmax(x.reshape(outer, c, inner), dim=1)
        lab = label.reshape(outer, inner)
        valid = None if self.ignore_label is None else lab != self.ignore_label
        check_labels(self, lab, c, valid)
        idx = lab.long()
        if valid is not None:
            idx = torch.where(valid, idx, torch.zeros_like(idx))
        nll = -logp.gather(1, idx.unsqueeze(1)).squeeze(1)
        # Caffe clamps p at FLT_MIN in the loss only; keep the unclamped gradient.
        nll = nll + (nll.clamp(max=_NEG_LOG_FLT_MIN) - nll).detach()
        if valid is not None:
            nll = nll * valid
        count = valid.sum() if valid is not None else None
        loss = nll.sum() / normalizer(self.mode, outer, inner, count)
        if len(self.layer_param.top) == 2:
            return loss, torch.softmax(x.detach(), dim=self.axis)
        return loss
