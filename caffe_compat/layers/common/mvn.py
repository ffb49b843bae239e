"""MVN (``mvn_layer.cpp``): mean-variance normalization per item and channel.

Bottom: up to 4 axes, read through Caffe's legacy (num, channels, height,
width) accessors. Top: the bottom **padded to 4 axes** with trailing 1s
((N, C) gives (N, C, 1, 1)), as Caffe's Reshape does.

Statistics are over H·W per (n, c) — or over C·H·W per n with
``across_channels``. y = x − mean; with ``normalize_variance`` (default true)
y = (x − mean) / (sqrt(var) + eps), var the biased variance, eps (default
1e-9) added *after* the square root.

Caffe's backward with ``normalize_variance`` is
dx = (dy − mean(dy) − y·mean(y·dy)) / (σ + eps), the derivative of the
forward only when eps = 0 (it treats σ + eps as σ); it is reproduced by hand.
In place (top = bottom) its steps overwrite the top diff they still read, and
``axpby`` on aliased arrays (BLAS builds without MKL scale then add) leaves
dx = −(2/dim)·S·(y + Σy) / (σ + eps) with S = Σ(y·dy) per row — measured on
real Caffe and reproduced too.

Differences from Caffe: none known.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer


class _Normalize(torch.autograd.Function):
    """Rows of (rows, dim): y = (x − mean) / (σ + eps), with Caffe's backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, eps: float,  # type: ignore[override]
                inplace: bool) -> torch.Tensor:
        centred = x - x.mean(dim=1, keepdim=True)
        denom = centred.pow(2).mean(dim=1, keepdim=True).sqrt() + eps
        y = centred / denom
        ctx.save_for_backward(y, denom)
        ctx.inplace = inplace
        return y

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        y, denom = ctx.saved_tensors
        s = (y * dy).sum(dim=1, keepdim=True)
        if ctx.inplace:
            dx = (y + y.sum(dim=1, keepdim=True)) * s * (-2.0 / y.shape[1])
        else:
            dx = dy - dy.mean(dim=1, keepdim=True) - y * (s / y.shape[1])
        return dx / denom, None, None


@register_layer("MVN")
class MVN(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.mvn_param
        self.normalize_variance = p.normalize_variance
        self.across_channels = p.across_channels
        self.eps = float(p.eps)
        self.inplace = len(param.bottom) == 1 and list(param.bottom) == list(param.top)
        self._legacy_shape(bottom_shapes[0])

    def _legacy_shape(self, shape: Sequence[int]) -> tuple[int, int, int, int]:
        if len(shape) > 4:
            raise self.error(f"bottom {list(shape)} has {len(shape)} axes; MVN uses Caffe's legacy "
                             "(num, channels, height, width) accessors, which allow at most 4", ShapeError)
        padded = tuple(shape) + (1,) * (4 - len(shape))
        return padded  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        shape = self._legacy_shape(x.shape)
        rows = shape[0] if self.across_channels else shape[0] * shape[1]
        flat = x.reshape(rows, -1)
        if self.normalize_variance:
            y = _Normalize.apply(flat, self.eps, self.inplace)
        else:
            y = flat - flat.mean(dim=1, keepdim=True)
        return y.reshape(shape)
