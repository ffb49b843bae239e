"""Split: one bottom copied to several tops (``split_layer.cpp``).

The net inserts these where a blob feeds several layers, named as Caffe names
them. Each top is a view of the bottom (no copy) but its own autograd node, so
each top keeps its own diff; the bottom's diff is their sum.

Differences from Caffe: none known.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..base import Layer, Shape
from ..registry import register_layer


@register_layer("Split")
class Split(Layer):
    exact_num_bottom = 1
    min_top = 1

    def quick_top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        return [tuple(bottom_shapes[0])] * len(self.layer_param.top)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        return tuple(x.view_as(x) for _ in self.layer_param.top)
