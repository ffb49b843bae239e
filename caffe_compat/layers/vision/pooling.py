"""Pooling: MAX, AVE and STOCHASTIC over 2-D windows (``pooling_layer.cpp``, ``pooling_layer.cu``).

Bottom: (N, C, H, W). Tops: the pooled blob, and for MAX optionally the mask
(flat index h·W + w of each window's first maximum, as floats).

Output size follows Caffe, not torch: out = ceil((H + 2p − k)/s) + 1 with
``round_mode: CEIL`` (default), floor with FLOOR (or the forks' ``ceil_mode:
true/false``); and *only when p > 0* the
last window is dropped if it would start at or beyond H + p. torch's
``ceil_mode`` drops it even when p = 0, and refuses p > k/2; then the input is
padded explicitly so that the windows are exactly Caffe's (the native torch
call stays the common path). MAX ignores padding (a window holding no input,
possible only with p = 0, gives −FLT_MAX and mask −1). AVE divides by the
window clipped at H + p (padding counts, the overhang beyond it does not; a
window starting at H with p = 0 divides 0 by 0, NaN, as Caffe does).

STOCHASTIC (a GPU-only method in Caffe; the CPU build aborts) uses unpadded
windows [i·s, min(i·s + k, H)). TRAIN: draw u in (0, 1], take the first
element whose running sum reaches u·Σwindow (probability ∝ value for
non-negative inputs); the gradient goes to that element. TEST: Σx²/(FLT_MIN + Σx).

Differences from Caffe: the backward of a MAX window holding no input adds
nothing (Caffe's writes before the start of the bottom diff); STOCHASTIC TRAIN
draws from torch's generator; a window whose running sum never reaches the
threshold (negative inputs) gives its first element where Caffe leaves stale
memory; at TEST the backward is the derivative of Σx²/Σx where Caffe's reuses
stale sample indices.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import torch
import torch.nn.functional as F

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import FLT_MAX, FLT_MIN, Layer, LayerContext, Shape
from ..registry import register_layer
from . import _cpu_kernels

_P = caffe_pb2.PoolingParameter
Pair = tuple[int, int]


def pooled_size(size: int, kernel: int, stride: int, pad: int, ceil: bool) -> int:
    """Caffe's output length along one axis."""
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil else span // stride) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1  # the last window would start in the padding only
    return out


def _torch_size(size: int, kernel: int, stride: int, pad: int, ceil: bool) -> int:
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    return out


@lru_cache(maxsize=64)
def _divisors(size: Pair, k: Pair, s: Pair, p: Pair, out: Pair, device: torch.device,
              dtype: torch.dtype) -> torch.Tensor:
    """AVE's per-window divisor: the window clipped at H + p (0 for a window starting there)."""
    axes = []
    for i in range(2):
        start = torch.arange(out[i], dtype=torch.float64) * s[i] - p[i]
        axes.append(torch.clamp(start + k[i], max=size[i] + p[i]) - start)
    return torch.outer(axes[0], axes[1]).to(device=device, dtype=dtype)


def _pair(p: caffe_pb2.PoolingParameter, name: str) -> Pair | None:
    has_h, has_w = p.HasField(name + "_h"), p.HasField(name + "_w")
    return (getattr(p, name + "_h"), getattr(p, name + "_w")) if has_h or has_w else None


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
        if self.method not in (_P.MAX, _P.AVE, _P.STOCHASTIC):
            raise self.error(f"unknown pooling method {self.method}")
        self.want_mask = len(param.top) > 1
        if self.want_mask and self.method != _P.MAX:
            raise self.error("only MAX pooling can produce a second (mask) top")
        self.global_pooling = p.global_pooling
        kernel = _pair(p, "kernel")
        if self.global_pooling:
            if p.HasField("kernel_size") or kernel:
                raise self.error("with global_pooling the kernel size cannot be given")
        elif p.HasField("kernel_size") == (p.HasField("kernel_h") and p.HasField("kernel_w")):
            raise self.error("give either kernel_size or both kernel_h and kernel_w")
        self.kernel: Pair = (p.kernel_size,) * 2 if p.HasField("kernel_size") else (kernel or (0, 0))
        for name in ("pad", "stride"):
            if _pair(p, name) and (p.HasField(name) or not (p.HasField(name + "_h")
                                                            and p.HasField(name + "_w"))):
                raise self.error(f"give either {name} or both {name}_h and {name}_w")
        self.pad: Pair = _pair(p, "pad") or (p.pad, p.pad)
        self.stride: Pair = _pair(p, "stride") or (p.stride, p.stride)
        if not self.global_pooling and min(self.kernel) <= 0:
            raise self.error(f"kernel size must be > 0, got {list(self.kernel)}")
        if min(self.stride) <= 0:
            raise self.error(f"stride must be > 0, got {list(self.stride)}")
        if self.global_pooling and (any(self.pad) or self.stride != (1, 1)):
            raise self.error("with global_pooling, pad must be 0 and stride 1")
        if any(self.pad):
            if self.method == _P.STOCHASTIC:
                raise self.error("padding is implemented only for MAX and AVE pooling")
            if self.pad[0] >= self.kernel[0] or self.pad[1] >= self.kernel[1]:
                raise self.error(f"pad {list(self.pad)} must be smaller than the kernel {list(self.kernel)}")
        self.ceil = p.round_mode == _P.CEIL
        if p.HasField("ceil_mode"):  # forks' ceil_mode (numbered 13 there, like round_mode here)
            if p.HasField("round_mode") and p.ceil_mode != self.ceil:
                raise self.error(f"ceil_mode: {str(p.ceil_mode).lower()} contradicts round_mode: "
                                 f"{_P.RoundMode.Name(p.round_mode)}")
            self.ceil = p.ceil_mode

    def _geometry(self, shape: Sequence[int]) -> tuple[Pair, Pair, Pair, Pair]:
        """(kernel, stride, pad, output size) for a bottom of ``shape``, with Caffe's checks."""
        if len(shape) != 4:
            raise self.error(f"input must have 4 axes (num, channels, height, width), got "
                             f"{list(shape)}", ShapeError)
        size: Pair = (shape[2], shape[3])
        k, s, p = (size, (1, 1), (0, 0)) if self.global_pooling else (self.kernel, self.stride, self.pad)
        out = (pooled_size(size[0], k[0], s[0], p[0], self.ceil),
               pooled_size(size[1], k[1], s[1], p[1], self.ceil))
        if min(out) <= 0:
            raise self.error(f"kernel {list(k)} with pad {list(p)} and stride {list(s)} gives an empty "
                             f"output {list(out)} for bottom {list(shape)}", ShapeError)
        return k, s, p, out

    def quick_top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        out = self._geometry(bottom_shapes[0])[3]  # raises unless 4 axes
        return [(*bottom_shapes[0][:2], *out)] * (2 if self.want_mask else 1)

    _last_u: torch.Tensor | None = None  # STOCHASTIC TRAIN: the last forward's draws
    _replaying = False

    def replay(self, x: torch.Tensor):  # type: ignore[override]
        self._replaying = True
        try:
            return self.forward(x)
        finally:
            self._replaying = False

    def forward(self, x: torch.Tensor):  # type: ignore[override]
        k, s, p, out = self._geometry(x.shape)
        size: Pair = (x.shape[2], x.shape[3])
        native = all(_torch_size(size[i], k[i], s[i], p[i], self.ceil) == out[i] and 2 * p[i] <= k[i]
                     for i in range(2))
        if self.method == _P.MAX:
            return self._max(x, k, s, p, out, native)
        if self.method == _P.AVE:
            return self._ave(x, k, s, p, out, native)
        return self._stochastic(x, k, s, out)

    @staticmethod
    def _padded(x: torch.Tensor, k: Pair, s: Pair, p: Pair, out: Pair, value: float) -> torch.Tensor:
        """``x`` padded so that plain windows (k, s, no padding) are ``out``'s windows."""
        right = [max(0, (out[i] - 1) * s[i] + k[i] - p[i] - x.shape[2 + i]) for i in range(2)]
        return F.pad(x, (p[1], right[1], p[0], right[0]), value=value)

    def _max(self, x: torch.Tensor, k: Pair, s: Pair, p: Pair, out: Pair, native: bool):
        if native and not self.want_mask:
            return _cpu_kernels.pool2d(x, True, k, s, p, self.ceil)
        if native:
            y, idx = F.max_pool2d(x, k, s, p, ceil_mode=self.ceil, return_indices=True)
            return y, idx.to(x.dtype)
        xp = self._padded(x, k, s, p, out, -math.inf)
        y, idx = F.max_pool2d(xp, k, s, 0, return_indices=True)
        y, idx = y[:, :, : out[0], : out[1]], idx[:, :, : out[0], : out[1]]
        # A window holding padding only keeps Caffe's initial -FLT_MAX (and mask -1).
        empty = torch.isneginf(y)
        y = torch.where(empty, torch.full_like(y, -FLT_MAX), y)
        if not self.want_mask:
            return y
        w, wp = x.shape[3], xp.shape[3]
        row, col = idx // wp - p[0], idx % wp - p[1]
        return y, torch.where(empty, torch.full_like(idx, -1), row * w + col).to(x.dtype)

    def _ave(self, x: torch.Tensor, k: Pair, s: Pair, p: Pair, out: Pair, native: bool) -> torch.Tensor:
        if native:
            return _cpu_kernels.pool2d(x, False, k, s, p, self.ceil)
        sums = F.avg_pool2d(self._padded(x, k, s, p, out, 0.0), k, s, 0, divisor_override=1)
        div = _divisors((x.shape[2], x.shape[3]), k, s, p, out, x.device, x.dtype)
        return sums[:, :, : out[0], : out[1]] / div

    def _stochastic(self, x: torch.Tensor, k: Pair, s: Pair, out: Pair) -> torch.Tensor:
        # Zeros appended past H/W never change a sum, nor win the running-sum
        # search (the sum does not move there), so padded windows are Caffe's.
        n, c = x.shape[:2]
        cols = F.unfold(self._padded(x, k, s, (0, 0), out, 0.0), k, stride=s)
        cols = cols.view(n, c, k[0] * k[1], out[0], out[1])
        total = cols.sum(dim=2)
        if self.phase != caffe_pb2.TRAIN:
            return (cols * cols).sum(dim=2) / (total + FLT_MIN)
        if x.is_meta:
            return total
        u = self._last_u
        if not (self._replaying and u is not None and u.shape == total.shape and u.device == x.device):
            u = 1.0 - torch.rand(total.shape, dtype=x.dtype, device=x.device)  # (0, 1] like curand
            self._last_u = u  # a backward without a graph draws the same windows again
        reached = cols.detach().cumsum(dim=2) >= (u * total.detach()).unsqueeze(2)
        pick = reached.to(torch.uint8).argmax(dim=2, keepdim=True)  # first True (0 if none)
        return cols.gather(2, pick).squeeze(2)
