"""Crop (``crop_layer.cpp``): cut bottom 0 to the size of bottom 1.

Bottoms: the data x and a reference r (only its shape is used; it gets no
gradient). Top: x's dimensions before ``axis`` (default 2; negative counts
from the end), r's from ``axis`` on, taken at ``offset`` — none (0), one for
every cropped axis, or one per cropped axis. The gradient is x's diff with
the cropped window filled and zeros elsewhere. In-place use is an error
(Caffe's backward zeroes the shared diff before reading it).

Differences from Caffe: in-place use is an error instead of a zero gradient.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape, canonical_axis
from ..neuron._caffe_grad import inplace_of
from ..registry import register_layer


@register_layer("Crop")
class Crop(Layer):
    exact_num_bottom = 2
    exact_num_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        if inplace_of(param):
            raise self.error("cannot run in place; give the top another name")
        p = param.crop_param
        ndim = len(bottom_shapes[0])
        self.axis = canonical_axis(p.axis, ndim, self.where)
        n_crop = ndim - self.axis
        offsets = [int(o) for o in p.offset]
        if len(offsets) > 1 and len(offsets) != n_crop:
            raise self.error(f"{len(offsets)} offsets given; expected 0, 1 or one per axis from "
                             f"{self.axis} on ({n_crop}) for bottom {list(bottom_shapes[0])}")
        self.offsets = offsets * n_crop if len(offsets) == 1 else (offsets or [0] * n_crop)

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if ref.dim() < x.dim():
            raise self.error(f"the reference bottom {list(ref.shape)} has fewer axes than the data "
                             f"{list(x.shape)}", ShapeError)
        y = x
        for i, off in enumerate(self.offsets):
            ax = self.axis + i
            size = ref.shape[ax]
            if x.shape[ax] - off < size:
                raise self.error(f"the crop for axis {ax} is out of bounds: offset {off} + size "
                                 f"{size} > {x.shape[ax]} (bottom {list(x.shape)}, reference "
                                 f"{list(ref.shape)})", ShapeError)
            y = y.narrow(ax, off, size)
        return y
