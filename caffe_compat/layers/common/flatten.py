"""Flatten (``flatten_layer.cpp``): merge the axes ``axis`` … ``end_axis``.

Bottom: any shape. Top: shape[:axis] + (prod(shape[axis:end_axis + 1]),) +
shape[end_axis + 1:] (``axis`` default 1, ``end_axis`` default −1; negative
values count from the end). Like Caffe, end_axis = axis − 1 inserts an axis
of 1. The top is a view of the bottom (Caffe shares the data); in-place use
is an error, as in Caffe.

Differences from Caffe: none known.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape, canonical_axis
from ..neuron._caffe_grad import inplace_of
from ..registry import register_layer


@register_layer("Flatten")
class Flatten(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        if inplace_of(param):
            raise self.error("does not allow in-place computation; give the top another name")
        p = param.flatten_param
        ndim = len(bottom_shapes[0])
        self.start = canonical_axis(p.axis, ndim, self.where)
        self.end = canonical_axis(p.end_axis, ndim, self.where)
        if self.end < self.start - 1:
            raise self.error(f"end_axis {p.end_axis} comes before axis {p.axis} for bottom "
                             f"{list(bottom_shapes[0])}", ShapeError)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        s = tuple(x.shape)
        return x.reshape(s[:self.start] + (math.prod(s[self.start:self.end + 1]),) + s[self.end + 1:])
