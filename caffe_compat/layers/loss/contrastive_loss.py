"""ContrastiveLoss: siamese pair loss (``contrastive_loss_layer.cpp``).

Bottoms: features a and b (N, C, 1, 1) or (N, C), and the pair label y (N
values: shape (N,), (N, 1) or (N, 1, 1, 1)). Top: the scalar loss.

With d² = Σ_c (a − b)², a pair is similar when ``static_cast<int>(y) != 0``:
  similar:     d²
  dissimilar:  max(margin − d, 0)²     (``legacy_version: true``: max(margin − d², 0))
loss = Σ / (2N), margin = ``contrastive_loss_param.margin`` (default 1). Both a
and b get gradients (opposite signs); y gets none. For a dissimilar pair Caffe
divides by (d + 1e-4) instead of d in the gradient, −(margin − d)/(d + 1e-4)·(a − b)/N,
which keeps it finite at d = 0; we keep that too.

Differences from Caffe: none known.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import LayerContext, LossLayer, Shape
from ..registry import register_layer

_EPS = 1e-4  # Caffe's guard in the dissimilar-pair gradient


@register_layer("ContrastiveLoss")
class ContrastiveLoss(LossLayer):
    exact_num_bottom = 3
    no_force_backward = frozenset({2})

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.contrastive_loss_param
        self.margin = float(p.margin)
        self.legacy = p.legacy_version

    def _check(self, a: torch.Tensor, b: torch.Tensor, y: torch.Tensor) -> None:
        self.check_batch(a, b)
        for k, t in enumerate((a, b)):
            if t.dim() < 2 or any(d != 1 for d in t.shape[2:]):
                raise self.error(f"bottom {k} must have shape (N, C, 1, 1) or (N, C), got "
                                 f"{list(t.shape)}", ShapeError)
        if a.shape[1] != b.shape[1]:
            raise self.error(f"bottoms 0 and 1 must have the same channels: {list(a.shape)} vs "
                             f"{list(b.shape)}", ShapeError)
        if y.dim() == 0 or y.shape[0] != a.shape[0] or y.numel() != a.shape[0]:
            raise self.error(f"the pair label (bottom 2) must hold one value per pair, shape "
                             f"({a.shape[0]},) or ({a.shape[0]}, 1, 1, 1); got {list(y.shape)}",
                             ShapeError)

    def forward(self, a: torch.Tensor, b: torch.Tensor, y: torch.Tensor):  # type: ignore[override]
        self._check(a, b, y)
        n = a.shape[0]
        diff = a.reshape(n, -1) - b.reshape(n, -1)  # (N, C) and (N, C, 1, 1) may be mixed
        d2 = (diff * diff).sum(dim=1)
        similar = y.detach().reshape(n).trunc() != 0
        if self.legacy:
            far = torch.relu(self.margin - d2)
        else:
            d = d2.detach().sqrt()
            m = torch.relu(self.margin - d)
            # Value m², gradient w.r.t. d² of -m/(d + 1e-4) (Caffe's, not -m/d).
            far = (m * m) + (-m / (d + _EPS)) * (d2 - d2.detach())
        return torch.where(similar, d2, far).sum() / (2 * n)
