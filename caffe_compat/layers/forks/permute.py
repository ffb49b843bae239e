"""Permute: reorder a blob's axes (``permute_layer.cpp``, SSD fork).

Bottom: any shape with K axes. Top: the bottom with its axes in the order
``permute_param { order }``; axes the order leaves out follow in their
original order (order 0 2 3 1 on a 4-axis blob is NCHW -> NHWC). Each order
value must be < K and appear once. The gradient is the inverse permutation.

The same layer exists in the pip-installable Caffe used for the golden data,
so it is proved against a real build.

Differences from Caffe: none known.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer


@register_layer("Permute")
class Permute(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        axes = len(bottom_shapes[0])
        order: list[int] = []
        for o in param.permute_param.order:
            if o >= axes:
                raise self.error(f"order {o} is out of range for a bottom with {axes} axes "
                                 f"{list(bottom_shapes[0])}", ShapeError)
            if o in order:
                raise self.error(f"order {list(param.permute_param.order)} repeats axis {o}")
            order.append(int(o))
        self.order = tuple(order + [i for i in range(axes) if i not in order])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if x.dim() != len(self.order):
            raise self.error(f"bottom {list(x.shape)} must keep its {len(self.order)} axes",
                             ShapeError)
        if self.order == tuple(range(x.dim())):
            return x
        return x.permute(self.order).contiguous()
