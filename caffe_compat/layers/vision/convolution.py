"""Convolution and Deconvolution (``conv_layer.cpp``, ``deconv_layer.cpp``, ``base_conv_layer.cpp``).

Bottom(s): (*lead, C, *spatial) with the channel axis at ``axis`` (default 1;
the axes before it act as the batch); several bottoms of one shape share the
weights and give one top each. Top: (*lead, num_output, *out) with, per
spatial axis, extent e = d(k − 1) + 1 and

* Convolution: out = (in + 2p − e) / s + 1, C integer division (truncating
  toward zero, so a kernel that overhangs the padded input by less than a
  stride still gives one output, reading zeros past the edge);
* Deconvolution: out = s(in − 1) + e − 2p (no output_padding field).

Blobs: weight (num_output, C/group, *k) — (C, num_output/group, *k) for
Deconvolution — and, with ``bias_term`` (default true), bias (num_output,).
Any number of spatial axes: 1 to 3 run on torch's convolutions directly, more
are decomposed into sums of 3-d ones (Caffe's N-d im2col). ``force_nd_im2col``
and ``engine`` do not change numbers.

Caffe quirks kept: ``dilation: 0`` is accepted and makes every tap of that axis
read (write) one pixel, i.e. the kernel summed along the axis.

Differences from Caffe: in-place use (top named like the bottom) computes the
convolution correctly; Caffe overwrites its input while reading it.
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
from ._geometry import conv_nd, deconv_nd, spatial_setup


class _ConvBase(Layer):
    min_bottom = 1
    min_top = 1
    equal_num_bottom_top = True
    transposed = False

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.convolution_param
        shape = tuple(bottom_shapes[0])
        self.axis, self.num_spatial, self.geom = spatial_setup(self, p, shape)
        g = self.geom
        if not p.HasField("num_output") or p.num_output == 0:
            raise self.error("convolution_param.num_output must be given and > 0")
        self.channels = shape[self.axis]
        self.num_output = p.num_output
        self.group = p.group
        if self.group < 1 or self.channels % self.group or self.num_output % self.group:
            raise self.error(f"group {self.group} must divide the input channels "
                             f"({self.channels}) and num_output ({self.num_output})")
        for s in bottom_shapes[1:]:
            if tuple(s) != shape:
                raise self.error(f"all bottoms must have the same shape; got {list(shape)} and "
                                 f"{list(s)}", ShapeError)
        if self.transposed:
            wshape = (self.channels, self.num_output // self.group, *g.kernel)
        else:
            wshape = (self.num_output, self.channels // self.group, *g.kernel)
        self.add_param(wshape, p.weight_filler, attr="weight")
        self.bias_term = p.bias_term
        if self.bias_term:
            self.add_param((self.num_output,), p.bias_filler, attr="bias")
        # dilation 0 (accepted by Caffe): the taps of that axis coincide.
        self._sum_dims = [2 + i for i, d in enumerate(g.dilation) if d == 0]
        self._dilation = tuple(d or 1 for d in g.dilation)
        self._fn = deconv_nd if self.transposed else conv_nd
        self._plans: dict[torch.Size, list[int] | None] = {}

    def _out_sizes(self, shape: Sequence[int]) -> list[int]:
        g = self.geom
        sizes = shape[self.axis + 1:]
        return [g.deconv_out(i, n) if self.transposed else g.conv_out(i, n) for i, n in enumerate(sizes)]

    def _plan(self, shape: torch.Size) -> list[int] | None:
        """Check a bottom shape as Caffe's Reshape does; the F.pad widths that make torch's
        windows Caffe's when the kernel overhangs the padded input (else None). Cached."""
        if shape in self._plans:
            return self._plans[shape]
        if len(shape) != self.axis + 1 + self.num_spatial or shape[self.axis] != self.channels:
            raise self.error(
                f"bottom shape {list(shape)} does not fit the layer: expected "
                f"{self.axis + 1 + self.num_spatial} axes with {self.channels} channels at axis "
                f"{self.axis}", ShapeError)
        g = self.geom
        sizes = shape[self.axis + 1:]
        outs = self._out_sizes(shape)
        for i, out in enumerate(outs):
            if out <= 0:
                rule = "s(in-1) + extent - 2p" if self.transposed else "(in + 2p - extent)/s + 1"
                raise self.error(
                    f"kernel extent {g.extent(i)} (kernel {g.kernel[i]}, dilation {g.dilation[i]}) "
                    f"with stride {g.stride[i]} and pad {g.pad[i]} does not fit spatial axis {i} of "
                    f"size {sizes[i]}: output size {rule} = {out}; bottom {list(shape)}", ShapeError)
        widths: list[int] | None = None
        if not self.transposed and any(n + 2 * p < g.extent(i) for i, (n, p) in enumerate(zip(sizes, g.pad))):
            widths = []
            for i in reversed(range(self.num_spatial)):
                right = (outs[i] - 1) * g.stride[i] + g.extent(i) - sizes[i] - g.pad[i]
                widths += [g.pad[i], max(g.pad[i], right)]
        self._plans[shape] = widths
        return widths

    def quick_top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape] | None:
        shape = torch.Size(bottom_shapes[0])
        if any(tuple(s) != tuple(shape) for s in bottom_shapes[1:]):
            return None  # forward raises
        self._plan(shape)  # Caffe's checks
        return [(*shape[: self.axis], self.num_output, *self._out_sizes(shape))] * len(bottom_shapes)

    def forward(self, *bottoms: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        w = self.params[0]
        if self._sum_dims:
            w = w.sum(dim=self._sum_dims, keepdim=True)
        b = self.params[1] if self.bias_term else None
        g = self.geom
        tops = []
        for x in bottoms:
            if x.shape != bottoms[0].shape:
                raise self.error(f"all bottoms must have the same shape; got {list(bottoms[0].shape)} "
                                 f"and {list(x.shape)}", ShapeError)
            widths = self._plan(x.shape)
            lead = x.shape[: self.axis]
            if self.axis != 1:
                x = x.reshape(math.prod(lead), *x.shape[self.axis:])
            pad = g.pad
            if widths is not None:  # rare: Caffe reads zeros past the padded input
                x, pad = F.pad(x, widths), (0,) * self.num_spatial
            y = self._fn(x, w, b, g.stride, pad, self._dilation, self.group)
            tops.append(y.reshape(*lead, *y.shape[1:]) if self.axis != 1 else y)
        return tuple(tops)


@register_layer("Convolution")
class Convolution(_ConvBase):
    pass


@register_layer("Deconvolution")
class Deconvolution(_ConvBase):
    transposed = True
