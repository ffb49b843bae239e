"""ArgMax (``argmax_layer.cpp``): indices (or values) of the top_k largest entries.

Bottom: any shape. Top, as floats:

* with ``axis``: the bottom shape with ``shape[axis] = top_k``, holding the
  indices along ``axis`` — or, with ``out_max_val``, the values instead;
* without ``axis``: every item ``n`` is flattened, and the top is
  (N, 1, top_k) padded with trailing 1s to at least the bottom's axes — or
  (N, 2, top_k, ...) with ``out_max_val``: row 0 the indices, row 1 the values.

Ties follow Caffe's ``partial_sort`` with ``std::greater`` on (value, index)
pairs: among equal values the *larger* index comes first.

Caffe has no backward (it aborts when asked for one); the top here carries no
gradient.

Differences from Caffe: NaN inputs are ordered as torch sorts them.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape, canonical_axis
from ..registry import register_layer


@register_layer("ArgMax")
class ArgMax(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.argmax_param
        self.out_max_val = p.out_max_val
        self.top_k = int(p.top_k)
        if self.top_k < 1:
            raise self.error(f"top_k must be >= 1, got {self.top_k}")
        shape = tuple(bottom_shapes[0])
        self.axis: int | None = canonical_axis(p.axis, len(shape), self.where) \
            if p.HasField("axis") else None
        self._check(shape)

    def _check(self, shape: Shape) -> None:
        if self.axis is not None:
            dim, what = shape[self.axis], f"axis {self.axis}"
        else:
            dim, what = math.prod(shape[1:]), "the flattened item (all axes after the first)"
        if self.top_k > dim:
            raise self.error(f"top_k {self.top_k} is larger than {what} of bottom {list(shape)} "
                             f"({dim} values)", ShapeError)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        self._check(tuple(x.shape))
        x = x.detach()
        k = self.top_k
        if self.axis is not None:
            values, index = self._top(x, self.axis, k)
            return values if self.out_max_val else index.to(x.dtype)
        n = x.shape[0] if x.dim() else 1
        values, index = self._top(x.reshape(n, -1), 1, k)
        rows = [index.to(x.dtype)] + ([values] if self.out_max_val else [])
        top = torch.stack(rows, dim=1)  # (N, 1 or 2, k)
        return top.reshape(top.shape + (1,) * max(0, x.dim() - 3))

    @staticmethod
    def _top(x: torch.Tensor, dim: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        # A stable descending sort of the reversed axis puts the larger original
        # index first among equal values, as Caffe's (value, index) comparison does.
        size = x.shape[dim]
        values, rev = torch.sort(x.flip(dim), dim=dim, descending=True, stable=True)
        return values.narrow(dim, 0, k), (size - 1 - rev).narrow(dim, 0, k)
