"""Sigmoid (``sigmoid_layer.cpp``).

Bottom: any shape. Top: same shape: 1 / (1 + exp(−x)); gradient y · (1 − y).
``sigmoid_param.engine`` (CAFFE / CUDNN) does not change the numbers.

Differences from Caffe: none known.
"""

from __future__ import annotations

import torch

from ..base import Layer
from ..registry import register_layer
from ._caffe_grad import from_top


@register_layer("Sigmoid")
class Sigmoid(Layer):
    exact_num_bottom = 1
    exact_num_top = 1
    same_shape_top = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.sigmoid(x)

    def replay_in_place(self, top: torch.Tensor) -> torch.Tensor:
        return from_top(top, lambda v, y, g: g * y * (1 - y))  # Caffe's backward reads the top data
