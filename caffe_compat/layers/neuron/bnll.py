"""BNLL, the binomial normal log likelihood softplus (``bnll_layer.cpp``).

Bottom: any shape. Top: same shape, in Caffe's split form that never
overflows: x + log(1 + exp(−x)) for x > 0, log(1 + exp(x)) otherwise.
Gradient: e / (e + 1) with e = exp(min(x, 50)) (Caffe's threshold).

In place, Caffe's backward reads the output instead of the input; we do the
same (the gradient becomes sigmoid(y) instead of sigmoid(x)).

Differences from Caffe: none known.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer
from ._caffe_grad import from_top, inplace_of, with_backward

_THRESHOLD = 50.0  # kBNLL_THRESHOLD


def _bnll(x: torch.Tensor) -> torch.Tensor:
    # Clamped copies keep the branch torch.where does not pick finite.
    pos = x.clamp(min=0)
    neg = x.clamp(max=0)
    return torch.where(x > 0, pos + torch.log1p(torch.exp(-pos)), torch.log1p(torch.exp(neg)))


@register_layer("BNLL")
class BNLL(Layer):
    exact_num_bottom = 1
    exact_num_top = 1
    same_shape_top = True

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        self.in_place = inplace_of(param)

    def _backward(self, x: torch.Tensor, y: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        src = y if self.in_place else x
        return g * torch.sigmoid(src.clamp(max=_THRESHOLD))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return with_backward(x, _bnll, self._backward)

    def replay_in_place(self, top: torch.Tensor) -> torch.Tensor:
        return from_top(top, self._backward)  # in place, _backward reads the top data
