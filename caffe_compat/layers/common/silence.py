"""Silence (``silence_layer.cpp``): consume blobs, produce nothing.

Bottoms: one or more blobs of any shape. Tops: none. It keeps unused
outputs out of the net's output list; their gradient from here is zero.

Differences from Caffe: none known.
"""

from __future__ import annotations

import torch

from ..base import Layer
from ..registry import register_layer


@register_layer("Silence")
class Silence(Layer):
    min_bottom = 1
    exact_num_top = 0

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        return ()
