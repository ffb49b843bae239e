"""Threshold (``threshold_layer.cpp``).

Bottom: any shape. Top: same shape: 1 where x > threshold, else 0
(``threshold_param.threshold``, default 0).

Caffe has no backward for it ("Not Implemented Yet" aborts the process when
a gradient must pass through). We raise
:class:`~caffe_compat.errors.UnsupportedError` at that point instead; a net
where no gradient needs to cross the layer (TEST nets, a Threshold above the
data only) runs as in Caffe.

Differences from Caffe: an exception instead of an abort.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...errors import UnsupportedError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer
from ._caffe_grad import with_backward


@register_layer("Threshold")
class Threshold(Layer):
    exact_num_bottom = 1
    exact_num_top = 1
    same_shape_top = True

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        self.threshold = float(param.threshold_param.threshold)

    def _backward(self, x: torch.Tensor, y: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        raise self.error(
            "has no backward (Caffe: Not Implemented Yet); no gradient can pass through a "
            "Threshold layer — stop it with propagate_down: false or lr_mult: 0 below it",
            UnsupportedError,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        t = self.threshold
        return with_backward(x, lambda v: (v > t).to(v.dtype), self._backward)
