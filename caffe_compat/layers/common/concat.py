"""Concat (``concat_layer.cpp``): join bottoms along one axis.

Bottoms: one or more blobs with the same number of axes and the same shape
except along ``axis`` (default 1, negative counts from the end; the legacy
``concat_dim`` gives it as an unsigned number — not both). Top: the
concatenation; the gradient is sliced back. One bottom passes through.

Differences from Caffe: none known.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape, canonical_axis
from ..registry import register_layer


@register_layer("Concat")
class Concat(Layer):
    min_bottom = 1
    exact_num_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.concat_param
        ndim = len(bottom_shapes[0])
        if p.HasField("axis") and p.HasField("concat_dim"):
            raise self.error("either axis or concat_dim should be specified; not both")
        if p.HasField("concat_dim"):
            if p.concat_dim >= ndim:
                raise self.error(f"concat_dim {p.concat_dim} out of range for bottom[0] "
                                 f"{list(bottom_shapes[0])}", ShapeError)
            self.axis = int(p.concat_dim)
        else:
            self.axis = canonical_axis(p.axis, ndim, self.where)

    def _check(self, shapes: Sequence[Sequence[int]]) -> None:
        first = shapes[0]
        for i, x in enumerate(shapes[1:], 1):
            if len(x) != len(first):
                raise self.error(f"all inputs must have the same number of axes: bottom[0] "
                                 f"{list(first)}, bottom[{i}] {list(x)}", ShapeError)
            for j in range(len(first)):
                if j != self.axis and x[j] != first[j]:
                    raise self.error(
                        f"all inputs must have the same shape, except at concat axis {self.axis}: "
                        f"bottom[0] {list(first)}, bottom[{i}] {list(x)}", ShapeError)

    def quick_top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape] | None:
        self._check(bottom_shapes)
        first = tuple(bottom_shapes[0])
        if len(bottom_shapes) == 1:
            return [first]
        if not 0 <= self.axis < len(first):
            return None  # torch.cat raises
        total = sum(s[self.axis] for s in bottom_shapes)
        return [first[: self.axis] + (total,) + first[self.axis + 1:]]

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        first = xs[0]
        self._check([x.shape for x in xs])
        if len(xs) == 1:
            return first
        return torch.cat(xs, dim=self.axis)
