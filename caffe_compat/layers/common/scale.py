"""Scale (``scale_layer.cpp``): multiply by a learned or given blob, broadcast.

Bottoms: x, and optionally the scale s itself. Top: shape of x:
y = x · s (+ b with ``bias_term: true``, default false), s lined up with x
from ``axis`` (default 1). With one bottom s is a blob of shape
x.shape[axis : axis + num_axes] (``num_axes`` default 1, −1 = to the end,
0 = a scalar) filled by ``filler`` (default constant 1). The bias has the
shape of s and ``bias_filler`` (default constant 0). Blobs: [s, b] with one
bottom, [b] with two. Gradients go to x, s (blob or bottom) and b.

Differences from Caffe: none known.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer
from .bias import broadcast_view, check_broadcast, param_shape


@register_layer("Scale")
class Scale(Layer):
    min_bottom = 1
    max_bottom = 2
    exact_num_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.scale_param
        self.axis = p.axis
        self.bias_term = p.bias_term
        if len(bottom_shapes) == 1:
            shape = param_shape(self, bottom_shapes[0], p.axis, p.num_axes)
            filler = p.filler if p.HasField("filler") else caffe_pb2.FillerParameter(
                type="constant", value=1.0)
            self.add_param(shape, filler, attr="scale")
        else:
            shape = tuple(bottom_shapes[1])
        if self.bias_term:
            self.add_param(shape, p.bias_filler, attr="bias")

    def quick_top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        s = bottom_shapes[1] if len(bottom_shapes) > 1 else self.params[0].shape
        check_broadcast(self, bottom_shapes[0], s, self.axis, "scale")
        if self.bias_term:
            check_broadcast(self, bottom_shapes[0], self.params[-1].shape, self.axis, "bias")
        return [tuple(bottom_shapes[0])]

    def forward(self, x: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        s = rest[0] if rest else self.params[0]
        y = x * broadcast_view(self, x, s, self.axis, "scale")
        if self.bias_term:
            y = y + broadcast_view(self, x, self.params[-1], self.axis, "bias")
        return y
