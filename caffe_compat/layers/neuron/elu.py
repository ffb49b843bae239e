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
