"""Eltwise (``eltwise_layer.cpp``): element-wise PROD, SUM or MAX of bottoms.

Bottoms: two or more blobs of one shape. Top: that shape.

* SUM (default): Σ coeff_i · x_i (``coeff`` once per bottom, default 1);
  gradient coeff_i · top_diff.
* PROD: Π x_i; gradient top_diff · Π_{j≠i} x_j, or with
  ``stable_prod_grad: false`` top_diff · y / x_i (NaN/inf where x_i = 0,
  as in Caffe). ``coeff`` is an error for PROD.
* MAX: Caffe's tie rule: between bottoms 0 and 1 a tie goes to bottom 1,
  later bottoms win only when strictly greater; the gradient goes to the
  winner only.

In place (top = bottom 0) Caffe zeroes the top before reading bottom 0, so
SUM and MAX silently drop bottom 0 and the gradients are garbage; we refuse
it with an error instead.

Differences from Caffe: in-place use is an error (see above).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer

_Op = caffe_pb2.EltwiseParameter


class _UnstableProd(torch.autograd.Function):
    """Π x_i whose gradient is Caffe's top_diff · y / x_i."""

    @staticmethod
    def forward(ctx: Any, *xs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y = xs[0] * xs[1]
        for x in xs[2:]:
            y = y * x
        ctx.save_for_backward(y, *xs)
        return y

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        y, *xs = ctx.saved_tensors
        return tuple(y / x * g for x in xs)


@register_layer("Eltwise")
class Eltwise(Layer):
    same_shape_top = True  # for bottoms of one shape; forward raises for others
    min_bottom = 2
    exact_num_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.eltwise_param
        self.op = p.operation
        n = len(bottom_shapes)
        if len(p.coeff) not in (0, n):
            raise self.error(f"takes one coefficient per bottom blob: {len(p.coeff)} coeff for "
                             f"{n} bottoms")
        if self.op == _Op.PROD and len(p.coeff):
            raise self.error("only takes coefficients for summation (operation SUM), not PROD")
        self.coeff = [float(c) for c in p.coeff] or [1.0] * n
        self.stable_prod_grad = p.stable_prod_grad
        if len(param.top) and param.top[0] == param.bottom[0]:
            raise self.error(
                f'cannot run in place (top "{param.top[0]}" is bottom 0): Caffe overwrites bottom 0 '
                "before reading it and computes a wrong result; give the top another name")

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for i, x in enumerate(xs[1:], 1):
            if x.shape != xs[0].shape:
                raise self.error(f"all bottoms must have the same shape: bottom[0] "
                                 f"{list(xs[0].shape)}, bottom[{i}] {list(x.shape)}", ShapeError)
        if self.op == _Op.SUM:
            y = xs[0] * self.coeff[0] if self.coeff[0] != 1 else xs[0]
            for c, x in zip(self.coeff[1:], xs[1:]):
                y = y + (x * c if c != 1 else x)
            return y
        if self.op == _Op.PROD:
            if not self.stable_prod_grad and torch.is_grad_enabled() and any(x.requires_grad for x in xs):
                return _UnstableProd.apply(*xs)
            y = xs[0] * xs[1]
            for x in xs[2:]:
                y = y * x
            return y
        y = torch.where(xs[0] > xs[1], xs[0], xs[1])
        for x in xs[2:]:
            y = torch.where(x > y, x, y)
        return y
