"""Dropout (``dropout_layer.cpp``).

Bottom: any shape. Top: same shape. In the TRAIN phase each value is kept
with probability 1 − dropout_ratio and scaled by 1 / (1 − dropout_ratio)
(dropped ones become 0); the gradient uses the same mask and scale. In the
TEST phase the layer is the identity. The last mask is kept (Caffe's
``rand_vec_``): a backward run without a graph uses it again. The phase is the net's (or the layer's
``phase`` field), not a train/eval switch. The mask comes from torch's
generator, seeded by ``caffe.set_random_seed``.

Differences from Caffe: the mask is not Caffe's random stream (same
distribution); a dropout_ratio outside [0, 1] is an error when the net is
built for TRAIN (Caffe aborts at the first forward).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer
from ._caffe_grad import from_top


@register_layer("Dropout")
class Dropout(Layer):
    exact_num_bottom = 1
    exact_num_top = 1
    same_shape_top = True

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        ratio = np.float32(param.dropout_param.dropout_ratio)
        self.train_phase = self.phase == caffe_pb2.TRAIN
        if self.train_phase and not 0 <= ratio <= 1:
            raise self.error(f"dropout_ratio must be in [0, 1], got {float(ratio):g}")
        self.keep = float(1 - ratio)
        # Caffe: scale_ = 1. / (1. - threshold_), stored as float; inf for ratio 1.
        self.scale = float(np.float32(1.0 / (1.0 - float(ratio)))) if ratio < 1 else float("inf")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if not self.train_phase:
            return x
        if x.is_meta:
            return torch.empty_like(x)
        mask = torch.empty_like(x).bernoulli_(self.keep)
        self._mask = mask  # Caffe keeps rand_vec_ too: a backward without a graph reuses it
        return x * (mask * self.scale)

    _mask: torch.Tensor | None = None

    def replay_in_place(self, top: torch.Tensor) -> torch.Tensor | None:
        mask = self._mask
        if not self.train_phase:
            return top.view_as(top)
        if mask is None or mask.shape != top.shape or mask.device != top.device:
            return None
        scaled = mask * self.scale
        return from_top(top, lambda v, y, g: g * scaled)

    def replay(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        mask = self._mask
        if not self.train_phase or mask is None or mask.shape != x.shape or mask.device != x.device:
            return self.forward(x)
        return x * (mask * self.scale)
