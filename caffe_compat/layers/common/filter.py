"""Filter (``filter_layer.cpp``): keep the items whose selector is non-zero.

Bottoms: k blobs to filter (N, ...) and, last, the selector (N,) or (N, 1, ...)
(every axis after the first must be 1). Tops: k blobs (M, ...) holding, in
order, the items n with ``selector[n] != 0`` (NaN counts as non-zero, as in
C). M may be 0.

The top shape depends on the selector's *values*: at net setup Caffe gives
the tops the full batch N (:meth:`top_shapes` does the same), and every
forward gives them their filtered size.

Backward: selected items get their top's gradient, the others 0; the
selector gets none (Caffe aborts when ``force_backward`` asks for it).

Differences from Caffe: shapes after ``net.reshape()`` stay N until the next
forward (Caffe's Reshape reads the selector data there); with nothing selected
the backward gives zeros where Caffe's divides by zero (SIGFPE).
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer


@register_layer("Filter")
class Filter(Layer):
    min_bottom = 2
    min_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        if len(param.top) != len(param.bottom) - 1:
            raise self.error(f"expected one top per filtered bottom ({len(param.bottom) - 1}, "
                             f"the last bottom is the selector), got {len(param.top)} top(s)")
        # The selector is always the last bottom; it never gets a gradient.
        self.no_force_backward = frozenset({len(param.bottom) - 1})  # type: ignore[misc]
        self._check(bottom_shapes)

    def _check(self, shapes: Sequence[Sequence[int]]) -> None:
        sel = list(shapes[-1])
        if not sel or any(d != 1 for d in sel[1:]):
            raise self.error(f"the selector (last bottom) must be (N,) or (N, 1, ...): every axis "
                             f"after the first must be 1, got {sel}", ShapeError)
        for i, s in enumerate(shapes[:-1]):
            if not len(s) or s[0] != sel[0]:
                raise self.error(f"bottom {i} {list(s)} must have the selector's first dimension "
                                 f"{sel[0]}", ShapeError)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        self._check(bottom_shapes)
        return [tuple(s) for s in bottom_shapes[:-1]]

    def forward(self, *bottoms: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        self._check([b.shape for b in bottoms])
        selector = bottoms[-1].detach()
        if selector.is_meta:
            return tuple(bottoms[:-1])
        keep = torch.nonzero(selector.reshape(-1) != 0).reshape(-1)
        return tuple(b.index_select(0, keep) for b in bottoms[:-1])
