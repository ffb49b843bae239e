"""Backward without a graph: Caffe's layer-by-layer backward from the blobs as they are.

Caffe's ``Net::Backward`` needs no record of a forward: each layer's backward
reads its bottoms' *current* data and its tops' *current* diffs and writes
its bottoms' diffs. pycaffe scripts rely on it — a net just built, a solver
step that has freed our graph, a ``forward`` under ``torch.no_grad`` — so
when :class:`~caffe_compat.net.Net` holds no autograd graph for the range it
is asked to backpropagate, it comes here.

Each layer of the range, from ``start`` down to ``end``, is run forward once
more on leaf tensors holding its bottoms (:meth:`Layer.replay`: the last
forward's random draws, no running-statistics updates, no carried state, no
user ``forward`` for Python layers), and autograd gives that one layer's
bottom and parameter gradients for its tops' current diffs. Nothing is
re-read from a data layer and no top's data changes.

The value a layer saw as a bottom is the blob's data, except where a later
in-place layer has overwritten the blob since (a convolution's output under
its ReLU): that value is computed again from the layer that wrote it, so an
in-place layer sees its own input, as in the forward that produced the blob.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch

from ..errors import CaffeCompatError, LayerError, layer_where
from ..layers.base import accumulating_param_diffs
from .base import add_param_grads, seed_grad

if TYPE_CHECKING:
    from ..net import Net

__all__ = ["replay_backward"]


def _as_tuple(out: torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    return (out,) if isinstance(out, torch.Tensor) else tuple(out)


class _Replayer:
    def __init__(self, net: "Net") -> None:
        self.net = net
        self.writers = net._blob_writers  # per blob, the layers writing it, in order
        self.outputs: dict[int, tuple[torch.Tensor, ...]] = {}  # recomputed tops, by layer

    def current(self, bid: int) -> torch.Tensor:
        return self.net._blob_list[bid].tensor.detach()

    def seen(self, i: int, k: int) -> torch.Tensor:
        """The value layer ``i`` read as bottom ``k`` in the forward that made the blobs."""
        bid = self.net._nodes[i].bottom_ids[k]
        ws = self.writers[bid]
        before = [w for w in ws if w < i]
        if not before or before[-1] == ws[-1]:
            return self.current(bid)  # nothing overwrote it since
        w = before[-1]
        tops = self.recompute(w)
        if tops is None:
            return self.current(bid)
        return tops[self.net._nodes[w].top_ids.index(bid)]

    def recompute(self, w: int) -> tuple[torch.Tensor, ...] | None:
        """The tops layer ``w`` produced, computed again (None for a data layer)."""
        if w in self.outputs:
            return self.outputs[w]
        node = self.net._nodes[w]
        if node.is_input or not node.bottom_ids:
            return None  # data is never read again: its blob is what it gave
        bottoms = [self.seen(w, k) for k in range(len(node.bottom_ids))]
        with torch.no_grad():
            tops = _as_tuple(self.run(w, bottoms))
        self.outputs[w] = tops
        return tops

    def run(self, i: int, bottoms: list[torch.Tensor]) -> torch.Tensor | Sequence[torch.Tensor]:
        node = self.net._nodes[i]
        try:
            return node.layer.replay(*bottoms)
        except CaffeCompatError:
            raise
        except Exception as exc:
            raise LayerError(
                f"{layer_where(node.type, node.name)}: backward (forward recomputed from the "
                f"blobs) failed on bottoms {[list(b.shape) for b in bottoms]}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def layer_backward(self, i: int) -> None:
        net = self.net
        node = net._nodes[i]
        blobs = net._blob_list
        needs = node.bottom_need_backward
        if node.is_input or not (node.bottom_ids or node.layer.params):
            return  # a data layer: nothing to backpropagate into
        if not node.top_ids:
            # No tops (Silence): Caffe's backward writes zero bottom diffs.
            for k, bid in enumerate(node.bottom_ids):
                if needs[k]:
                    blobs[bid]._diff = None
            return
        params = [p for p in node.layer.params if p.requires_grad]
        tops: tuple[torch.Tensor, ...] | None = None
        if node.bottom_ids[:1] == node.top_ids[:1] and needs[0]:
            # In place: the blob holds the layer's output, which Caffe's backward reads.
            leaves = [self.current(node.top_ids[0]).requires_grad_(True)]
            with torch.enable_grad():
                top = node.layer.replay_in_place(leaves[0])
            if top is not None:
                tops = (top,)
        if tops is None:
            leaves = []
            for k in range(len(node.bottom_ids)):
                v = self.seen(i, k).detach()
                leaves.append(v.requires_grad_(True) if needs[k] else v)
            with torch.enable_grad():
                tops = _as_tuple(self.run(i, leaves))
        seeds: list[torch.Tensor] = []
        grads: list[torch.Tensor] = []
        for k, t in enumerate(tops):
            if any(t is leaf for leaf in leaves):
                t = t.view_as(t)  # an identity layer's top: its own autograd node
            if t.requires_grad and k < len(node.top_ids):
                seeds.append(t)
                grads.append(seed_grad(blobs[node.top_ids[k]].diff_tensor, t))
        wanted = [leaf for leaf, need in zip(leaves, needs) if need]
        inputs = params + wanted
        if seeds and inputs:
            with accumulating_param_diffs():
                got = torch.autograd.grad(seeds, inputs, grads, allow_unused=True)
        else:
            got = (None,) * len(inputs)  # type: ignore[assignment]
        add_param_grads(params, got)
        j = len(params)
        for k, bid in enumerate(node.bottom_ids):
            if needs[k]:
                blobs[bid]._diff = got[j]  # None reads as zeros
                j += 1


def replay_backward(net: "Net", start: int, end: int) -> None:
    """Backpropagate layers ``start`` down to ``end`` as Caffe does, without a graph."""
    replayer = _Replayer(net)
    nodes = net._nodes
    before = net._hooks["before_backward"]
    after = net._hooks["after_backward"]
    for i in range(start, end - 1, -1):
        for cb in before:
            cb(i)
        if nodes[i].need_backward:
            replayer.layer_backward(i)
        for cb in after:
            cb(i)
