"""Log (``log_layer.cpp``).

Bottom: any shape. Top: same shape: y = log_base(shift + scale · x), base −1
(the default) meaning e; base must be > 0 and not 1. The gradient is
scale / ((shift + scale · x) · ln(base)).

In place, Caffe reads the output as the input and overwrites the top diff
before reading it, so the bottom diff is the local gradient (evaluated at the
output) squared; we reproduce that.

Differences from Caffe: none known.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer
from ._caffe_grad import from_top, inplace_of, with_backward


@register_layer("Log")
class Log(Layer):
    exact_num_bottom = 1
    exact_num_top = 1
    same_shape_top = True

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.log_param
        base = float(p.base)
        if base != -1 and not base > 0:
            raise self.error(f"log_param.base must be strictly positive (or -1 for e), got {base:g}")
        if base == 1:
            raise self.error("log_param.base 1 has no logarithm (1/log(1) is infinite)")
        self.base_scale = 1.0 if base == -1 else float(np.float32(1.0) / np.float32(math.log(base)))
        self.scale, self.shift = float(p.scale), float(p.shift)
        self.in_place = inplace_of(param)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x * self.scale if self.scale != 1 else x
        y = torch.log(z + self.shift if self.shift != 0 else z)
        return y * self.base_scale if self.base_scale != 1 else y

    def _backward(self, x: torch.Tensor, y: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        src = y if self.in_place else x
        z = src * self.scale if self.scale != 1 else src
        d = (self.scale * self.base_scale) / (z + self.shift if self.shift != 0 else z)
        return d * d if self.in_place else g * d

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if not self.in_place:
            return self._forward(x)  # autograd's derivative is Caffe's formula
        return with_backward(x, self._forward, self._backward)

    def replay_in_place(self, top: torch.Tensor) -> torch.Tensor:
        return from_top(top, self._backward)  # in place, _backward reads the top data
