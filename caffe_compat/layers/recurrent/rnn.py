"""RNN (``rnn_layer.cpp``), see :mod:`._recurrent` for bottoms, tops and state rules.

Per step t, with h the state entering it:

    h   = tanh(W_xh·x_t + b_h [+ W_xh_static·x_static] + W_hh·(cont_t·h))
    o_t = tanh(W_ho·h + b_o)

Blobs, in Caffe's order: W_xh (H, K), b_h (H,), [W_xh_static (H, K_static)],
W_hh (H, H), W_ho (H, H), b_o (H,); weights from ``weight_filler``, biases
from ``bias_filler``. Tops: o (T, N, H) [, h_T (1, N, H)].

Differences from Caffe: after N changes, the carried state restarts at zeros
(Caffe reinterprets its old state memory).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...proto import caffe_pb2
from ..registry import register_layer
from ._recurrent import Recurrent


@register_layer("RNN")
class RNN(Recurrent):
    n_state = 1

    def _make_params(self, p: caffe_pb2.RecurrentParameter) -> None:
        h = self.hidden
        self.add_param((h, self.k), p.weight_filler, attr="W_xh")
        self.add_param((h,), p.bias_filler, attr="b_h")
        if self.static:
            self.add_param((h, self.k_static), p.weight_filler, attr="W_xh_static")
        self.add_param((h, h), p.weight_filler, attr="W_hh")
        self.add_param((h, h), p.weight_filler, attr="W_ho")
        self.add_param((h,), p.bias_filler, attr="b_o")

    def _unroll(self, x: torch.Tensor, cont: torch.Tensor, static: torch.Tensor | None,
                init: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        w_xh, b_h = self.params[0], self.params[1]
        w_hh, w_ho, b_o = self.params[-3:]
        xw = F.linear(x, w_xh, b_h)
        if static is not None:
            xw = xw + F.linear(static, self.params[2])
        (h,) = init
        hs = []
        for t in range(x.shape[0]):
            h = torch.tanh(F.linear(cont[t] * h, w_hh) + xw[t])
            hs.append(h)
        return torch.tanh(F.linear(torch.stack(hs), w_ho, b_o)), [h]
