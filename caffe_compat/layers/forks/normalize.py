"""Normalize: L2 normalization with a learned scale (``normalize_layer.cpp``, SSD fork).

Bottom: (N, C, ...) with at least 2 axes (the axes after C are "spatial").
Top: same shape.

* ``across_spatial`` (default): y = x / sqrt(Σ_{c,spatial} x² + eps), one norm
  per sample;
* otherwise: y = x / sqrt(Σ_c x² + eps), one norm per spatial position.

Then y is multiplied by the scale blob: one value (``channel_shared``,
default; a 0-axis blob) or one per channel (C,). The scale's filler defaults to
constant 1. eps defaults to 1e-10 and sits inside the square root.

The fork writes the backward by hand: bottom_diff = scale ⊙ (g − x·(x·g)/n²)/n
with n the norm. With a shared scale that is the derivative; with one scale
per channel it is not (the derivative would weight g by the scale *before*
the projection), and the fork's expression is kept. The scale's gradient is
Σ x/n·g.

Differences from Caffe: blobs with more than 4 axes are accepted (the fork's
legacy height()/width() accessors abort on them); the scale's gradient is
Σ top·top_diff / scale in the fork, which is NaN when the scale is 0, here
the limit.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer


@register_layer("Normalize")
class Normalize(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.norm_param
        shape = bottom_shapes[0]
        if len(shape) < 2:
            raise self.error(f"bottom must have at least 2 axes (N, C, ...), got {list(shape)}",
                             ShapeError)
        self.across_spatial = p.across_spatial
        self.channel_shared = p.channel_shared
        self.eps = float(p.eps)
        self.channels = shape[1]
        filler = p.scale_filler if p.HasField("scale_filler") else caffe_pb2.FillerParameter(
            type="constant", value=1.0)
        self.add_param(() if self.channel_shared else (self.channels,), filler, attr="scale")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if x.dim() < 2 or x.shape[1] != self.channels:
            raise self.error(f"bottom {list(x.shape)} must have {self.channels} channels on axis 1",
                             ShapeError)
        flat = x.reshape(x.shape[0], self.channels, -1)
        dims = (1, 2) if self.across_spatial else (1,)
        scale = self.params[0]
        scale = scale.view(1, 1, 1) if self.channel_shared else scale.view(1, -1, 1)
        if self.channel_shared or x.is_meta:
            norm = torch.sqrt(flat.square().sum(dim=dims, keepdim=True) + self.eps)
            return (flat / norm * scale).reshape(x.shape)
        return _ForkNormalize.apply(flat, scale, dims, self.eps).reshape(x.shape)


class _ForkNormalize(torch.autograd.Function):
    """y = scale ⊙ x/n with the fork's bottom gradient scale ⊙ (g − x·(x·g)/n²)/n."""

    @staticmethod
    def forward(ctx, x, scale, dims, eps):  # type: ignore[no-untyped-def, override]
        norm = torch.sqrt(x.square().sum(dim=dims, keepdim=True) + eps)
        ctx.save_for_backward(x, scale, norm)
        ctx.dims = dims
        return x / norm * scale

    @staticmethod
    def backward(ctx, g):  # type: ignore[no-untyped-def, override]
        x, scale, norm = ctx.saved_tensors
        dot = (x * g).sum(dim=ctx.dims, keepdim=True)
        dx = scale * (g - x * dot / norm.square()) / norm
        dscale = (x / norm * g).sum(dim=(0, 2), keepdim=True) if ctx.needs_input_grad[1] else None
        return dx, dscale, None, None
