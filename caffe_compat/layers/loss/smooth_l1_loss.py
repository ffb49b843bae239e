"""SmoothL1Loss: Fast R-CNN's robust regression loss (not an upstream Caffe layer).

Matches ``smooth_l1_loss_layer.cpp`` of the Fast/Faster R-CNN Caffe fork.
Bottoms: predictions, targets, and optionally inside and outside weights
(all four the same count, first dimension N). Top: the scalar loss.

With σ = ``smooth_l1_loss_param.sigma`` (default 1) and d = w_in·(pred − target):
  f(d) = 0.5·(σd)²       if |d| < 1/σ²
         |d| − 0.5/σ²    otherwise
loss = Σ w_out·f(d) / N. Gradients go to predictions and targets (opposite
signs); the weights get none. Three bottoms (one weight) is an error, as in
the fork.

Differences from Caffe: upstream Caffe has no SmoothL1Loss; the fork's is
matched by formula (no golden data from a real build).
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...errors import LayerError, ShapeError
from ...proto import caffe_pb2
from ..base import LayerContext, LossLayer, Shape
from ..registry import register_layer


@register_layer("SmoothL1Loss")
class SmoothL1Loss(LossLayer):
    exact_num_bottom = None
    min_bottom = 2
    max_bottom = 4
    no_force_backward = frozenset({2, 3})

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        if len(bottom_shapes) == 3:
            raise self.error("weights need both inside (bottom 2) and outside (bottom 3) "
                             "weights: expected 2 or 4 bottoms, got 3", LayerError)
        self.sigma2 = float(param.smooth_l1_loss_param.sigma) ** 2
        if self.sigma2 == 0:
            raise self.error("smooth_l1_loss_param.sigma must be non-zero")

    def forward(self, pred: torch.Tensor, target: torch.Tensor,  # type: ignore[override]
                *weights: torch.Tensor):
        self.check_batch(pred, target)
        for k, t in enumerate((target, *weights), start=1):
            if t.numel() != pred.numel() or t.shape[0] != pred.shape[0]:
                raise self.error(f"bottom {k} {list(t.shape)} must match bottom 0 "
                                 f"{list(pred.shape)} in count and first dimension", ShapeError)
        d = pred - target.reshape(pred.shape)
        if weights:
            d = d * weights[0].detach().reshape(pred.shape)
        absd = d.abs()
        f = torch.where(absd < 1.0 / self.sigma2, 0.5 * self.sigma2 * d * d,
                        absd - 0.5 / self.sigma2)
        if weights:
            f = f * weights[1].detach().reshape(pred.shape)
        return f.sum() / pred.shape[0]
