"""SPP (``spp_layer.cpp``): spatial pyramid pooling.

Bottom: (N, C, H, W). Level l (0 ≤ l < ``pyramid_height``) pools into
b = 2^l bins per axis with Caffe's Pooling (MAX, AVE or STOCHASTIC from
``spp_param.pool``) using, per axis, kernel k = ceil(H / b), stride k and
pad ((k·b − H) + 1) / 2 (integer division), recomputed whenever H or W
changes. Top: every level flattened to (N, C·b²) and concatenated in level
order — (N, C·Σ4^l) — except that ``pyramid_height: 1`` gives the pooled
(N, C, 1, 1) blob itself.

Caffe's Pooling requires pad < kernel, which some sizes break (5×5 with
height 3 needs pad 2 for kernel 2); those raise here where Caffe aborts.

Differences from Caffe: none known beyond those of :mod:`.pooling`.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer
from .pooling import Pooling


def level_geometry(level: int, size: int) -> tuple[int, int]:
    """(kernel, pad) of pyramid ``level`` along an axis of ``size`` (stride = kernel)."""
    bins = 2 ** level
    kernel = math.ceil(size / bins)
    return kernel, (kernel * bins - size + 1) // 2


@register_layer("SPP")
class SPP(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.spp_param
        if p.pyramid_height < 1:
            raise self.error(f"spp_param.pyramid_height must be >= 1, got {p.pyramid_height}")
        self.height = int(p.pyramid_height)
        self.pool = int(p.pool)  # SPPParameter.PoolMethod has PoolingParameter's values
        self._levels: dict[tuple[int, int], list[Pooling]] = {}
        self._pools(tuple(bottom_shapes[0]))

    def _pools(self, shape: Sequence[int]) -> list[Pooling]:
        if len(shape) != 4:
            raise self.error(f"input must have 4 axes (num, channels, height, width), got "
                             f"{list(shape)}", ShapeError)
        h, w = int(shape[2]), int(shape[3])
        if h <= 0 or w <= 0:
            raise self.error(f"input height and width must be > 0, got {list(shape)}", ShapeError)
        found = self._levels.get((h, w))
        if found is None:
            found = [self._pooling(level, h, w, shape) for level in range(self.height)]
            self._levels[(h, w)] = found
        return found

    def _pooling(self, level: int, h: int, w: int, shape: Sequence[int]) -> Pooling:
        (kh, ph), (kw, pw) = level_geometry(level, h), level_geometry(level, w)
        if ph >= kh or pw >= kw:
            raise self.error(
                f"pyramid level {level} ({2 ** level} bins) over {h}x{w} needs kernel {kh}x{kw} with "
                f"pad {ph}x{pw}, but Caffe's pooling requires pad < kernel; bottom {list(shape)}",
                ShapeError)
        lp = caffe_pb2.LayerParameter(name=f"{self.name}_level{level}", type="Pooling",
                                      bottom=["x"], top=["y"],
                                      phase=self.phase)  # type: ignore[arg-type]
        pp = lp.pooling_param
        pp.pool = self.pool  # type: ignore[assignment]
        pp.kernel_h, pp.kernel_w, pp.stride_h, pp.stride_w = kh, kw, kh, kw
        pp.pad_h, pp.pad_w = ph, pw
        return Pooling(lp, [tuple(shape)], self.ctx)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        pools = self._pools(tuple(x.shape))
        if self.height == 1:
            return pools[0](x)
        return torch.cat([pool(x).flatten(1) for pool in pools], dim=1)
