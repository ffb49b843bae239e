"""ELU (``elu_layer.cpp``).

Bottom: any shape. Top: same shape: x if x > 0 else alpha · (exp(x) − 1)
(``elu_param.alpha``, default 1). Gradient: 1 for x > 0, alpha · exp(x) for
x <= 0 (so alpha at 0), as in Caffe; in place Caffe's backward reads the
output, which gives the same numbers.

Differences from Caffe: none known.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer
from ._caffe_grad import from_top


@register_layer("ELU")
class ELU(Layer):
    exact_num_bottom = 1
    exact_num_top = 1
    same_shape_top = True

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        self.alpha = float(param.elu_param.alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return F.elu(x, self.alpha)

    def replay_in_place(self, top: torch.Tensor) -> torch.Tensor:
        # Caffe's backward reads bottom and top data: in place both are the top
        return from_top(top, lambda v, y, g: torch.where(y > 0, g, g * (y + self.alpha)))
