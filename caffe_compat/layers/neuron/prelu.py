"""PReLU: ReLU with a learned negative slope per channel (``prelu_layer.cpp``).

Bottom: (N, C, ...) with at least 2 axes. Top: same shape:
y = x if x > 0 else a_c · x. Blob: the slopes a, shape (C,) — or a 0-axis
blob (a single value, as Caffe stores it) with ``channel_shared: true``;
``filler`` defaults to constant 0.25. The gradient at x = 0 is a_c (Caffe
counts 0 as negative), the slope's gradient sums x · top_diff over x <= 0.

Differences from Caffe: none known.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer


@register_layer("PReLU")
class PReLU(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.prelu_param
        shape = bottom_shapes[0]
        if len(shape) < 2:
            raise self.error(f"bottom must have at least 2 axes (N, C, ...), got {list(shape)}",
                             ShapeError)
        self.channels = shape[1]
        self.channel_shared = p.channel_shared
        filler = p.filler if p.HasField("filler") else caffe_pb2.FillerParameter(
            type="constant", value=0.25)
        self.add_param(() if self.channel_shared else (self.channels,), filler, attr="slope")

    def quick_top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape] | None:
        s = tuple(bottom_shapes[0])
        return [s] if self.channel_shared or (len(s) >= 2 and s[1] == self.channels) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        a = self.params[0]
        if not self.channel_shared:
            if x.dim() < 2 or x.shape[1] != self.channels:
                raise self.error(
                    f"bottom {list(x.shape)} must have {self.channels} channels on axis 1",
                    ShapeError,
                )
            a = a.reshape((1, self.channels) + (1,) * (x.dim() - 2))
        return torch.where(x > 0, x, a * x)
