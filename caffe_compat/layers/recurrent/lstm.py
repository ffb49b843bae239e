"""LSTM (``lstm_layer.cpp``), see :mod:`._recurrent` for bottoms, tops and state rules.

Per step t, with h and c the state entering it:

    gates = W_xc·x_t + b_c [+ W_xc_static·x_static] + W_hc·(cont_t·h)
    c, h  = LSTMUnit(c, gates, cont_t)       (gate order i, f, o, g)

Blobs, in Caffe's order: W_xc (4H, K), b_c (4H,), [W_xc_static (4H, K_static)],
W_hc (4H, H); weights from ``weight_filler``, the bias from ``bias_filler``.
Tops: h (T, N, H) [, h_T (1, N, H), c_T (1, N, H)].

Differences from Caffe: after N changes, the carried state restarts at zeros
(Caffe reinterprets its old state memory).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...proto import caffe_pb2
from ..registry import register_layer
from ._recurrent import Recurrent
from .lstm_unit import lstm_cell


@register_layer("LSTM")
class LSTM(Recurrent):
    n_state = 2

    def _make_params(self, p: caffe_pb2.RecurrentParameter) -> None:
        g = 4 * self.hidden
        self.add_param((g, self.k), p.weight_filler, attr="W_xc")
        self.add_param((g,), p.bias_filler, attr="b_c")
        if self.static:
            self.add_param((g, self.k_static), p.weight_filler, attr="W_xc_static")
        self.add_param((g, self.hidden), p.weight_filler, attr="W_hc")

    def _unroll(self, x: torch.Tensor, cont: torch.Tensor, static: torch.Tensor | None,
                init: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        w_xc, b_c = self.params[0], self.params[1]
        w_hc = self.params[-1]
        xw = F.linear(x, w_xc, b_c)
        if static is not None:
            xw = xw + F.linear(static, self.params[2])
        h, c = init
        hs = []
        for t in range(x.shape[0]):
            gates = F.linear(cont[t] * h, w_hc) + xw[t]
            c, h = lstm_cell(c, gates, cont[t])
            hs.append(h)
        return torch.stack(hs), [h, c]
