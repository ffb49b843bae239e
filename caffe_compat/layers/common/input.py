"""Input: tops whose data the user sets (``input_layer.cpp``).

Bottoms: none. Tops: one or more blobs, shaped by ``input_param.shape`` (once
for all tops, or once per top). The net feeds these tops from their blobs on
every forward; the layer computes nothing.

Differences from Caffe: none known.
"""

from __future__ import annotations

from typing import Sequence

from ...blob import as_shape
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer
from ...proto import caffe_pb2


@register_layer("Input")
class Input(Layer):
    exact_num_bottom = 0
    min_top = 1
    is_input = True

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        n_top = len(param.top)
        shapes = [as_shape(s.dim, f"{self.where}: input_param.shape") for s in param.input_param.shape]
        if len(shapes) not in (0, 1, n_top):
            raise self.error(
                f"give input_param.shape once, once per top ({n_top}), or not at all; "
                f"got {len(shapes)}"
            )
        if len(shapes) == 1:
            shapes = shapes * n_top
        self.shapes: list[Shape] = shapes or [()] * n_top

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        return list(self.shapes)
