"""Swish (``swish_layer.cpp``): y = x · sigmoid(β·x).

Bottom: any shape. Top: same shape. ``swish_param.beta`` defaults to 1.
Caffe's backward, dy · (β·y + σ(βx)·(1 − β·y)), is the derivative of the
forward and reads only the top and the cached sigmoid, so in-place use
changes nothing.

Differences from Caffe: none known.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer


@register_layer("Swish")
class Swish(Layer):
    exact_num_bottom = 1
    exact_num_top = 1
    same_shape_top = True

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        self.beta = float(param.swish_param.beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return x * torch.sigmoid(self.beta * x)
