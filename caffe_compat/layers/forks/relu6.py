"""ReLU6: y = min(max(x, 0), 6), of the MobileNet-v2 forks (``relu6_layer.cpp``).

Bottom: any shape. Top: same shape. No parameters. The gradient is the top
gradient where 0 < x < 6 and 0 elsewhere, including at x = 0 and x = 6
(torch's clamp would pass it at the bounds). In place the fork tests the
output instead of the input, which gives the same mask.

Upstream Caffe has no ReLU6; its Clip layer (min 0, max 6) computes the same
values but passes the gradient at the bounds.

Differences from Caffe: none known.
"""

from __future__ import annotations

import torch

from ..base import Layer
from ..registry import register_layer


@register_layer("ReLU6")
class ReLU6(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        inside = (x > 0) & (x < 6)
        # The gradient flows through x only where inside; the clamped values are constants.
        return torch.where(inside, x, x.detach().clamp(0, 6))
