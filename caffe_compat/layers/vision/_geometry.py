"""Convolution geometry shared by Convolution-like layers (``base_conv_layer.cpp``).

Caffe accepts ``kernel_size`` (once for all spatial axes or once per axis) or
the 2-D only ``kernel_h``/``kernel_w``; likewise for pad and stride; dilation
only as a list. :func:`conv_geometry` turns a ConvolutionParameter into
per-axis tuples, with Caffe's checks. :func:`conv_nd` / :func:`deconv_nd`
run torch's convolutions for 1 to 3 spatial axes and decompose more axes
(Caffe's N-d im2col) into sums of 3-d convolutions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ...errors import LayerError, ShapeError
from ...proto import caffe_pb2
from ..base import Layer, canonical_axis
from . import _cpu_kernels

__all__ = ["ConvGeometry", "conv_geometry", "conv_nd", "deconv_nd"]

_CONV: dict[int, Callable[..., torch.Tensor]] = {1: F.conv1d, 2: _cpu_kernels.conv2d, 3: F.conv3d}
_DECONV = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


@dataclass(frozen=True)
class ConvGeometry:
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pad: tuple[int, ...]
    dilation: tuple[int, ...]

    def extent(self, i: int) -> int:
        return self.dilation[i] * (self.kernel[i] - 1) + 1

    def conv_out(self, i: int, size: int) -> int:
        """Caffe's output length: C integer division truncates toward zero, so a
        kernel overhanging the padded input by less than a stride still gives 1."""
        span = size + 2 * self.pad[i] - self.extent(i)
        q = abs(span) // self.stride[i]
        return (q if span >= 0 else -q) + 1

    def deconv_out(self, i: int, size: int) -> int:
        return self.stride[i] * (size - 1) + self.extent(i) - 2 * self.pad[i]


def _per_axis(values: list[int], n: int, default: int, what: str, where: str) -> tuple[int, ...]:
    if not values:
        return (default,) * n
    if len(values) == 1:
        return (values[0],) * n
    if len(values) != n:
        raise LayerError(
            f"{where}: {what} must be given once or once per spatial axis ({n}), got {len(values)}"
        )
    return tuple(values)


def _hw(p: caffe_pb2.ConvolutionParameter, what: str, listed: int, num_spatial: int,
        where: str) -> tuple[int, ...] | None:
    """The ``<what>_h``/``<what>_w`` pair, or None when neither is given."""
    has_h, has_w = p.HasField(what + "_h"), p.HasField(what + "_w")
    if not (has_h or has_w):
        return None
    if what != "pad" and not (has_h and has_w):  # Caffe reads the missing one as 0, and aborts
        raise LayerError(f"{where}: {what}_h and {what}_w must be given together")
    if num_spatial != 2:
        raise LayerError(f"{where}: {what}_h/{what}_w can only be used with 2 spatial axes, "
                         f"got {num_spatial}")
    if listed:
        raise LayerError(f"{where}: give either {what} or {what}_h/{what}_w, not both")
    return getattr(p, what + "_h"), getattr(p, what + "_w")


def conv_geometry(p: caffe_pb2.ConvolutionParameter, num_spatial: int, where: str) -> ConvGeometry:
    kernel_hw = _hw(p, "kernel", len(p.kernel_size), num_spatial, where)
    if kernel_hw is None and not len(p.kernel_size):
        raise LayerError(f"{where}: kernel_size (or kernel_h and kernel_w) is required")
    kernel = kernel_hw or _per_axis(list(p.kernel_size), num_spatial, 1, "kernel_size", where)
    if any(k <= 0 for k in kernel):
        raise LayerError(f"{where}: kernel dimensions must be > 0, got {list(kernel)}")
    stride = _hw(p, "stride", len(p.stride), num_spatial, where) \
        or _per_axis(list(p.stride), num_spatial, 1, "stride", where)
    if any(s <= 0 for s in stride):
        raise LayerError(f"{where}: stride must be > 0, got {list(stride)}")
    pad = _hw(p, "pad", len(p.pad), num_spatial, where) \
        or _per_axis(list(p.pad), num_spatial, 0, "pad", where)
    # Caffe does not check dilation > 0; dilation 0 makes every tap read one pixel.
    dilation = _per_axis(list(p.dilation), num_spatial, 1, "dilation", where)
    return ConvGeometry(kernel, stride, pad, dilation)


def spatial_setup(layer: Layer, p: caffe_pb2.ConvolutionParameter, shape: tuple[int, ...]
                  ) -> tuple[int, int, ConvGeometry]:
    """(channel axis, number of spatial axes, geometry) of a convolution-like layer
    (Convolution, Deconvolution, Im2col) for a bottom of ``shape``."""
    axis = canonical_axis(p.axis, len(shape), layer.where)
    num_spatial = len(shape) - axis - 1
    if num_spatial < 1:
        raise layer.error(f"bottom shape {list(shape)} has no spatial axes after the channel "
                          f"axis {axis}", ShapeError)
    return axis, num_spatial, conv_geometry(p, num_spatial, layer.where)


def _bias(y: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    return y if b is None else y + b.view(1, -1, *([1] * (y.dim() - 2)))


def conv_nd(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, stride: Sequence[int],
            pad: Sequence[int], dilation: Sequence[int], groups: int) -> torch.Tensor:
    """Convolution of (N, C, *spatial) with any number of spatial axes."""
    d = x.dim() - 2
    if d <= 3:
        return _CONV[d](x, w, b, tuple(stride), tuple(pad), tuple(dilation), groups)
    # More axes: one (d-1)-axis convolution per tap of the first kernel axis,
    # the first spatial axis folded into the batch.
    s0, p0, d0, k0 = stride[0], pad[0], dilation[0], w.shape[2]
    if p0:
        x = F.pad(x, [0, 0] * (d - 1) + [p0, p0])
    n, c = x.shape[:2]
    o0 = (x.shape[2] - d0 * (k0 - 1) - 1) // s0 + 1
    total = None
    for k in range(k0):
        xs = x[:, :, k * d0: k * d0 + (o0 - 1) * s0 + 1: s0].transpose(1, 2)
        y = conv_nd(xs.reshape(n * o0, c, *xs.shape[3:]), w[:, :, k], None, stride[1:], pad[1:],
                    dilation[1:], groups)
        total = y if total is None else total + y
    assert total is not None
    return _bias(total.reshape(n, o0, *total.shape[1:]).transpose(1, 2), b)


def deconv_nd(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, stride: Sequence[int],
              pad: Sequence[int], dilation: Sequence[int], groups: int) -> torch.Tensor:
    """Transposed convolution (Caffe's Deconvolution) with any number of spatial axes."""
    d = x.dim() - 2
    if d <= 3:
        return _DECONV[d](x, w, b, stride=tuple(stride), padding=tuple(pad),
                          dilation=tuple(dilation), groups=groups)
    s0, p0, d0, k0 = stride[0], pad[0], dilation[0], w.shape[2]
    n, c, i0 = x.shape[:3]
    xs = x.transpose(1, 2).reshape(n * i0, c, *x.shape[3:])
    full = s0 * (i0 - 1) + d0 * (k0 - 1) + 1
    out = None
    for k in range(k0):
        z = deconv_nd(xs, w[:, :, k], None, stride[1:], pad[1:], dilation[1:], groups)
        z = z.reshape(n, i0, *z.shape[1:])
        if out is None:
            out = z.new_zeros(n, full, *z.shape[2:])
        where = torch.arange(i0, device=x.device) * s0 + k * d0
        out = out.index_add(1, where, z)
    assert out is not None
    return _bias(out[:, p0: full - p0].transpose(1, 2), b)
