"""MultinomialLogisticLoss: log loss on probabilities (``multinomial_logistic_loss_layer.cpp``).

Bottoms: probabilities (N, ...) flattened to (N, D) (typically a Softmax
output) and labels, one integer in [0, D) per item, shape (N,) or
(N, 1, 1, 1). Top: the scalar loss.

loss = −Σ_i log(max(p[i, label_i], 1e-20)) / N. Caffe's backward writes
−1 / (N·max(p, 1e-20)) at the label positions: the clamp also bounds the
gradient (so a zero probability gives −1e20/N, not −inf). ``loss_param`` is
ignored, as in Caffe.

Differences from Caffe: labels that are not integers in [0, D) raise.
"""

from __future__ import annotations

import torch

from ...errors import ShapeError
from ..base import LossLayer
from ..registry import register_layer
from ._common import LOG_THRESHOLD, class_labels


@register_layer("MultinomialLogisticLoss")
class MultinomialLogisticLoss(LossLayer):

    def forward(self, p: torch.Tensor, label: torch.Tensor):  # type: ignore[override]
        self.check_batch(p, label)
        n = p.shape[0]
        if label.numel() != n:
            raise self.error(
                f"label (bottom 1) must hold one value per item, shape (N,) or (N, 1, 1, 1): "
                f"got {list(label.shape)} for bottom 0 {list(p.shape)}", ShapeError)
        prob = p.reshape(n, -1)
        idx, _ = class_labels(self, label.reshape(n), prob.shape[1], None)
        picked = prob.gather(1, idx.unsqueeze(1)).squeeze(1)
        # max(p, threshold) in value, gradient 1 w.r.t. p: d(-log)/dp = -1/max(p, threshold).
        picked = picked + (picked.detach().clamp(min=LOG_THRESHOLD) - picked.detach())
        return -torch.log(picked).sum() / n
