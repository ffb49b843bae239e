"""Power (``power_layer.cpp``).

Bottom: any shape. Top: same shape: y = (shift + scale · x)^power.
When power or scale is 0 the top is the constant 1 (power 0) or shift^power.

The backward follows Caffe's formulas, not the derivative's limit: with
shift = 0 and power not 1 or 2 it computes power · y / x, which is NaN at
x = 0; otherwise power · scale · y / (shift + scale · x), NaN where that base
is 0. In place, Caffe reads the output as the input and overwrites the top
diff before reading it, so the bottom diff is the local gradient (evaluated
at the output) squared; we reproduce that.

Differences from Caffe: none known.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer
from ._caffe_grad import from_top, inplace_of, with_backward


@register_layer("Power")
class Power(Layer):
    exact_num_bottom = 1
    exact_num_top = 1
    same_shape_top = True

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.power_param
        self.power, self.scale, self.shift = float(p.power), float(p.scale), float(p.shift)
        self.diff_scale = float(np.float32(p.power) * np.float32(p.scale))
        self.in_place = inplace_of(param)
        # Caffe's top when the input is ignored (power or scale 0), in float.
        self.constant = 1.0 if self.power == 0 else float(np.float32(p.shift) ** np.float32(p.power))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.diff_scale == 0:
            return torch.full_like(x, self.constant)
        y = x * self.scale if self.scale != 1 else x
        if self.shift != 0:
            y = y + self.shift
        return torch.pow(y, self.power) if self.power != 1 else y.clone()

    def _local_grad(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """dy/dx as Caffe computes it, reading ``x`` as the bottom data."""
        if self.diff_scale == 0 or self.power == 1:
            return torch.full_like(x, self.diff_scale)
        if self.power == 2:
            d = x * (self.diff_scale * self.scale)
            return d + self.diff_scale * self.shift if self.shift != 0 else d
        if self.shift == 0:
            return y / x * self.power
        base = x * self.scale if self.scale != 1 else x
        return y / (base + self.shift) * self.diff_scale

    def _backward(self, x: torch.Tensor, y: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        if self.in_place:
            d = self._local_grad(y, y)
            return d * d
        return g * self._local_grad(x, y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return with_backward(x, self._forward, self._backward)

    def replay_in_place(self, top: torch.Tensor) -> torch.Tensor:
        return from_top(top, self._backward)  # in place, _backward reads the top data
