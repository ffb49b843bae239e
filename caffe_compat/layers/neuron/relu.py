"""ReLU, with Caffe's leaky variant (``relu_layer.cpp``).

Bottom: any shape. Top: same shape: max(x, 0) + negative_slope · min(x, 0).
The gradient at x = 0 is negative_slope (0 for a plain ReLU), as in Caffe.

In place, Caffe's backward tests the sign of the *output*; that only differs
from the input's sign when negative_slope < 0, where the gradient of a
negative input becomes 1. We reproduce that.

Differences from Caffe: none known.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer
from ._caffe_grad import from_top, inplace_of, with_backward


@register_layer("ReLU")
class ReLU(Layer):
    exact_num_bottom = 1
    exact_num_top = 1
    same_shape_top = True

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        self.negative_slope = float(param.relu_param.negative_slope)
        self.output_sign_grad = inplace_of(param) and self.negative_slope < 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if self.negative_slope == 0.0:
            return F.relu(x)
        if self.output_sign_grad:
            slope = self.negative_slope
            return with_backward(
                x, lambda v: F.leaky_relu(v, slope),
                lambda v, y, g: g * torch.where(y > 0, 1.0, slope).to(g.dtype),
            )
        return F.leaky_relu(x, self.negative_slope)

    def replay_in_place(self, top: torch.Tensor) -> torch.Tensor:
        slope = self.negative_slope  # Caffe: (bottom > 0) + slope * (bottom <= 0), bottom = top
        return from_top(top, lambda v, y, g: g * torch.where(y > 0, 1.0, slope).to(g.dtype))
