"""Slice (``slice_layer.cpp``): cut one bottom into several tops along an axis.

Bottom: any shape. Tops: pieces along ``axis`` (default 1, negative counts
from the end; legacy ``slice_dim`` — not both). ``slice_point`` gives the
n − 1 cut positions for n tops, strictly increasing inside (0, dim); without
it the axis is split evenly (n must divide it). One top passes through.

Differences from Caffe: none known.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape, canonical_axis
from ..registry import register_layer


@register_layer("Slice")
class Slice(Layer):
    exact_num_bottom = 1
    min_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.slice_param
        shape = bottom_shapes[0]
        if p.HasField("axis") and p.HasField("slice_dim"):
            raise self.error("either axis or slice_dim should be specified; not both")
        if p.HasField("slice_dim"):
            if p.slice_dim >= len(shape):
                raise self.error(f"slice_dim {p.slice_dim} out of range for bottom {list(shape)}",
                                 ShapeError)
            self.axis = int(p.slice_dim)
        else:
            self.axis = canonical_axis(p.axis, len(shape), self.where)
        self.n_top = len(param.top)
        self.points = [int(v) for v in p.slice_point]
        if self.points and len(self.points) != self.n_top - 1:
            raise self.error(f"{len(self.points)} slice_point(s) given for {self.n_top} tops; "
                             f"expected {self.n_top - 1}")

    def _sizes(self, dim: int, shape: Sequence[int]) -> list[int]:
        if not self.points:
            if dim % self.n_top:
                raise self.error(f"number of top blobs ({self.n_top}) should evenly divide the "
                                 f"slice axis ({dim}) of bottom {list(shape)}", ShapeError)
            return [dim // self.n_top] * self.n_top
        cuts = [0] + self.points + [dim]
        for prev, cur in zip(cuts, cuts[1:]):
            if cur <= prev:
                raise self.error(f"slice points {self.points} must be strictly increasing and "
                                 f"inside (0, {dim}) for axis {self.axis} of bottom {list(shape)}",
                                 ShapeError)
        return [b - a for a, b in zip(cuts, cuts[1:])]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        sizes = self._sizes(x.shape[self.axis], x.shape)
        if len(sizes) == 1:
            return (x,)
        return tuple(torch.split(x, sizes, dim=self.axis))
