"""What RNN and LSTM share (Caffe's ``recurrent_layer.cpp``).

Caffe builds an unrolled internal net; here the same computation runs as a
time loop. Bottoms: x (T, N, ...) — every axis after the second is flattened
into the input of an InnerProduct —, cont (T, N) sequence-continuation
indicators (the state entering step t is multiplied by cont[t], so 0 starts a
new sequence), an optional static input x_static (N, ...) added to every step,
and with ``expose_hidden`` the initial states (1, N, H) (h_0, then c_0 for
LSTM). Tops: the output (T, N, H) and with ``expose_hidden`` the final states.

Caffe's state rules, kept here:

* without ``expose_hidden`` the final state of one forward is the initial
  state of the next (zeros before the first), so a batch whose cont[0] is 1
  continues the previous batch;
* with ``expose_hidden`` the state bottoms get no gradient and the diffs of
  the final-state tops are ignored (Caffe shares only their data);
* cont gets no gradient; T is fixed at setup (N may change).

Differences from Caffe: when the layer runs backward but the net says x (or
x_static) needs no gradient, Caffe's unrolled net still writes their diffs;
here they are left alone.
"""

from __future__ import annotations

import math
from typing import ClassVar, Sequence

import torch

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape

__all__ = ["Recurrent"]


class Recurrent(Layer):
    min_bottom = 2
    min_top = 1
    no_force_backward = frozenset({1})
    #: number of recurrent state blobs (h; or h and c)
    n_state: ClassVar[int] = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.recurrent_param
        if p.num_output <= 0:
            raise self.error(f"recurrent_param.num_output must be > 0, got {p.num_output}")
        self.hidden = int(p.num_output)
        self.expose_hidden = p.expose_hidden
        exposed = self.n_state if self.expose_hidden else 0
        nb, nt = len(bottom_shapes), len(param.top)
        if not 2 + exposed <= nb <= 3 + exposed:
            raise self.error(f"expected {2 + exposed} or {3 + exposed} bottoms (x, cont, optional "
                             f"x_static{', the initial states' if exposed else ''}), got {nb}")
        if nt != 1 + exposed:
            raise self.error(f"expected {1 + exposed} top(s), got {nt}")
        self.static = nb == 3 + exposed
        x = tuple(bottom_shapes[0])
        if len(x) < 3:
            raise self.error(f"x (bottom 0) must be (T, N, ...) with at least 3 axes (Caffe applies "
                             f"an InnerProduct from axis 2), got {list(x)}", ShapeError)
        self.T = x[0]
        self.k = math.prod(x[2:])
        self.k_static = math.prod(bottom_shapes[2][1:]) if self.static else 0
        self._check(bottom_shapes)
        self._make_params(p)
        self._state: list[torch.Tensor] | None = None

    def _make_params(self, p: caffe_pb2.RecurrentParameter) -> None:
        raise NotImplementedError

    def _unroll(self, x: torch.Tensor, cont: torch.Tensor, static: torch.Tensor | None,
                init: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(outputs (T, N, H), final states each (N, H)) from x (T, N, K) and states (N, H)."""
        raise NotImplementedError

    def _check(self, shapes: Sequence[Sequence[int]]) -> None:
        x, cont = list(shapes[0]), list(shapes[1])
        if len(x) < 3 or x[0] != self.T or math.prod(x[2:]) != self.k:
            raise self.error(f"x (bottom 0) must be ({self.T}, N, ...) with {self.k} values per "
                             f"step and stream (fixed at setup), got {x}", ShapeError)
        if cont != x[:2]:
            raise self.error(f"cont (bottom 1) must be (T, N) = {x[:2]}, got {cont}", ShapeError)
        first = 2
        if self.static:
            s = list(shapes[2])
            if not s or s[0] != x[1] or math.prod(s[1:]) != self.k_static:
                raise self.error(f"x_static (bottom 2) must be (N = {x[1]}, ...) with "
                                 f"{self.k_static} values per stream, got {s}", ShapeError)
            first = 3
        for i in range(first, len(shapes)):
            if list(shapes[i]) != [1, x[1], self.hidden]:
                raise self.error(f"bottom {i} (an initial state) must be {[1, x[1], self.hidden]}, "
                                 f"got {list(shapes[i])}", ShapeError)

    def _initial(self, n: int, like: torch.Tensor) -> list[torch.Tensor]:
        state = self._state
        if state is None or state[0].shape[0] != n:
            return [like.new_zeros(n, self.hidden) for _ in range(self.n_state)]
        return [s.to(device=like.device, dtype=like.dtype) for s in state]

    def forward(self, *bottoms: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        self._check([b.shape for b in bottoms])
        x, cont = bottoms[0], bottoms[1].detach()
        t, n = x.shape[:2]
        static = bottoms[2].reshape(n, -1) if self.static else None
        if self.expose_hidden:
            init = [b.detach().reshape(n, self.hidden) for b in bottoms[2 + self.static:]]
        else:
            init = self._initial(n, x)
            if not x.is_meta:
                self._last_init = init  # what a backward without a graph starts from again
        out, final = self._unroll(x.reshape(t, n, -1), cont.unsqueeze(-1), static, init)
        final = [s.detach() for s in final]
        if not x.is_meta and not self.expose_hidden:
            self._state = final
        return (out, *(s.unsqueeze(0) for s in final)) if self.expose_hidden else (out,)

    _last_init: list[torch.Tensor] | None = None

    def replay(self, *bottoms: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        carried = self._state
        self._state = self._last_init  # the state the last forward started from
        try:
            return self.forward(*bottoms)
        finally:
            self._state = carried

    def reset(self) -> None:
        """Forget the carried state (Caffe's ``RecurrentLayer::Reset``)."""
        self._state = None
