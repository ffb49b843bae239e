"""Softmax along one axis (``softmax_layer.cpp``).

Bottom: any shape. Top: same shape, softmax over ``softmax_param.axis``
(default 1); every other axis indexes independent softmaxes.

Differences from Caffe: none known.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape, canonical_axis
from ..registry import register_layer


@register_layer("Softmax")
class Softmax(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        self.axis = canonical_axis(param.softmax_param.axis, len(bottom_shapes[0]), self.where)

    def quick_top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape] | None:
        return [tuple(bottom_shapes[0])] if self.axis < len(bottom_shapes[0]) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.softmax(x, dim=self.axis)
