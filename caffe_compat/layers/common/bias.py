"""Bias (``bias_layer.cpp``): add a learned or given blob, broadcast.

Bottoms: x, and optionally the bias b itself. Top: shape of x:
y = x + b, with b's axes lined up with x's from ``axis`` (default 1).
With one bottom the bias is a blob of shape x.shape[axis : axis + num_axes]
(``num_axes`` default 1, −1 = to the end, 0 = a scalar), filled by
``filler`` (default constant 0). A 0-axis second bottom is added everywhere.

:func:`broadcast_view` is shared with Scale, which follows the same rules.

Differences from Caffe: none known.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape, canonical_axis
from ..registry import register_layer

__all__ = ["Bias", "param_shape", "broadcast_view"]


def param_shape(layer: Layer, x_shape: Shape, axis: int, num_axes: int) -> Shape:
    """The shape of a one-bottom Scale/Bias blob (Caffe's LayerSetUp checks)."""
    start = canonical_axis(axis, len(x_shape), layer.where)
    if num_axes < -1:
        raise layer.error(f"num_axes must be >= 0, or -1 to extend to the end of bottom[0]; "
                          f"got {num_axes}")
    if num_axes >= 0 and len(x_shape) < start + num_axes:
        raise layer.error(
            f"the blob's shape extends past bottom[0] {list(x_shape)}: axis {start} + num_axes "
            f"{num_axes} > {len(x_shape)} axes", ShapeError)
    return tuple(x_shape[start:] if num_axes == -1 else x_shape[start:start + num_axes])


def check_broadcast(layer: Layer, x: Sequence[int], b: Sequence[int], axis: int, what: str) -> int:
    """The axis of ``x`` (a shape) where a blob of shape ``b`` lines up; raises if it does not."""
    start = 0 if len(b) == 0 else canonical_axis(axis, len(x), layer.where)
    if len(x) < start + len(b) or tuple(x[start:start + len(b)]) != tuple(b):
        raise layer.error(
            f"{what} shape {list(b)} does not match bottom[0] {list(x)} from axis "
            f"{start} (need bottom[0].shape[{start}:{start + len(b)}] == {list(b)})",
            ShapeError,
        )
    return start


_VIEWS = "_broadcast_views"  # per layer: (x shape, b shape, what) -> b's broadcast shape


def broadcast_view(layer: Layer, x: torch.Tensor, b: torch.Tensor, axis: int, what: str) -> torch.Tensor:
    """``b`` reshaped to broadcast against ``x`` from ``axis`` (0 for a 0-axis b).

    The checked shape is kept per layer and input shape: this runs once per layer
    per pass, and the check is most of its cost.
    """
    views: dict[tuple[torch.Size, torch.Size, str], tuple[int, ...]] | None = layer.__dict__.get(_VIEWS)
    if views is None:
        views = layer.__dict__[_VIEWS] = {}
    key = (x.shape, b.shape, what)
    shape = views.get(key)
    if shape is None:
        start = check_broadcast(layer, x.shape, b.shape, axis, what)
        shape = views[key] = (1,) * start + tuple(b.shape) + (1,) * (x.dim() - start - b.dim())
    return b.reshape(shape)


@register_layer("Bias")
class Bias(Layer):
    min_bottom = 1
    max_bottom = 2
    exact_num_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.bias_param
        self.axis = p.axis
        if len(bottom_shapes) == 1:
            shape = param_shape(self, bottom_shapes[0], p.axis, p.num_axes)
            self.add_param(shape, p.filler, attr="bias")

    def quick_top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        b = bottom_shapes[1] if len(bottom_shapes) > 1 else self.params[0].shape
        check_broadcast(self, bottom_shapes[0], b, self.axis, "bias")
        return [tuple(bottom_shapes[0])]

    def forward(self, x: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        b = rest[0] if rest else self.params[0]
        return x + broadcast_view(self, x, b, self.axis, "bias")
