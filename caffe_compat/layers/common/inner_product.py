"""InnerProduct: a fully connected layer (``inner_product_layer.cpp``).

Bottom: any shape; the axes from ``axis`` (default 1) on are flattened into
K inputs. Top: ``shape[:axis] + (num_output,)``. Blobs: weight (num_output, K)
— or (K, num_output) with ``transpose: true`` — and bias (num_output,) when
``bias_term``.

Large weights (a million values or more: the classifiers of AlexNet, VGG,
GoogLeNet, ResNet) get their gradient added into the weight diff by one GEMM
with beta = 1, as Caffe's backward does, while the net backpropagates
(:func:`~caffe_compat.layers.base.accumulating_param_diffs`): no fresh
gradient tensor of the weight's size (150 MB for AlexNet's fc6) to allocate,
fault in and add each pass.

Differences from Caffe: none known.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape, canonical_axis, param_diffs_in_place
from ..registry import register_layer


_MIN_ACCUMULATED = 1 << 20  # weight values; below, a fresh gradient costs little


class _LinearIntoDiff(torch.autograd.Function):
    """``F.linear`` whose weight gradient, while the net backpropagates, is added into
    ``weight.grad`` in place (``addmm_``) instead of being returned."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                transpose: bool) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.weight = weight  # the parameter itself (a leaf): its .grad is the diff
        ctx.transpose = transpose
        ctx.has_bias = bias is not None
        return F.linear(x, weight.t() if transpose else weight, bias)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        w = ctx.weight
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = g @ (w.t() if ctx.transpose else w)
        if ctx.needs_input_grad[1]:
            diff = w.grad
            if param_diffs_in_place() and diff is not None and diff.shape == w.shape \
                    and diff.dtype == g.dtype and diff.is_contiguous():
                if ctx.transpose:
                    diff.addmm_(x.t(), g)  # (K, N) += x^T g
                else:
                    diff.addmm_(g.t(), x)  # (N, K) += g^T x
            else:
                gw = x.t() @ g if ctx.transpose else g.t() @ x
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g.sum(0)
        return gx, gw, gb, None


@register_layer("InnerProduct")
class InnerProduct(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.inner_product_param
        if not p.HasField("num_output"):
            raise self.error("inner_product_param.num_output is required")
        shape = bottom_shapes[0]
        self.axis = canonical_axis(p.axis, len(shape), self.where)
        self.num_output = p.num_output
        self.k = math.prod(shape[self.axis:])
        self.transpose = p.transpose
        self.bias_term = p.bias_term
        wshape = (self.k, self.num_output) if self.transpose else (self.num_output, self.k)
        self.add_param(wshape, p.weight_filler, attr="weight")
        self._into_diff = math.prod(wshape) >= _MIN_ACCUMULATED  # see _LinearIntoDiff
        if self.bias_term:
            self.add_param((self.num_output,), p.bias_filler, attr="bias")

    def _check(self, shape: Sequence[int]) -> int:
        k = math.prod(shape[self.axis:])
        if k != self.k:
            raise self.error(
                f"input size incompatible with inner product parameters: bottom "
                f"{list(shape)} gives {k} inputs from axis {self.axis}, the weights expect {self.k}",
                ShapeError,
            )
        return k

    def quick_top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        self._check(bottom_shapes[0])
        return [tuple(bottom_shapes[0][: self.axis]) + (self.num_output,)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        shape = x.shape
        k = self._check(shape)
        w = self.params[0]
        b = self.params[1] if self.bias_term else None
        # Already (..., K) for the usual 2-d bottom: skip the reshape call (per-layer overhead).
        flat = x if x.dim() == self.axis + 1 else x.reshape(*shape[: self.axis], k)
        if (self._into_diff and w.requires_grad and torch.is_grad_enabled() and flat.dim() == 2
                and type(flat) is torch.Tensor and flat.dtype == w.dtype and not flat.is_meta
                and not torch.is_autocast_enabled() and not torch.compiler.is_compiling()
                and not torch.jit.is_tracing()):
            return _LinearIntoDiff.apply(flat, w, b, self.transpose)
        return F.linear(flat, w.t() if self.transpose else w, b)
