"""Tile (``tile_layer.cpp``): repeat a blob ``tiles`` times along ``axis``.

Bottom: any shape. Top: the bottom with ``shape[axis] *= tiles`` — the whole
block from ``axis`` on is repeated ([a, b] tiled twice is [a, b, a, b]).
``axis`` defaults to 1; ``tiles`` is required and > 0.

Backward: the gradients of the copies add up.

Differences from Caffe: none known.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape, canonical_axis
from ..registry import register_layer


@register_layer("Tile")
class Tile(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.tile_param
        if not p.HasField("tiles"):
            raise self.error("tile_param.tiles (the number of tiles) must be specified")
        if p.tiles <= 0:
            raise self.error(f"tile_param.tiles must be > 0, got {p.tiles}")
        self.tiles = int(p.tiles)
        self.axis_param = int(p.axis)
        canonical_axis(self.axis_param, len(bottom_shapes[0]), self.where)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        axis = canonical_axis(self.axis_param, x.dim(), self.where)
        reps = [1] * x.dim()
        reps[axis] = self.tiles
        return x.repeat(*reps)
