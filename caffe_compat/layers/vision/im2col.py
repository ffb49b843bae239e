"""Im2col (``im2col_layer.cpp``): the convolution's column buffer as a top.

Bottom: (*lead, C, *spatial) with the channel axis at
``convolution_param.axis`` (default 1). Top: (*lead, C·Πk, *out) where
column ``(c·k1 + i1)·k2 + i2 ...`` holds channel c read at kernel tap
(i1, i2, ...), and each ``out`` is Convolution's:
(in + 2p − (d(k − 1) + 1)) / s + 1, C division truncating toward zero.
Geometry fields are Convolution's (kernel_size / kernel_h·kernel_w, stride,
pad, dilation, any number of spatial axes); ``num_output`` is unused and
``force_nd_im2col`` does not change numbers. Padding reads zeros.

Backward: col2im — taps that read the same pixel add up.

Differences from Caffe: none known.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer
from ._geometry import spatial_setup


@register_layer("Im2col")
class Im2col(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.convolution_param
        self.axis, self.num_spatial, self.geom = spatial_setup(self, p, tuple(bottom_shapes[0]))

    def _out_sizes(self, x: torch.Tensor) -> list[int]:
        if x.dim() != self.axis + 1 + self.num_spatial:
            raise self.error(f"bottom {list(x.shape)} must keep {self.axis + 1 + self.num_spatial} "
                             "axes (the number of spatial axes is fixed at setup)", ShapeError)
        g = self.geom
        sizes = x.shape[self.axis + 1:]
        outs = [g.conv_out(i, n) for i, n in enumerate(sizes)]
        for i, out in enumerate(outs):
            if out <= 0:
                raise self.error(f"kernel extent {g.extent(i)} with stride {g.stride[i]} and pad "
                                 f"{g.pad[i]} gives output size {out} on spatial axis {i} of "
                                 f"bottom {list(x.shape)}", ShapeError)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        outs = self._out_sizes(x)
        g, d = self.geom, self.num_spatial
        lead, channels = x.shape[: self.axis], x.shape[self.axis]
        cols = x.reshape(math.prod(lead), channels, *x.shape[self.axis + 1:])
        widths: list[int] = []
        for i in reversed(range(d)):  # F.pad lists the last axis first
            reach = (outs[i] - 1) * g.stride[i] + g.extent(i)
            widths += [g.pad[i], max(g.pad[i], reach - cols.shape[2 + i] - g.pad[i])]
        cols = F.pad(cols, widths)
        # Gather (out, tap) pairs one spatial axis at a time; each axis becomes
        # its output axis, and its kernel-tap axis moves to the end.
        for i in range(d):
            taps = torch.arange(g.kernel[i], device=x.device) * g.dilation[i]
            starts = torch.arange(outs[i], device=x.device) * g.stride[i]
            index = (starts[:, None] + taps[None, :]).reshape(-1)
            cols = cols.index_select(2 + i, index).unflatten(2 + i, (outs[i], g.kernel[i]))
            cols = cols.movedim(3 + i, -1)
        # (B, C, *out, *k) -> (B, C, *k, *out) -> (B, C·Πk, *out)
        order = [0, 1] + list(range(2 + d, 2 + 2 * d)) + list(range(2, 2 + d))
        cols = cols.permute(order).reshape(cols.shape[0], channels * math.prod(g.kernel), *outs)
        return cols.reshape(*lead, *cols.shape[1:])
