"""Reshape (``reshape_layer.cpp``): a new shape for the same data.

Bottom: any shape. Top: ``reshape_param.shape`` replacing the bottom axes
[axis, axis + num_axes) (``axis`` default 0, negative counts from the end
with −1 meaning *after* the last axis; ``num_axes`` default −1 = to the end).
In the new shape 0 copies the bottom's dimension at that position and one
−1 is inferred from the count. The top is a view of the bottom (Caffe shares
the data); in-place use is an error, as in Caffe.

Differences from Caffe: none known.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..neuron._caffe_grad import inplace_of
from ..registry import register_layer


@register_layer("Reshape")
class Reshape(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        if inplace_of(param):
            raise self.error("does not allow in-place computation; give the top another name")
        p = param.reshape_param
        self.dims = [int(d) for d in p.shape.dim]
        bad = [d for d in self.dims if d < -1]
        if bad:
            raise self.error(f"shape {self.dims} has negative dimension(s) {bad}; only 0 (copy) "
                             "and -1 (infer) are special", ShapeError)
        if self.dims.count(-1) > 1:
            raise self.error(f"shape {self.dims} contains multiple -1 dims; at most a single "
                             "value of -1 may be specified", ShapeError)
        if p.num_axes < -1:
            raise self.error(f"num_axes must be >= 0, or -1 for all; got {p.num_axes}")
        self.axis, self.num_axes = p.axis, p.num_axes

    def _top_shape(self, shape: Sequence[int]) -> list[int]:
        ndim, count = len(shape), math.prod(shape)
        start = self.axis if self.axis >= 0 else ndim + self.axis + 1
        if not 0 <= start <= ndim:
            raise self.error(f"axis {self.axis} out of range for the {ndim}-D bottom {list(shape)}",
                             ShapeError)
        end = ndim if self.num_axes == -1 else start + self.num_axes
        if end > ndim:
            raise self.error(f"axis {start} + num_axes {self.num_axes} is past the last axis of "
                             f"bottom {list(shape)}", ShapeError)
        new = list(self.dims)
        for i, d in enumerate(new):
            if d == 0:
                if start + i >= ndim:
                    raise self.error(f"shape {self.dims} has a 0 at position {i} but bottom "
                                     f"{list(shape)} has no axis {start + i} to copy", ShapeError)
                new[i] = shape[start + i]
        if -1 in new:
            known = math.prod(shape[:start]) * math.prod(shape[end:]) * math.prod(
                d for d in new if d != -1)
            if known == 0 or count % known:
                raise self.error(f"bottom count {count} ({list(shape)}) must be divisible by the "
                                 f"product of the specified dimensions ({known})", ShapeError)
            new[new.index(-1)] = count // known
        top = list(shape[:start]) + new + list(shape[end:])
        if math.prod(top) != count:
            raise self.error(f"output count must match input count: top {top} has {math.prod(top)}, "
                             f"bottom {list(shape)} has {count}", ShapeError)
        return top

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return x.reshape(self._top_shape(tuple(x.shape)))
