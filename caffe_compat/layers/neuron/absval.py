"""AbsVal (``absval_layer.cpp``).

Bottom: any shape. Top: same shape: |x|; gradient sign(x) (0 at 0).
Caffe refuses to run it in place (its backward needs the input's sign), and
so do we.

Differences from Caffe: none known.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer
from ._caffe_grad import inplace_of


@register_layer("AbsVal")
class AbsVal(Layer):
    exact_num_bottom = 1
    exact_num_top = 1
    same_shape_top = True

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        if inplace_of(param):
            raise self.error(f'does not allow in-place computation (top "{param.top[0]}" is '
                             "its bottom); give the top another name")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.abs(x)
