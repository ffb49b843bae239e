"""Upsample: the two common fork layers of this name (``upsample_layer.cpp``).

* One bottom (the YOLOv3 ports' darknet2caffe layer): nearest-neighbour
  upsampling by the integer ``scale`` (default 1): (N, C, H, W) →
  (N, C, s·H, s·W), y[h, w] = x[h // s, w // s]; the gradient of an input is
  the sum over its s × s block.
* Two bottoms (SegNet's max-unpooling): the values and the mask top of a MAX
  Pooling layer (flat index h·W_out + w of each value in its output plane).
  Output size ``upsample_h`` × ``upsample_w``, or scale_h·H − pad_out_h by
  scale_w·W − pad_out_w with ``scale`` (default 2) or ``scale_h``/``scale_w``;
  pad_out needs scale 2. Each value goes to its masked position, everything
  else is 0; a value's gradient is the top gradient at its position. When two
  values share a position the later one (in row-major order) wins, and both
  get its gradient, as in the fork. The mask gets no gradient.

Differences from Caffe: none known. (Other forks' "Upsample" layers — e.g.
Huawei's with ``stride`` — are not these: their unknown fields are
skipped with a warning.)
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer


class _Unpool(torch.autograd.Function):
    """SegNet's scatter (last write wins) with its gather backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, idx: torch.Tensor,  # type: ignore[override]
                plane: int) -> torch.Tensor:
        n, c, length = idx.shape
        order = torch.arange(length, device=x.device).expand(n, c, length)
        winner = torch.full((n, c, plane), -1, dtype=torch.long, device=x.device)
        winner = winner.scatter_reduce(2, idx, order, reduce="amax")
        vals = x.reshape(n, c, length).gather(2, winner.clamp(min=0))
        ctx.save_for_backward(idx)
        ctx.shape = x.shape
        return torch.where(winner >= 0, vals, torch.zeros_like(vals))

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor):  # type: ignore[override]
        (idx,) = ctx.saved_tensors
        return g.gather(2, idx).reshape(ctx.shape), None, None


@register_layer("Upsample")
class Upsample(Layer):
    min_bottom = 1
    max_bottom = 2
    exact_num_top = 1
    no_force_backward = frozenset({1})

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.upsample_param
        self.unpool = len(bottom_shapes) == 2
        if not self.unpool:
            self.scale = p.scale if p.HasField("scale") else 1
            if self.scale < 1:
                raise self.error(f"upsample_param.scale must be >= 1, got {self.scale}")
            return
        self.size: tuple[int, int] | None = None
        if p.HasField("upsample_h") and p.HasField("upsample_w"):
            self.size = (p.upsample_h, p.upsample_w)
            if min(self.size) <= 1:
                raise self.error(f"upsample_h and upsample_w must be > 1, got {list(self.size)}")
            return
        if p.HasField("scale_h") != p.HasField("scale_w") or (p.HasField("scale") and p.HasField("scale_h")):
            raise self.error("give upsample_h and upsample_w, or scale, or scale_h and scale_w")
        default = p.scale if p.HasField("scale") else 2  # SegNet's default
        self.scales = (p.scale_h, p.scale_w) if p.HasField("scale_h") else (default, default)
        if min(self.scales) <= 1:
            raise self.error(f"scales must be > 1, got {list(self.scales)}")
        self.pad_out = (int(p.pad_out_h), int(p.pad_out_w))
        for flag, s, axis in zip(self.pad_out, self.scales, "hw"):
            if flag and s != 2:
                raise self.error(f"pad_out_{axis} needs scale_{axis} == 2, got {s}")

    def _out(self, shape: Shape) -> tuple[int, int]:
        if self.size is not None:
            return self.size
        return (shape[2] * self.scales[0] - self.pad_out[0], shape[3] * self.scales[1] - self.pad_out[1])

    def forward(self, x: torch.Tensor, *mask: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if x.dim() != 4:
            raise self.error(f"bottom must have 4 axes (N, C, H, W), got {list(x.shape)}", ShapeError)
        if not self.unpool:
            s = self.scale
            return x if s == 1 else x.repeat_interleave(s, dim=2).repeat_interleave(s, dim=3)
        (m,) = mask
        if tuple(m.shape) != tuple(x.shape):
            raise self.error(f"the mask {list(m.shape)} must have the values' shape {list(x.shape)}",
                             ShapeError)
        oh, ow = self._out(tuple(x.shape))
        n, c = x.shape[:2]
        if x.is_meta:
            return torch.empty((n, c, oh, ow), device="meta")
        idx = m.detach().reshape(n, c, -1).to(torch.long)
        if not x.is_meta and (idx.min() < 0 or idx.max() >= oh * ow):
            raise self.error(f"mask index out of range for a {oh}x{ow} output (got "
                             f"{int(idx.min())}..{int(idx.max())}): check the scale against the "
                             "pooling layer that made the mask")
        return _Unpool.apply(x, idx, oh * ow).reshape(n, c, oh, ow)
