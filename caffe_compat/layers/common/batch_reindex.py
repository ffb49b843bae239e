"""BatchReindex (``batch_reindex_layer.cpp``): pick items of a batch by index.

Bottoms: x (N, ...) and the indices (M,) as floats. Top: (M, ...) with
``top[m] = x[int(idx[m])]`` — items may be selected, reordered or repeated.
The indices are checked as Caffe checks them, on the float value: 0 ≤ idx < N
(so 2.7 is accepted and truncated to 2, −0.5 is refused).

Backward: the gradient of a repeated item accumulates; the indices get none
(Caffe aborts when ``force_backward`` asks for it; here they are skipped).

Differences from Caffe: bad indices raise instead of aborting.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer


@register_layer("BatchReindex")
class BatchReindex(Layer):
    exact_num_bottom = 2
    exact_num_top = 1
    no_force_backward = frozenset({1})

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        self._check_shapes(bottom_shapes[0], bottom_shapes[1])

    def _check_shapes(self, x: Sequence[int], idx: Sequence[int]) -> None:
        if len(idx) != 1:
            raise self.error(f"the index bottom must have exactly 1 axis, got shape {list(idx)}",
                             ShapeError)
        if len(x) < 1:
            raise self.error("bottom 0 must have at least 1 axis (the batch)", ShapeError)

    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        self._check_shapes(x.shape, idx.shape)
        idx = idx.detach()
        if not idx.is_meta and idx.numel():
            lo, hi = float(idx.min()), float(idx.max())
            if not (lo >= 0 and hi < x.shape[0]):
                raise self.error(f"index values must lie in [0, {x.shape[0]}) (the batch size of "
                                 f"bottom 0 {list(x.shape)}); got min {lo:g}, max {hi:g}", ShapeError)
        return x.index_select(0, idx.to(torch.long))
