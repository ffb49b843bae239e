"""Local Response Normalization (``lrn_layer.cpp``).

Bottom: (N, C, H, W); top: same shape. With n = ``local_size`` (default 5,
must be odd), α = ``alpha`` (1), β = ``beta`` (0.75), k = ``k`` (1):

* ACROSS_CHANNELS (default): y = x · (k + α/n · Σ x²)^−β, the sum over the n
  channels centred on the current one, zero-padded at both ends of the
  channel axis (so n may exceed C).
* WITHIN_CHANNEL: y = x · (1 + α · avgpool_n×n(x²))^−β, an n×n window centred
  on the pixel with (n−1)/2 zero padding counted in the divisor (Caffe builds
  this from Power, AVE Pooling and Eltwise layers); ``k`` is unused.

The backward is autograd's, which is the derivative Caffe's hand-written
backward computes; on the CPU, ACROSS_CHANNELS runs a leaner kernel with
Caffe's closed-form backward (``_cpu_kernels.lrn_across_channels``).

Differences from Caffe: none known (Caffe's channel sum is a running sum, so
the last float32 bits may differ).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer
from . import _cpu_kernels

_ACROSS = caffe_pb2.LRNParameter.ACROSS_CHANNELS
_WITHIN = caffe_pb2.LRNParameter.WITHIN_CHANNEL


@register_layer("LRN")
class LRN(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.lrn_param
        self.size = p.local_size
        if self.size % 2 != 1:
            raise self.error(f"local_size must be odd (the window is centred), got {self.size}")
        self.pre_pad = (self.size - 1) // 2
        self.alpha, self.beta, self.k = p.alpha, p.beta, p.k
        self.region = p.norm_region
        if self.region not in (_ACROSS, _WITHIN):
            raise self.error(f"unknown norm_region {self.region}")

    def quick_top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape] | None:
        return [tuple(bottom_shapes[0])] if len(bottom_shapes[0]) == 4 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if x.dim() != 4:
            raise self.error(f"input must have 4 axes (num, channels, height, width), got "
                             f"{list(x.shape)}", ShapeError)
        n, pad = self.size, self.pre_pad
        if self.region == _ACROSS:
            fast = _cpu_kernels.lrn_across_channels(x, n, self.alpha, self.beta, self.k)
            if fast is not None:
                return fast
        sq = x * x
        if self.region == _ACROSS:
            # Mean over a channel window = Σ/n, so α·mean is Caffe's α/n·Σ.
            sq = sq.unsqueeze(1)
            if x.shape[1] < n:  # torch's 3-d pooling wants the unpadded depth >= the kernel
                sq, pad = F.pad(sq, (0, 0, 0, 0, pad, pad)), 0
            mean = F.avg_pool3d(sq, (n, 1, 1), stride=1, padding=(pad, 0, 0),
                                count_include_pad=True).squeeze(1)
            scale = mean * self.alpha + self.k
        else:
            mean = F.avg_pool2d(sq, n, stride=1, padding=pad, count_include_pad=True)
            scale = mean * self.alpha + 1.0
        return x * scale.pow(-self.beta)
