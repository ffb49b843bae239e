"""InnerProduct: a fully connected layer (``inner_product_layer.cpp``).

Bottom: any shape; the axes from ``axis`` (default 1) on are flattened into
K inputs. Top: ``shape[:axis] + (num_output,)``. Blobs: weight (num_output, K)
— or (K, num_output) with ``transpose: true`` — and bias (num_output,) when
``bias_term``.

Differences from Caffe: none known.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape, canonical_axis
from ..registry import register_layer


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
        if self.transpose:
            w = w.t()
        b = self.params[1] if self.bias_term else None
        # Already (..., K) for the usual 2-d bottom: skip the reshape call (per-layer overhead).
        flat = x if x.dim() == self.axis + 1 else x.reshape(*shape[: self.axis], k)
        return F.linear(flat, w, b)
