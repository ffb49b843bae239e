"""Clip (``clip_layer.cpp``, upstream BVLC Caffe since 2019).

Bottom: any shape. Top: same shape: max(min, min(x, max)) — so with
min > max every output is ``min``. ``clip_param { min max }`` is required.

Backward: the top diff passes where min ≤ x ≤ max (both bounds inclusive),
0 elsewhere. In place, Caffe's backward tests the *clipped* value, which is
always inside the bounds: every gradient passes (none when min > max).

Differences from Caffe: a missing ``clip_param`` raises (Caffe reads its
unset bounds as 0 and clips everything to 0).
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer
from ._caffe_grad import inplace_of, with_backward


@register_layer("Clip")
class Clip(Layer):
    exact_num_bottom = 1
    exact_num_top = 1
    same_shape_top = True

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.clip_param
        if not (param.HasField("clip_param") and p.HasField("min") and p.HasField("max")):
            raise self.error("clip_param { min: ... max: ... } is required (both bounds)")
        self.min, self.max = float(p.min), float(p.max)
        self.inplace = inplace_of(param)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        lo, hi = self.min, self.max
        if self.inplace:
            passes = float(lo <= hi)
            return with_backward(x, lambda v: v.clamp(max=hi).clamp(min=lo),
                                 lambda v, y, g: g * passes)
        # clamp(max) then clamp(min) is Caffe's max(min, min(x, max)) even when
        # min > max, and its gradient mask is Caffe's min <= x <= max.
        return x.clamp(max=hi).clamp(min=lo)
