"""Exp (``exp_layer.cpp``).

Bottom: any shape. Top: same shape: y = base^(shift + scale · x), with
base −1 (the default) meaning e. Caffe computes it as
outer · exp(inner · x) with inner = ln(base) · scale and
outer = base^shift; the gradient is inner · y. base must be > 0 (or −1).

Differences from Caffe: none known.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer
from ._caffe_grad import from_top


@register_layer("Exp")
class Exp(Layer):
    exact_num_bottom = 1
    exact_num_top = 1
    same_shape_top = True

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.exp_param
        base = float(p.base)
        if base != -1 and not base > 0:
            raise self.error(f"exp_param.base must be strictly positive (or -1 for e), got {base:g}")
        log_base = 1.0 if base == -1 else math.log(base)
        self.inner = log_base * float(p.scale)
        shift = float(p.shift)
        self.outer = 1.0 if shift == 0 else (math.exp(shift) if base == -1 else base ** shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y = torch.exp(x * self.inner)
        return y * self.outer if self.outer != 1 else y

    def replay_in_place(self, top: torch.Tensor) -> torch.Tensor:
        return from_top(top, lambda v, y, g: g * y * self.inner)  # Caffe's backward reads the top data
