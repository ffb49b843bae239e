"""L1Loss: mean absolute error per item (not an upstream Caffe layer).

Bottoms: a and b with the same first dimension N and the same count. Top:
the scalar loss.

loss = Σ |a − b| / N (N = shape[0], the batch size, as EuclideanLoss divides
by it). Gradients: sign(a − b)/N to bottom 0 and −sign(a − b)/N to bottom 1
(zero where a = b). ``loss_param`` is ignored.

Differences from Caffe: upstream Caffe has no L1Loss; this follows the
formula above (the tutorials that name it use it as a drop-in for
EuclideanLoss). Forks with an ``L1Loss`` (e.g. FlowNet's) add options that
this layer does not read.
"""

from __future__ import annotations

import torch

from ...errors import ShapeError
from ..base import LossLayer
from ..registry import register_layer


@register_layer("L1Loss")
class L1Loss(LossLayer):
    no_force_backward = frozenset()

    def forward(self, a: torch.Tensor, b: torch.Tensor):  # type: ignore[override]
        self.check_batch(a, b)
        if a.numel() != b.numel():
            raise self.error(
                f"inputs must have the same count: bottom[0] {list(a.shape)} vs bottom[1] "
                f"{list(b.shape)} hold {a.numel()} and {b.numel()} values", ShapeError)
        return (a - b.reshape(a.shape)).abs().sum() / a.shape[0]
