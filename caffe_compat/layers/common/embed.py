"""Embed (``embed_layer.cpp``): a lookup table, the one-hot InnerProduct.

Bottom: indices of any shape, as floats (truncated toward zero, as C's cast
does: 1.7 → 1, −0.5 → 0). Top: ``bottom.shape + (num_output,)`` with
``top[..., :] = W[index] + b``. Blobs: weight (input_dim, num_output) —
transposed relative to InnerProduct — and bias (num_output,) when ``bias_term``
(default true).

Backward: rows of W accumulate the gradients of every position that used
them; the bottom gets none (Caffe aborts when ``force_backward`` asks for it).

Differences from Caffe: an index outside [0, input_dim) raises; Caffe's
release build reads past the weight blob (its checks are debug-only).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer


@register_layer("Embed")
class Embed(Layer):
    exact_num_bottom = 1
    exact_num_top = 1
    no_force_backward = frozenset({0})

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.embed_param
        if p.num_output <= 0:
            raise self.error(f"embed_param.num_output must be > 0, got {p.num_output}")
        if p.input_dim <= 0:
            raise self.error(f"embed_param.input_dim must be > 0, got {p.input_dim}")
        self.num_output, self.input_dim = int(p.num_output), int(p.input_dim)
        self.bias_term = p.bias_term
        self.add_param((self.input_dim, self.num_output), p.weight_filler, attr="weight")
        if self.bias_term:
            self.add_param((self.num_output,), p.bias_filler, attr="bias")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        index = x.detach().to(torch.long)  # truncation toward zero, like static_cast<int>
        if not x.is_meta and index.numel():
            lo, hi = int(index.min()), int(index.max())
            if lo < 0 or hi >= self.input_dim:
                raise self.error(f"indices must lie in [0, {self.input_dim}) (input_dim); got min "
                                 f"{lo}, max {hi} in bottom {list(x.shape)}", ShapeError)
        top = F.embedding(index, self.params[0])
        return top + self.params[1] if self.bias_term else top
