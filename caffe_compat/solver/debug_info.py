"""``debug_info: true``: Caffe's per-layer statistics on display iterations.

With ``debug_info`` set, each forward/backward of a display iteration logs, as
Caffe's ``Net::ForwardDebugInfo`` / ``BackwardDebugInfo`` do (numbers are mean
absolute values, |x|₁ / count):

    [Forward] Layer L, top blob B data: v        after each layer's forward
    [Forward] Layer L, param blob i data: v
    [Backward] Layer L, bottom blob B diff: v    after each layer's backward
    [Backward] Layer L, param blob i diff: v     (parameters that learn)
    [Backward] All net params (data, diff): L1 norm = (a, b); L2 norm = (c, d)

The last line is logged at ERROR level, as Caffe does. The pass runs layer by
layer (forward in order, then backward in reverse order, each layer's segment
of the autograd graph), so in-place layers show the values Caffe shows at that
point.

Test nets log the [Forward] lines of every test batch, as in Caffe.

Differences from Caffe: none known in the lines; this pass is slower than the
normal one, but it only runs on display iterations.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from ..net import Net

__all__ = ["debug_forward", "debug_forward_backward"]

_log = logging.getLogger("caffe_compat")


def _mean_abs(t: torch.Tensor) -> str:
    n = t.numel()
    value = float(t.detach().abs().sum()) / n if n else 0.0
    return f"{float(np.float32(value)):g}"


def debug_forward(net: "Net") -> torch.Tensor | None:
    """Forward through ``net`` layer by layer, logging the [Forward] lines
    (test nets do this in Caffe's Test() when debug_info is set)."""
    blobs = net._blob_list
    loss: torch.Tensor | None = None
    for i, node in enumerate(net._nodes):
        part = net._forward_range(i, i, want_loss=True)
        if part is not None:
            loss = part if loss is None else loss + part
        for bid in node.top_ids:
            _log.info("    [Forward] Layer %s, top blob %s data: %s", node.name, net._blob_names[bid],
                      _mean_abs(blobs[bid].tensor))
        for j, p in enumerate(node.layer.params):
            _log.info("    [Forward] Layer %s, param blob %d data: %s", node.name, j, _mean_abs(p))
    return loss


def debug_forward_backward(net: "Net") -> torch.Tensor | None:
    """Forward and backward through ``net`` (diffs as ``_forward_backward``
    leaves them), logging Caffe's debug lines; returns the loss."""
    nodes = net._nodes
    blobs = net._blob_list
    loss = debug_forward(net)
    for i in range(len(nodes) - 1, -1, -1):
        node = nodes[i]
        if not node.need_backward:
            continue
        net._backward_range(i, i, retain_graph=True)
        for k, bid in enumerate(node.bottom_ids):
            if node.bottom_need_backward[k]:
                _log.info("    [Backward] Layer %s, bottom blob %s diff: %s", node.name,
                          net._blob_names[bid], _mean_abs(blobs[bid].diff_tensor))
        for j, p in enumerate(node.layer.params):
            if p.requires_grad:
                _log.info("    [Backward] Layer %s, param blob %d diff: %s", node.name, j,
                          _mean_abs(node.layer.blobs[j].diff_tensor))
    net._graph_alive = False
    l1_data = l1_diff = l2_data = l2_diff = 0.0
    for blob in net.learnable_params:
        data, diff = blob.tensor.detach().double(), blob.diff_tensor.detach().double()
        l1_data += float(data.abs().sum())
        l1_diff += float(diff.abs().sum())
        l2_data += float(data.square().sum())
        l2_diff += float(diff.square().sum())
    f = lambda x: f"{float(np.float32(x)):g}"  # noqa: E731
    _log.error("    [Backward] All net params (data, diff): L1 norm = (%s, %s); L2 norm = (%s, %s)",
               f(l1_data), f(l1_diff), f(math.sqrt(l2_data)), f(math.sqrt(l2_diff)))
    return loss
