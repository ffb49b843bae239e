"""Convolution and Deconvolution (``conv_layer.cpp``, ``deconv_layer.cpp``).

Bottom(s): (N, C, *spatial) with the channel axis at ``axis`` (default 1);
several bottoms share the weights and give one top each. Top: (N, num_output,
*out) with out = (in + 2p − (d(k−1)+1)) / s + 1 for Convolution and
s(in − 1) + d(k − 1) + 1 − 2p for Deconvolution. Blobs: weight
(num_output, C/group, *k) — (C, num_output/group, *k) for Deconvolution —
and bias (num_output,).

1, 2 and 3 spatial axes run on torch's convolutions; Caffe's N-d im2col for
more axes is not provided.

Differences from Caffe: none known for up to 3 spatial axes.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ...errors import ShapeError, UnsupportedError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape, canonical_axis
from ..registry import register_layer
from .geometry import conv_geometry

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_DECONV = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


class _ConvBase(Layer):
    min_bottom = 1
    min_top = 1
    equal_num_bottom_top = True
    transposed = False

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.convolution_param
        shape = bottom_shapes[0]
        self.axis = canonical_axis(p.axis, len(shape), self.where)
        self.num_spatial = len(shape) - self.axis - 1
        if self.num_spatial < 1:
            raise self.error(f"bottom shape {list(shape)} has no spatial axes after axis {self.axis}",
                             ShapeError)
        if self.num_spatial > 3:
            raise self.error(f"{self.num_spatial} spatial axes; caffe_compat supports 1 to 3",
                             UnsupportedError)
        self.geom = conv_geometry(p, self.num_spatial, self.where)
        if not p.HasField("num_output") or p.num_output == 0:
            raise self.error("convolution_param.num_output must be given and > 0")
        self.channels = shape[self.axis]
        self.num_output = p.num_output
        self.group = p.group
        if self.group < 1 or self.channels % self.group or self.num_output % self.group:
            raise self.error(
                f"group {self.group} must divide the input channels ({self.channels}) and "
                f"num_output ({self.num_output})"
            )
        for s in bottom_shapes[1:]:
            if tuple(s) != tuple(shape):
                raise self.error(
                    f"all bottoms must have the same shape; got {list(shape)} and {list(s)}",
                    ShapeError,
                )
        if self.transposed:
            wshape = (self.channels, self.num_output // self.group, *self.geom.kernel)
        else:
            wshape = (self.num_output, self.channels // self.group, *self.geom.kernel)
        self.add_param(wshape, p.weight_filler, attr="weight")
        self.bias_term = p.bias_term
        if self.bias_term:
            self.add_param((self.num_output,), p.bias_filler, attr="bias")
        self._fn = (_DECONV if self.transposed else _CONV)[self.num_spatial]

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != self.axis + 1 + self.num_spatial or x.shape[self.axis] != self.channels:
            raise self.error(
                f"bottom shape {list(x.shape)} does not fit the layer: expected "
                f"{self.axis + 1 + self.num_spatial} axes with {self.channels} channels at axis {self.axis}",
                ShapeError,
            )
        if not self.transposed:
            g = self.geom
            for i, size in enumerate(x.shape[self.axis + 1:]):
                extent = g.dilation[i] * (g.kernel[i] - 1) + 1
                if size + 2 * g.pad[i] < extent:
                    raise self.error(
                        f"kernel extent {extent} (kernel {g.kernel[i]}, dilation {g.dilation[i]}) "
                        f"is larger than the padded input ({size} + 2*{g.pad[i]}) on spatial axis {i}; "
                        f"bottom {list(x.shape)}",
                        ShapeError,
                    )

    def forward(self, *bottoms: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        w = self.params[0]
        b = self.params[1] if self.bias_term else None
        g = self.geom
        outs = []
        for x in bottoms:
            self._check_input(x)
            lead = x.shape[: self.axis]
            flat = x.reshape(math.prod(lead), *x.shape[self.axis:]) if self.axis != 1 else x
            y = self._fn(flat, w, b, stride=g.stride, padding=g.pad, dilation=g.dilation,
                         groups=self.group)
            outs.append(y.reshape(*lead, *y.shape[1:]) if self.axis != 1 else y)
        return tuple(outs)


@register_layer("Convolution")
class Convolution(_ConvBase):
    pass


@register_layer("Deconvolution")
class Deconvolution(_ConvBase):
    transposed = True
