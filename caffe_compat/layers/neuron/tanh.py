"""TanH (``tanh_layer.cpp``).

Bottom: any shape. Top: same shape: tanh(x); gradient 1 − y².
``tanh_param.engine`` does not change the numbers.

Differences from Caffe: none known.
"""

from __future__ import annotations

import torch

from ..base import Layer
from ..registry import register_layer


@register_layer("TanH")
class TanH(Layer):
    exact_num_bottom = 1
    exact_num_top = 1
    same_shape_top = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.tanh(x)
