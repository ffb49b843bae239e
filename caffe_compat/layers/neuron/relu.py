"""ReLU, with Caffe's leaky variant (``relu_layer.cpp``).

Bottom: any shape. Top: same shape: max(x, 0) + negative_slope · min(x, 0).
The gradient at x = 0 is negative_slope (0 for a plain ReLU), as in Caffe.

Differences from Caffe: none known.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer


@register_layer("ReLU")
class ReLU(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        self.negative_slope = float(param.relu_param.negative_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if self.negative_slope == 0.0:
            return torch.relu(x)
        return F.leaky_relu(x, self.negative_slope)
