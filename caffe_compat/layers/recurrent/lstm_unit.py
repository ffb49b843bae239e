"""LSTMUnit (``lstm_unit_layer.cpp``): one LSTM time step, as LSTM unrolls it.

Bottoms: c_prev (1, N, H), the gate inputs X (1, N, 4H) in Caffe's gate order
[i, f, o, g], and cont (1, N). Tops: c (1, N, H) and h (1, N, H):

    i = σ(X_i)   f = 0 if cont == 0 else cont·σ(X_f)   o = σ(X_o)   g = tanh(X_g)
    c = f·c_prev + i·g        h = o·tanh(c)

There is no clipping of any kind (no ``clipping_threshold`` upstream).
Caffe's backward of the forget gate is dX_f = dF·f·(1 − f) with the *scaled*
f = cont·σ, which is the derivative only for cont ∈ {0, 1}; it is reproduced
by hand. cont gets no gradient (Caffe aborts when ``force_backward`` asks).

Differences from Caffe: none known.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer

__all__ = ["LSTMUnit", "lstm_cell"]


class _ForgetGate(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, cont: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        f = torch.where(cont == 0, torch.zeros_like(a), cont * torch.sigmoid(a))
        ctx.save_for_backward(f)
        return f

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (f,) = ctx.saved_tensors
        return grad * f * (1 - f), None


def lstm_cell(c_prev: torch.Tensor, gates: torch.Tensor,
              cont: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(c, h) from c_prev (..., H), gates (..., 4H) ordered [i, f, o, g] and cont (..., 1)."""
    i, f, o, g = gates.chunk(4, dim=-1)
    c = _ForgetGate.apply(f, cont.detach()) * c_prev + torch.sigmoid(i) * torch.tanh(g)
    return c, torch.sigmoid(o) * torch.tanh(c)


@register_layer("LSTMUnit")
class LSTMUnit(Layer):
    exact_num_bottom = 3
    exact_num_top = 2
    no_force_backward = frozenset({2})

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        self._check(bottom_shapes)

    def _check(self, shapes: Sequence[Sequence[int]]) -> None:
        c, x, cont = (list(s) for s in shapes)
        for i, s, axes in ((0, c, 3), (1, x, 3), (2, cont, 2)):
            if len(s) != axes or s[0] != 1:
                raise self.error(f"bottom {i} must have {axes} axes with a first dimension of 1 "
                                 f"(one time step), got {s}", ShapeError)
        if x[1] != c[1] or cont[1] != c[1]:
            raise self.error(f"bottoms disagree on the number of streams N: c_prev {c}, gates {x}, "
                             f"cont {cont}", ShapeError)
        if x[2] != 4 * c[2]:
            raise self.error(f"gates bottom {x} must hold 4 x {c[2]} (the hidden size of c_prev "
                             f"{c}) values per stream", ShapeError)

    def forward(self, c_prev: torch.Tensor, gates: torch.Tensor,  # type: ignore[override]
                cont: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check([c_prev.shape, gates.shape, cont.shape])
        return lstm_cell(c_prev, gates, cont.unsqueeze(-1))
