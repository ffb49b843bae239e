"""EuclideanLoss: half the mean squared distance (``euclidean_loss_layer.cpp``).

Bottoms: a and b with the same first dimension N and the same count per item
(shapes may differ otherwise, e.g. (N, 6) vs (N, 2, 3)). Top: the scalar loss.

loss = Σ (a − b)² / (2N). Both bottoms get gradients, (a − b)/N and
−(a − b)/N; unlike other loss layers Caffe lets ``force_backward`` reach
bottom 1 too. ``loss_param`` (normalization) is ignored, as in Caffe.

Differences from Caffe: none known.
"""

from __future__ import annotations

import torch

from ...errors import ShapeError
from ..base import LossLayer
from ..registry import register_layer


@register_layer("EuclideanLoss")
class EuclideanLoss(LossLayer):
    no_force_backward = frozenset()

    def forward(self, a: torch.Tensor, b: torch.Tensor):  # type: ignore[override]
        self.check_batch(a, b)
        if a.numel() != b.numel():
            raise self.error(
                "inputs must have the same dimension: bottom[0] "
                f"{list(a.shape)} vs bottom[1] {list(b.shape)} hold "
                f"{a.numel()} and {b.numel()} values", ShapeError)
        diff = a - b.reshape(a.shape)
        return (diff * diff).sum() / (2 * a.shape[0])
