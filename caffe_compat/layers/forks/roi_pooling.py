"""ROIPooling: Fast/Faster R-CNN's max pooling over regions (``roi_pooling_layer.cpp/.cu``).

Bottoms: features (N, C, H, W) and regions (R, 5) rows ``[batch index, x1,
y1, x2, y2]`` in image pixels (any shape with 5 values per region). Top: (R,
C, pooled_h, pooled_w).

A region's corners are round(coordinate · ``spatial_scale``) (halves away
from zero); its size is max(end − start + 1, 1). Bin (ph, pw) covers rows
[floor(ph·bh), ceil((ph+1)·bh)) + start with bh = height / pooled_h computed
in float, clipped to the feature map (columns alike). The output is the bin's
maximum (the first one in row-major order gets the gradient), 0 for an empty
bin. The regions get no gradient.

Differences from Caffe: the fork's CPU build has no backward (its GPU
kernel's is reproduced); a bin whose values are all below −FLT_MAX (−inf)
gives −inf where the fork keeps −FLT_MAX.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer

_BUDGET = 1 << 23  # window elements gathered at once (bounds the memory, ~32 MB)


def _round(x: np.ndarray) -> np.ndarray:
    """C's round(): halves away from zero (numpy rounds them to even)."""
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)


@register_layer("ROIPooling")
class ROIPooling(Layer):
    exact_num_bottom = 2
    exact_num_top = 1
    no_force_backward = frozenset({1})

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.roi_pooling_param
        if p.pooled_h <= 0 or p.pooled_w <= 0:
            raise self.error(f"pooled_h and pooled_w must be > 0, got {p.pooled_h} and {p.pooled_w}")
        self.pooled = (int(p.pooled_h), int(p.pooled_w))
        self.scale = np.float32(p.spatial_scale)

    def _check(self, x: Shape, rois: Shape) -> int:
        if len(x) != 4:
            raise self.error(f"features must have 4 axes (N, C, H, W), got {list(x)}", ShapeError)
        count = int(np.prod(rois)) if rois else 1
        if not rois or count != rois[0] * 5:
            raise self.error(f"regions must hold 5 values per region [batch, x1, y1, x2, y2], "
                             f"got a blob of shape {list(rois)}", ShapeError)
        return rois[0]

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        r = self._check(bottom_shapes[0], bottom_shapes[1])
        return [(r, bottom_shapes[0][1], *self.pooled)]

    def _bins(self, rois: np.ndarray, size: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
        """Start and end (R, pooled) of each bin along one axis (axis 0: y, 1: x)."""
        start = _round(rois[:, 2 - axis] * self.scale)  # rows [b, x1, y1, x2, y2]
        end = _round(rois[:, 4 - axis] * self.scale)
        length = np.maximum(end - start + 1, 1).astype(np.float32)
        bins = self.pooled[axis]
        step = length / np.float32(bins)  # float, as the fork computes it
        k = np.arange(bins, dtype=np.float32)
        lo = np.floor(k[None, :] * step[:, None]).astype(np.int64) + start[:, None]
        hi = np.ceil((k[None, :] + 1) * step[:, None]).astype(np.int64) + start[:, None]
        return np.clip(lo, 0, size), np.clip(hi, 0, size)

    def forward(self, x: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        r = self._check(tuple(x.shape), tuple(rois.shape))
        n, c, h, w = x.shape
        ph, pw = self.pooled
        if x.is_meta:
            return torch.empty((r, c, ph, pw), device="meta")
        boxes = rois.detach().reshape(r, 5).cpu().numpy().astype(np.float32)
        batch = boxes[:, 0].astype(np.int64)  # the fork truncates the index
        if r and (batch.min() < 0 or batch.max() >= n):
            raise self.error(f"region batch indices must lie in [0, {n}), got {sorted(set(batch))}")
        y0, y1 = self._bins(boxes, h, 0)
        x0, x1 = self._bins(boxes, w, 1)
        window = c * ph * pw * max(1, int((y1 - y0).max(initial=1))) * max(1, int((x1 - x0).max(initial=1)))
        step = max(1, _BUDGET // window)
        outs = [self._pool(x, batch[s:s + step], y0[s:s + step], y1[s:s + step],
                           x0[s:s + step], x1[s:s + step]) for s in range(0, r, step)]
        return torch.cat(outs) if outs else x.new_zeros((0, c, ph, pw))

    def _pool(self, x: torch.Tensor, batch: np.ndarray, y0: np.ndarray, y1: np.ndarray,
              x0: np.ndarray, x1: np.ndarray) -> torch.Tensor:
        """Max of each bin by gathering every bin's window, padded to the largest one."""
        dev = x.device
        _, c, h, w = x.shape
        kh, kw = max(1, int((y1 - y0).max())), max(1, int((x1 - x0).max()))
        rows = y0[:, :, None] + np.arange(kh)  # (R, ph, kh)
        cols = x0[:, :, None] + np.arange(kw)  # (R, pw, kw)
        valid = (rows < y1[:, :, None])[:, :, :, None, None] & (cols < x1[:, :, None])[:, None, None]
        rows, cols = np.minimum(rows, h - 1), np.minimum(cols, w - 1)
        flat = (rows[:, :, :, None, None] * w + cols[:, None, None]).reshape(len(batch), -1)
        feats = x[torch.as_tensor(batch, device=dev)].reshape(len(batch), c, h * w)
        idx = torch.as_tensor(flat, device=dev)[:, None, :].expand(-1, c, -1)
        win = feats.gather(2, idx).reshape(len(batch), c, *rows.shape[1:3], *cols.shape[1:3])
        mask = torch.as_tensor(valid, device=dev)[:, None]  # (R, 1, ph, kh, pw, kw)
        win = win.masked_fill(~mask, float("-inf")).permute(0, 1, 2, 4, 3, 5)
        win = win.reshape(*win.shape[:4], -1)  # window flattened row-major: Caffe's scan order
        best, arg = win.max(dim=-1)  # the first maximum
        picked = win.gather(-1, arg.unsqueeze(-1)).squeeze(-1)  # carries the gradient
        empty = torch.as_tensor(~valid.any(axis=(2, 4)), device=dev)[:, None]
        return torch.where(empty, torch.zeros_like(picked), picked)
