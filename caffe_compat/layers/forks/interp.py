"""Interp: bilinear resizing of DeepLab v2 / PSPNet (``interp_layer.cpp``, ``interp.cpp``).

Bottom: (N, C, H, W). Top: (N, C, H_out, W_out). The input is first cropped
by ``pad_beg``/``pad_end`` (both ≤ 0; the crop starts at −pad_beg on both
axes) to H_eff × W_eff. The output size, tried in this order:

* ``shrink_factor`` s alone: (H_eff − 1) / s + 1;
* ``zoom_factor`` z alone: H_eff + (H_eff − 1)(z − 1);
* ``height`` and ``width``;
* both factors: shrink, then zoom.

Sampling aligns the corners: output row i reads input row i·(H_eff − 1)/(H_out − 1)
(0 for H_out = 1), interpolating between it and the next row (the last row
repeats itself); the ratio, the position and the weights are computed in
float as in the fork. Equal sizes copy. The gradient is the adjoint.

Differences from Caffe: none known.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer


def _axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(index, next index, weight of the next) for each output position, in float32."""
    ratio = np.float32(n_in - 1) / np.float32(n_out - 1) if n_out > 1 else np.float32(0)
    pos = np.float32(ratio) * np.arange(n_out, dtype=np.float32)
    lo = pos.astype(np.int64)
    hi = lo + (lo < n_in - 1)
    return lo, hi, (pos - lo.astype(np.float32)).astype(np.float32)


@register_layer("Interp")
class Interp(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = self.p = param.interp_param
        if p.pad_beg > 0 or p.pad_end > 0:
            raise self.error(f"only non-positive padding (cropping) is supported, got pad_beg "
                             f"{p.pad_beg}, pad_end {p.pad_end}")
        shrink, zoom = p.HasField("shrink_factor"), p.HasField("zoom_factor")
        if not (shrink or zoom or (p.HasField("height") and p.HasField("width"))):
            raise self.error("give shrink_factor, zoom_factor, or height and width")
        for name in ("shrink_factor", "zoom_factor"):
            if p.HasField(name) and getattr(p, name) < 1:
                raise self.error(f"{name} must be >= 1, got {getattr(p, name)}")

    def out_size(self, h: int, w: int) -> tuple[int, int, int, int]:
        """(H_eff, W_eff, H_out, W_out)."""
        p = self.p
        he, we = h + p.pad_beg + p.pad_end, w + p.pad_beg + p.pad_end
        shrink, zoom = p.HasField("shrink_factor"), p.HasField("zoom_factor")
        if shrink and not zoom:
            ho, wo = (he - 1) // p.shrink_factor + 1, (we - 1) // p.shrink_factor + 1
        elif zoom and not shrink:
            ho, wo = he + (he - 1) * (p.zoom_factor - 1), we + (we - 1) * (p.zoom_factor - 1)
        elif p.HasField("height") and p.HasField("width"):
            ho, wo = p.height, p.width
        else:
            ho, wo = (he - 1) // p.shrink_factor + 1, (we - 1) // p.shrink_factor + 1
            ho, wo = ho + (ho - 1) * (p.zoom_factor - 1), wo + (wo - 1) * (p.zoom_factor - 1)
        if min(he, we) <= 0 or min(ho, wo) <= 0:
            raise self.error(f"input {h}x{w} cropped to {he}x{we} gives an output of {ho}x{wo}; "
                             "both must be positive", ShapeError)
        return he, we, ho, wo

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if x.dim() != 4:
            raise self.error(f"bottom must have 4 axes (N, C, H, W), got {list(x.shape)}", ShapeError)
        he, we, ho, wo = self.out_size(x.shape[2], x.shape[3])
        b = -self.p.pad_beg  # the fork offsets both axes by pad_beg
        x = x[:, :, b:b + he, b:b + we]
        if (he, we) == (ho, wo):
            return x.clone() if x.is_meta else x + 0
        dev = x.device
        y0, y1, ly = (torch.as_tensor(a, device=dev) for a in _axis(he, ho))
        x0, x1, lx = (torch.as_tensor(a, device=dev) for a in _axis(we, wo))
        ly, lx = ly.to(x.dtype)[:, None], lx.to(x.dtype)[None, :]
        rows0, rows1 = x[:, :, y0], x[:, :, y1]
        top = (1 - lx) * rows0[..., x0] + lx * rows0[..., x1]
        bottom = (1 - lx) * rows1[..., x0] + lx * rows1[..., x1]
        return (1 - ly) * top + ly * bottom
