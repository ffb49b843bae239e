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

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        first = xs[0]
        for i, x in enumerate(xs[1:], 1):
            if x.dim() != first.dim():
                raise self.error(f"all inputs must have the same number of axes: bottom[0] "
                                 f"{list(first.shape)}, bottom[{i}] {list(x.shape)}", ShapeError)
            for j in range(first.dim()):
                if j != self.axis and x.shape[j] != first.shape[j]:
                    raise self.error(
                        f"all inputs must have the same shape, except at concat axis {self.axis}: "
                        f"bottom[0] {list(first.shape)}, bottom[{i}] {list(x.shape)}", ShapeError)
        if len(xs) == 1:
            return first
        return torch.cat(xs, dim=self.axis)
