"""Parameter (``parameter_layer.hpp``): a learnable blob exposed as a top.

No bottom. Top: the layer's single blob, of ``parameter_param.shape``. The
blob starts at zeros (Caffe gives it no filler); set it from a .caffemodel or
through ``net.params``. Caffe's top shares the blob's data and diff, so the
top's gradient is the parameter's gradient.

Differences from Caffe: the top's diff is not the parameter's diff memory; a
diff written into the top reaches the parameter through ``backward()``
(Caffe's shared diff makes it the parameter diff even when no backward runs).
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer


@register_layer("Parameter")
class Parameter(Layer):
    exact_num_bottom = 0
    exact_num_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.parameter_param
        if not p.HasField("shape"):
            raise self.error("parameter_param.shape is required")
        shape = tuple(int(d) for d in p.shape.dim)
        if any(d < 0 for d in shape):
            raise self.error(f"negative dimension in parameter_param.shape {list(shape)}")
        self.add_param(shape, None, attr="blob")

    def forward(self) -> torch.Tensor:  # type: ignore[override]
        # A view: the top shares the blob's memory (writing the top's data writes
        # the parameter, as in Caffe) but is its own autograd node.
        p = self.params[0]
        return p.view(p.shape)
