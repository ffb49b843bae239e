"""A backward written by hand, for neuron layers whose Caffe backward is not
the derivative of their forward.

Two reasons make Caffe's gradient differ from autograd's:

* its formula has a removable singularity (Power divides y by its input, so
  the gradient at 0 is NaN, not the limit);
* in-place use (``bottom: "x" top: "x"``): the bottom *data* it reads in
  backward is then the layer's output, and for Power and Log the bottom *diff*
  it writes is the top diff it still has to read (they share memory), so the
  top diff is overwritten before use and the result is the local gradient
  squared. :func:`inplace_of` tells a layer whether it runs in place.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ...proto import caffe_pb2

__all__ = ["with_backward", "from_top", "inplace_of"]

Forward = Callable[[torch.Tensor], torch.Tensor]
#: (bottom, top, top_diff) -> bottom_diff
Backward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class _HandWritten(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: torch.Tensor, fwd: Forward, bwd: Backward
    ) -> torch.Tensor:
        y = fwd(x)
        ctx.bwd = bwd
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        x, y = ctx.saved_tensors
        return ctx.bwd(x, y, g), None, None


def with_backward(x: torch.Tensor, fwd: Forward, bwd: Backward) -> torch.Tensor:
    """``fwd(x)``, whose gradient with respect to ``x`` is ``bwd(x, y, top_diff)``."""
    if not (x.requires_grad and torch.is_grad_enabled()):
        return fwd(x)  # plain ops when no gradient is wanted (TEST nets, export)
    return _HandWritten.apply(x, fwd, bwd)


class _FromTop(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, y: torch.Tensor, bwd: Backward) -> torch.Tensor:  # type: ignore[override]
        ctx.bwd = bwd
        ctx.save_for_backward(y)
        return y.view_as(y)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (y,) = ctx.saved_tensors
        return ctx.bwd(y, y, g), None


def from_top(y: torch.Tensor, bwd: Backward) -> torch.Tensor:
    """For a backward without a graph through an in-place layer: the blob holds the
    layer's output ``y`` (its input is gone, as in Caffe), and the gradient is Caffe's
    in-place one, ``bwd(y, y, top_diff)`` (bottom data and top data are the same memory)."""
    return _FromTop.apply(y, bwd)


def inplace_of(param: caffe_pb2.LayerParameter) -> bool:
    """Whether the layer writes its top into its bottom blob (after split insertion)."""
    return len(param.bottom) > 0 and len(param.top) > 0 and param.bottom[0] == param.top[0]
