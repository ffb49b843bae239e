"""Pooling: MAX, AVE and STOCHASTIC over 2-D windows (``pooling_layer.cpp``).

Bottom: (N, C, H, W). Tops: the pooled blob, and for MAX optionally the
argmax mask (flat index h*W + w of each maximum, as floats).

Output size follows Caffe, not torch: with ``round_mode: CEIL`` (default)
out = ceil((H + 2p − k)/s) + 1, FLOOR uses floor; and *only when p > 0* the
last window is dropped if it would start at or beyond H + p. torch's
``ceil_mode`` drops it even when p = 0, and refuses p > k/2; in those cases
the input is padded explicitly so the windows are exactly Caffe's. MAX pads
with −FLT_MAX; AVE divides by the window size clipped at H + p (padding
counts, the overhang beyond it does not). STOCHASTIC samples an activation in
proportion to its value during TRAIN and returns the value-weighted average
at TEST.

Differences from Caffe: none known.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import LayerError, ShapeError
from ...proto import caffe_pb2
from ..base import FLT_MAX, Layer, LayerContext, Shape
from ..registry import register_layer

_P = caffe_pb2.PoolingParameter


def pooled_size(size: int, kernel: int, stride: int, pad: int, ceil: bool) -> int:
    """Caffe's output length for one axis."""
    span = size + 2 * pad - kernel
    out = (math.ceil(span / stride) if ceil else span // stride) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1  # the last window would start in the padding only
    return out


def _torch_size(size: int, kernel: int, stride: int, pad: int, ceil: bool) -> int:
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    return out


@register_layer("Pooling")
class Pooling(Layer):
    exact_num_bottom = 1
    min_top = 1
    max_top = 2

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.pooling_param
        self.method = p.pool
        if len(param.top) > 1 and self.method != _P.MAX:
            raise self.error("only MAX pooling can produce a second (mask) top")
        self.global_pooling = p.global_pooling
        if self.global_pooling:
            if p.HasField("kernel_size") or p.HasField("kernel_h") or p.HasField("kernel_w"):
                raise self.error("with global_pooling the kernel size cannot be given")
        elif p.HasField("kernel_size") == (p.HasField("kernel_h") or p.HasField("kernel_w")):
            raise self.error("give either kernel_size or kernel_h and kernel_w")
        elif not p.HasField("kernel_size") and not (p.HasField("kernel_h") and p.HasField("kernel_w")):
            raise self.error("kernel_h and kernel_w must be given together")
        self.kernel = (p.kernel_size, p.kernel_size) if p.HasField("kernel_size") else (p.kernel_h, p.kernel_w)
        if (p.HasField("pad_h") or p.HasField("pad_w")) and p.HasField("pad"):
            raise self.error("give either pad or pad_h and pad_w")
        self.pad = (p.pad_h, p.pad_w) if (p.HasField("pad_h") or p.HasField("pad_w")) else (p.pad, p.pad)
        if (p.HasField("stride_h") or p.HasField("stride_w")) and p.HasField("stride"):
            raise self.error("give either stride or stride_h and stride_w")
        self.stride = (p.stride_h, p.stride_w) if (p.HasField("stride_h") or p.HasField("stride_w")) \
            else (p.stride, p.stride)
        if not self.global_pooling and min(self.kernel) <= 0:
            raise self.error(f"kernel size must be > 0, got {list(self.kernel)}")
        if min(self.stride) <= 0:
            raise self.error(f"stride must be > 0, got {list(self.stride)}")
        if self.global_pooling and (any(self.pad) or self.stride != (1, 1)):
            raise self.error("with global_pooling, pad must be 0 and stride 1")
        if any(self.pad) and self.method not in (_P.MAX, _P.AVE):
            raise self.error("padding is implemented only for MAX and AVE pooling")
        if not self.global_pooling and (self.pad[0] >= self.kernel[0] or self.pad[1] >= self.kernel[1]):
            raise self.error(f"pad {list(self.pad)} must be smaller than the kernel {list(self.kernel)}")
        self.ceil = p.round_mode == _P.CEIL

    # ------------------------------------------------------------ geometry
    def _window(self, h: int, w: int) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        if self.global_pooling:
            return (h, w), (1, 1), (0, 0)
        return self.kernel, self.stride, self.pad

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise self.error(
                f"input must have 4 axes (num, channels, height, width), got {list(x.shape)}",
                ShapeError,
            )

    def forward(self, x: torch.Tensor):  # type: ignore[override]
        self._check(x)
        h, w = x.shape[2], x.shape[3]
        k, s, p = self._window(h, w)
        out = (pooled_size(h, k[0], s[0], p[0], self.ceil), pooled_size(w, k[1], s[1], p[1], self.ceil))
        if min(out) <= 0:
            raise self.error(f"kernel {list(k)} larger than the padded input {list(x.shape)}", ShapeError)
        if self.method == _P.MAX:
            return self._max(x, k, s, p, out)
        if self.method == _P.AVE:
            return self._ave(x, k, s, p, out)
        if self.method == _P.STOCHASTIC:
            return self._stochastic(x, k, s, out)
        raise self.error(f"unknown pooling method {self.method}", LayerError)

    def _native_ok(self, h: int, w: int, k, s, p, out) -> bool:
        torch_out = (_torch_size(h, k[0], s[0], p[0], self.ceil), _torch_size(w, k[1], s[1], p[1], self.ceil))
        return torch_out == out and 2 * p[0] <= k[0] and 2 * p[1] <= k[1]

    def _padded(self, x: torch.Tensor, k, s, p, out, value: float) -> torch.Tensor:
        """``x`` padded so that plain windows of size k and stride s give ``out``."""
        h, w = x.shape[2], x.shape[3]
        right = [max(0, (out[i] - 1) * s[i] + k[i] - p[i] - (h, w)[i]) for i in range(2)]
        xp = F.pad(x, (p[1], right[1], p[0], right[0]), value=value)
        return xp

    def _max(self, x: torch.Tensor, k, s, p, out):
        h, w = x.shape[2], x.shape[3]
        want_mask = len(self.layer_param.top) > 1
        if self._native_ok(h, w, k, s, p, out):
            y, idx = F.max_pool2d(x, k, s, p, ceil_mode=self.ceil, return_indices=True) if want_mask \
                else (F.max_pool2d(x, k, s, p, ceil_mode=self.ceil), None)
        else:
            xp = self._padded(x, k, s, p, out, -math.inf)
            y, idx = F.max_pool2d(xp, k, s, 0, return_indices=True)
            y, idx = y[:, :, : out[0], : out[1]], idx[:, :, : out[0], : out[1]]
            # A window holding padding only leaves Caffe's initial -FLT_MAX.
            y = torch.where(torch.isinf(y) & (y < 0), torch.full_like(y, -FLT_MAX), y)
            if want_mask:
                wp = xp.shape[3]
                row, col = idx // wp - p[0], idx % wp - p[1]
                idx = torch.where((row >= 0) & (row < h) & (col >= 0) & (col < w), row * w + col,
                                  torch.full_like(idx, -1))
        if want_mask:
            return y, idx.to(x.dtype)
        return y

    def _ave(self, x: torch.Tensor, k, s, p, out):
        h, w = x.shape[2], x.shape[3]
        if self._native_ok(h, w, k, s, p, out):
            return F.avg_pool2d(x, k, s, p, ceil_mode=self.ceil, count_include_pad=True)
        xp = self._padded(x, k, s, p, out, 0.0)
        sums = F.avg_pool2d(xp, k, s, 0, count_include_pad=True)[:, :, : out[0], : out[1]] * (k[0] * k[1])
        return sums / self._divisors(h, w, k, s, p, out, x)

    @staticmethod
    def _divisors(h: int, w: int, k, s, p, out, like: torch.Tensor) -> torch.Tensor:
        def axis(size: int, i: int) -> np.ndarray:
            start = np.arange(out[i]) * s[i] - p[i]
            end = np.minimum(start + k[i], size + p[i])
            return (end - start).astype(np.float64)

        div = np.outer(axis(h, 0), axis(w, 1))
        return torch.as_tensor(div, dtype=like.dtype, device=like.device)

    def _stochastic(self, x: torch.Tensor, k, s, out):
        # Windows without padding: [i*s, min(i*s + k, H)).
        xp = self._padded(x, k, s, (0, 0), out, 0.0)
        n, c = x.shape[:2]
        cols = F.unfold(xp, k, stride=s)  # (N, C*k*k, L)
        cols = cols.view(n, c, k[0] * k[1], -1)[..., : _count(xp, k, s)]
        cols = cols.view(n, c, k[0] * k[1], *_grid(xp, k, s))[..., : out[0], : out[1]]
        total = cols.sum(dim=2)
        if self.phase == caffe_pb2.TRAIN and not x.is_meta:
            probs = cols.detach() / total.detach().unsqueeze(2)
            flat = probs.permute(0, 1, 3, 4, 2).reshape(-1, k[0] * k[1])
            flat = torch.nan_to_num(flat, nan=1.0 / flat.shape[1]).clamp_min(0)
            pick = torch.multinomial(flat, 1).view(n, c, out[0], out[1])
            return cols.gather(2, pick.unsqueeze(2)).squeeze(2)
        if self.phase == caffe_pb2.TRAIN:
            return total
        return (cols * cols).sum(dim=2) / total


def _grid(xp: torch.Tensor, k, s) -> tuple[int, int]:
    return ((xp.shape[2] - k[0]) // s[0] + 1, (xp.shape[3] - k[1]) // s[1] + 1)


def _count(xp: torch.Tensor, k, s) -> int:
    g = _grid(xp, k, s)
    return g[0] * g[1]
