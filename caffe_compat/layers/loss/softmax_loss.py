"""SoftmaxWithLoss: softmax then multinomial logistic loss (``softmax_loss_layer.cpp``).

Bottoms: scores (N, C, ...) with the class axis at ``softmax_param.axis``
(default 1, negative counts from the end); labels holding one integer per
position, outer·inner values (N·H·W for (N, C, H, W)), any shape with the
same first dimension. Tops: the scalar loss and, optionally, the softmax
probabilities (shape of the scores).

loss = −Σ log(max(p_label, FLT_MIN)) / normaliser over non-ignored positions
(``loss_param.ignore_label``); the normaliser follows ``loss_param.normalization``
(default VALID = number of non-ignored positions; FULL = outer·inner;
BATCH_SIZE = outer; NONE = 1; never below 1) or the legacy ``normalize`` flag
(false → BATCH_SIZE). The gradient is the unclamped (p − onehot)/normaliser,
zero at ignored positions, as Caffe's hand-written backward computes it.

The probability top needs one loss weight per top (Caffe's rule) and never
passes gradient back; a non-zero weight on it only adds weight·Σp to the
net's loss value, as in Caffe forks and InfogainLoss.

Differences from Caffe: upstream Caffe aborts whenever the prob top is given
(its internal Softmax inherits the loss weights: with one weight per top it
fails "loss_weight must be ... once per top blob"); we follow the forks that
fixed this. A label that is not an integer or lies outside [0, C) raises
instead of being truncated / reading out-of-bounds memory.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ...proto import caffe_pb2
from ..base import FLT_MIN, LayerContext, LossLayer, Shape, canonical_axis
from ..registry import register_layer
from ._common import check_count, class_labels, clamp_value, normalization_mode, normalizer, \
    split_axis

_NEG_LOG_FLT_MIN = -math.log(FLT_MIN)


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
        self.with_prob = len(param.top) == 2

    def _check(self, x: torch.Tensor, label: torch.Tensor) -> tuple[int, int, int]:
        self.check_batch(x, label)
        outer, c, inner = split_axis(x.shape, self.axis)
        check_count(self, "label (bottom 1)", label, outer * inner,
                    f"one per prediction: softmax axis {self.axis} of prediction shape "
                    f"{list(x.shape)}")
        return outer, c, inner

    def quick_top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        self._check(*self.meta_bottoms(bottom_shapes))
        return [()] + ([tuple(bottom_shapes[0])] if self.with_prob else [])

    def forward(self, x: torch.Tensor, label: torch.Tensor):  # type: ignore[override]
        outer, c, inner = self._check(x, label)
        # (N, C) scores with N labels, the usual case, go as they are (no view ops).
        shape, lshape = ((outer, c), (outer,)) if inner == 1 else ((outer, c, inner), (outer, inner))
        logp = torch.log_softmax(x if x.shape == shape else x.reshape(shape), dim=1)
        idx, valid = class_labels(self, label if label.shape == lshape else label.reshape(lshape), c,
                                  self.ignore_label, zero_ignored=False)
        # -logp at each label, one fused kernel each way; exactly 0 (and no
        # gradient) where the label is ignore_label, as Caffe skips those.
        ignore = -100 if self.ignore_label is None else self.ignore_label  # labels are >= 0
        nll = F.nll_loss(logp, idx, reduction="none", ignore_index=ignore)
        # Caffe clamps p at FLT_MIN in the loss only; keep the unclamped gradient.
        nll = clamp_value(nll, max=_NEG_LOG_FLT_MIN)
        count = None if valid is None else valid.sum()
        loss = nll.sum() / normalizer(self.mode, outer, inner, count)
        if self.with_prob:
            return loss, torch.softmax(x.detach(), dim=self.axis)
        return loss
