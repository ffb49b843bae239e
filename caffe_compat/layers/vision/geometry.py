"""Kernel/stride/pad/dilation parsing shared by Convolution-like layers.

Caffe accepts ``kernel_size`` (once for all spatial axes or once per axis) or
the 2-D only ``kernel_h``/``kernel_w``; likewise for pad and stride; dilation
only as a list. This module turns a ConvolutionParameter into per-axis tuples.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import LayerError
from ...proto import caffe_pb2


@dataclass(frozen=True)
class ConvGeometry:
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pad: tuple[int, ...]
    dilation: tuple[int, ...]


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


def conv_geometry(p: caffe_pb2.ConvolutionParameter, num_spatial: int, where: str) -> ConvGeometry:
    if p.HasField("kernel_h") or p.HasField("kernel_w"):
        if num_spatial != 2:
            raise LayerError(f"{where}: kernel_h/kernel_w need 2 spatial axes, got {num_spatial}")
        if len(p.kernel_size):
            raise LayerError(f"{where}: give either kernel_size or kernel_h/kernel_w, not both")
        if not (p.HasField("kernel_h") and p.HasField("kernel_w")):
            raise LayerError(f"{where}: kernel_h and kernel_w must be given together")
        kernel = (p.kernel_h, p.kernel_w)
    else:
        if not len(p.kernel_size):
            raise LayerError(f"{where}: kernel_size (or kernel_h and kernel_w) is required")
        kernel = _per_axis(list(p.kernel_size), num_spatial, 1, "kernel_size", where)
    if any(k <= 0 for k in kernel):
        raise LayerError(f"{where}: kernel dimensions must be > 0, got {list(kernel)}")
    if p.HasField("stride_h") or p.HasField("stride_w"):
        if num_spatial != 2 or len(p.stride):
            raise LayerError(f"{where}: stride_h/stride_w need 2 spatial axes and no stride list")
        stride = (p.stride_h, p.stride_w)
    else:
        stride = _per_axis(list(p.stride), num_spatial, 1, "stride", where)
    if any(s <= 0 for s in stride):
        raise LayerError(f"{where}: stride must be > 0, got {list(stride)}")
    if p.HasField("pad_h") or p.HasField("pad_w"):
        if num_spatial != 2 or len(p.pad):
            raise LayerError(f"{where}: pad_h/pad_w need 2 spatial axes and no pad list")
        pad = (p.pad_h, p.pad_w)
    else:
        pad = _per_axis(list(p.pad), num_spatial, 0, "pad", where)
    dilation = _per_axis(list(p.dilation), num_spatial, 1, "dilation", where)
    return ConvGeometry(kernel, stride, pad, dilation)
