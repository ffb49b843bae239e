"""Reduction (``reduction_layer.cpp``): SUM, ASUM, SUMSQ or MEAN over trailing axes.

Bottom: any shape. Top: ``bottom.shape[:axis]`` — ``axis`` (default 0,
negative counts from the end) and every axis after it are reduced, so the
default gives a 0-axis (scalar) top. Each output is ``coeff`` (default 1)
times: SUM Σx, ASUM Σ|x|, SUMSQ Σx², MEAN Σx / count.

Backward: ASUM's gradient at 0 is 0 (sign(0) = 0), as in Caffe.

Differences from Caffe: none known.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape, canonical_axis
from ..registry import register_layer

_Op = caffe_pb2.ReductionParameter


@register_layer("Reduction")
class Reduction(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.reduction_param
        if p.operation not in (_Op.SUM, _Op.ASUM, _Op.SUMSQ, _Op.MEAN):
            raise self.error(f"unknown reduction operation {p.operation}")
        self.op = p.operation
        self.axis_param = int(p.axis)
        self.coeff = float(p.coeff)
        canonical_axis(self.axis_param, len(bottom_shapes[0]), self.where)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        axis = canonical_axis(self.axis_param, x.dim(), self.where)
        flat = x.reshape(*x.shape[:axis], -1)
        if self.op == _Op.ASUM:
            flat = flat.abs()
        elif self.op == _Op.SUMSQ:
            flat = flat * flat
        coeff = self.coeff / flat.shape[-1] if self.op == _Op.MEAN and flat.shape[-1] else self.coeff
        out = flat.sum(dim=-1)
        return out * coeff if coeff != 1.0 else out
