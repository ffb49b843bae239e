"""The eager plan: the interpreter every net starts with.

``forward`` runs the layers in order, reading each bottom from its blob and
rebinding each top blob to the tensor the layer returned (no copies).
``backward`` hands autograd the tops whose gradient comes from outside the
range being run (the loss tops, whose diff is their loss weight, and any
diff the user wrote), asks it for the gradients of every bottom consumed in
the range and of the parameters, and stores them as blob diffs the way
Caffe's layer-by-layer backward leaves them. Without a graph for the range
(no forward yet, or a solver step freed it) backward is Caffe's, layer by
layer from the blobs' current contents (:mod:`caffe_compat.plans.replay`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import logging

import torch

from ..blob import _handed_out, flush_host_writes, settle_handouts
from ..errors import CaffeCompatError, LayerError, NetError, layer_where
from ..layers.base import accumulating_param_diffs
from .base import ExecutionPlan, add_param_grads, seed_grad
from .replay import replay_backward

if TYPE_CHECKING:
    from ..net import Net, _Node
    from .inference import Fused

__all__ = ["EagerPlan"]

_log = logging.getLogger("caffe_compat")


class EagerPlan(ExecutionPlan):
    """Layer by layer in Python, autograd for the backward (Caffe's float32 numbers)."""

    name = "eager"

    def forward_range(self, net: "Net", start: int, end: int, want_loss: bool,
                      keep: bool) -> torch.Tensor | None:
        if torch.is_grad_enabled() and not net._any_backward:
            # Nothing will backpropagate (a deploy net): build no graph at all.
            with torch.no_grad():
                return self.run_layers(net, start, end, want_loss, False, keep)
        return self.run_layers(net, start, end, want_loss, torch.is_grad_enabled(), keep)

    @staticmethod
    def run_layers(net: "Net", start: int, end: int, want_loss: bool, grad_on: bool,
                   keep: bool = True, fused: "Sequence[Fused | None] | None" = None
                   ) -> torch.Tensor | None:
        """The interpreter loop; kept lean because it runs once per layer per pass.

        ``keep=False`` (the solver's pass) records only the loss layers' tensors: the
        tensors an in-place layer replaced (e.g. a convolution's output before its ReLU)
        are then freed during the forward instead of living through the backward.
        ``fused`` (the inference plan, without grad): per layer, a run of layers to
        compute as one kernel where the range holds all of it.
        Without grad nothing is recorded (no backward will use it, and a record would
        keep alive each tensor an in-place layer replaced, 168 MB of ResNet-50's at
        batch 8); only the addresses the pass read are noted, for ``settle_handouts``.
        """
        blobs = net._blob_list
        records = net._records
        nodes = net._nodes
        hooks_b = net._hooks["before_forward"]
        hooks_a = net._hooks["after_forward"]
        loss: torch.Tensor | None = None
        keep = keep and grad_on
        read: list[int] | None = None if grad_on else []
        pairs = not hooks_b and not hooks_a  # BatchNorm+Scale as one kernel (net._pair_affine)
        scaled = False  # the BatchNorm just run did its Scale's work too
        i = start - 1
        while i < end:
            i += 1
            node = nodes[i]
            if hooks_b:
                for cb in hooks_b:
                    cb(i)
            if node.is_input:
                tops: Sequence[torch.Tensor] = EagerPlan._feed_inputs(net, node, grad_on)
                records[i] = ([], tops) if grad_on else None
            else:
                bottoms = []
                for b in node.bottom_ids:
                    t = blobs[b]._t
                    bottoms.append(t if t is not None else blobs[b].tensor)
                if read is not None:
                    for t in bottoms:
                        read.append(t.data_ptr())
                run = fused[i] if fused is not None else None
                if run is not None and run.last <= end and not run.broken:
                    top = run_fused(run, node, bottoms)
                    if top is not None:  # layers i..run.last, all writing this one blob
                        blobs[node.top_ids[0]]._t = top
                        for j in range(i, run.last + 1):
                            records[j] = None
                        read.append(top.data_ptr())  # type: ignore[union-attr]
                        i = run.last
                        continue
                if grad_on:  # without a graph there is nothing to cut
                    for k in node.detach:
                        bottoms[k] = bottoms[k].detach()
                off = grad_on and not node.need_backward
                out: torch.Tensor | Sequence[torch.Tensor]
                try:
                    if scaled:  # this Scale's product is already in its bottom
                        out, scaled = bottoms[0], False
                    elif node.affine is not None and pairs and i < end:
                        bn: Any = node.layer
                        if off:
                            with torch.no_grad():
                                out = bn.forward_scaled(bottoms[0], node.affine)
                        else:
                            out = bn.forward_scaled(bottoms[0], node.affine)
                        scaled = True
                    elif off:
                        with torch.no_grad():
                            out = node.layer.forward(*bottoms)
                    else:
                        out = node.layer.forward(*bottoms)
                except CaffeCompatError:
                    raise
                except Exception as exc:
                    raise LayerError(
                        f"{layer_where(node.type, node.name)}: forward failed on bottoms "
                        f"{[list(b.shape) for b in bottoms]}: {type(exc).__name__}: {exc}"
                    ) from exc
                tops = (out,) if isinstance(out, torch.Tensor) else tuple(out)
                for k, tt in enumerate(tops):
                    for bt in bottoms:
                        if tt is bt:
                            # A top must be its own autograd node (identity layers
                            # such as Dropout at TEST return their input).
                            tops = tops[:k] + (tt.view_as(tt),) + tops[k + 1:]
                            break
                for bid, top in zip(node.top_ids, tops):
                    blobs[bid]._t = top
                records[i] = (bottoms, tops) if keep or (grad_on and node.has_loss) else None
            if want_loss and node.has_loss:
                for k, w in enumerate(node.loss_weights):
                    if w:
                        term = tops[k].detach().sum() * w
                        loss = term if loss is None else loss + term
            if hooks_a:
                for cb in hooks_a:
                    cb(i)
        net._graph_alive = grad_on
        if _handed_out:  # arrays a script kept from the blobs see this forward's values
            if read is None:
                settle_handouts(read_ptrs={t.data_ptr() for r in records[start:end + 1]
                                           if r is not None for t in r[0]})
            else:
                settle_handouts(read_ptrs=set(read))
        return loss

    @staticmethod
    def _feed_inputs(net: "Net", node: Any, grad_on: bool) -> list[torch.Tensor]:
        tops = []
        for bid in node.top_ids:
            blob = net._blob_list[bid]
            t = blob.tensor
            if t.requires_grad or t.grad_fn is not None:
                t = t.detach()
            if grad_on and net._blob_need_backward[bid]:
                t = t.detach().requires_grad_(True)
            blob._t = t
            tops.append(t)
        return tops

    def backward_range(self, net: "Net", start: int, end: int, retain_graph: bool = True) -> None:
        flush_host_writes()
        blobs = net._blob_list
        nodes = net._nodes
        records = net._records
        if not net._graph_alive or None in records[end:start + 1]:
            # No graph to use (no forward yet, a solver step freed it, a forward without
            # grad): Caffe's backward from the blobs as they are.
            replay_backward(net, start, end)
            settle_handouts(diff=True)
            return
        consumed: dict[int, torch.Tensor] = {}
        for i in range(end, start + 1):
            rec = records[i]
            assert rec is not None
            for t in rec[0]:
                if t.requires_grad:
                    consumed[id(t)] = t
        seeds: list[torch.Tensor] = []
        grads: list[torch.Tensor] = []
        params: list[torch.Tensor] = []
        seen_params: set[int] = set()
        for i in range(end, start + 1):
            node = nodes[i]
            if not node.need_backward:
                continue
            for k, t in enumerate(records[i][1]):  # type: ignore[index]
                if id(t) in consumed or not t.requires_grad:
                    continue
                blob = blobs[node.top_ids[k]]
                if not blob.has_diff and not getattr(node.layer, "always_backward", False):
                    continue  # an all-zero seed contributes nothing (Python layers still run)
                seeds.append(t)
                grads.append(seed_grad(blob.diff_tensor, t))
            for p in node.layer.params:
                if p.requires_grad and id(p) not in seen_params:
                    seen_params.add(id(p))
                    params.append(p)
        for cb in net._hooks["before_backward"]:
            for i in range(start, end - 1, -1):
                cb(i)
        inputs = params + list(consumed.values())
        # Let go of the diffs this pass replaces, so that old and new are not both held
        # through the backward (arrays a user kept stay valid: they hold their memory).
        for i in range(end, start + 1):
            node = nodes[i]
            if node.need_backward:
                for k, bid in enumerate(node.bottom_ids):
                    t = records[i][0][k]  # type: ignore[index]
                    if node.bottom_need_backward[k] and id(t) in consumed:
                        blobs[bid]._diff = None
        grad_of: dict[int, torch.Tensor | None] = {}
        if seeds and inputs:
            try:
                # autograd.grad hands back the gradients it computed; backward(inputs=...)
                # would clone each intermediate one into .grad (retain_grad) first.
                with accumulating_param_diffs():
                    got = torch.autograd.grad(seeds, inputs, grads, retain_graph=retain_graph,
                                              allow_unused=True)
            except RuntimeError as exc:
                if "second time" in str(exc) or "freed" in str(exc):
                    raise NetError(
                        "backward: the graph of the last forward was already used by a "
                        "solver step; run forward() again"
                    ) from exc
                raise
            add_param_grads(params, got)
            grad_of = {id(t): g for t, g in zip(consumed.values(), got[len(params):])}
        # Store bottom gradients as Caffe leaves them: the lowest layer that
        # writes a blob's diff writes it last.
        done: set[int] = set()
        for i in range(end, start + 1):
            node = nodes[i]
            bottoms = records[i][0]  # type: ignore[index]
            for k, bid in enumerate(node.bottom_ids):
                t = bottoms[k]
                if id(t) not in consumed:
                    continue
                bg = grad_of.get(id(t))
                if bid in done or not (node.need_backward and node.bottom_need_backward[k]):
                    continue
                done.add(bid)
                blobs[bid]._diff = bg
        if not retain_graph:
            net._graph_alive = False
        if _handed_out:
            settle_handouts(diff=True)
        for cb in net._hooks["after_backward"]:
            for i in range(start, end - 1, -1):
                cb(i)

    def forward_backward(self, net: "Net") -> torch.Tensor | None:
        """One training pass for the solver: forward, then backward from the
        loss tops into the parameter gradients only (no blob diffs kept)."""
        loss = net._forward_range(0, len(net._nodes) - 1, want_loss=True, keep=False)
        seeds, grads = [], []
        for li, k, _ in net._loss_tops:
            node = net._nodes[li]
            if not node.need_backward:
                continue
            t = net._records[li][1][k]  # type: ignore[index]
            if t.requires_grad:
                seeds.append(t)
                grads.append(seed_grad(net._blob_list[node.top_ids[k]].diff_tensor, t))
        params = [b.tensor for b in net._learnable if b.tensor.requires_grad]
        self.before_param_backward(net)
        last = len(net._nodes) - 1
        for cb in net._hooks["before_backward"]:  # as Net::Backward runs them, layer by layer
            for i in range(last, -1, -1):
                cb(i)
        if seeds and params:
            with accumulating_param_diffs():
                torch.autograd.backward(seeds, grads, inputs=params)
        for cb in net._hooks["after_backward"]:
            for i in range(last, -1, -1):
                cb(i)
        net._graph_alive = False
        return loss

    def before_param_backward(self, net: "Net") -> None:
        """Between the solver pass's forward and its backward (see AcceleratedPlan)."""


def run_fused(run: "Fused", node: "_Node", bottoms: list[torch.Tensor]) -> torch.Tensor | None:
    """A fused run's output, or None: then its layers run one by one (this time, or for
    good where oneDNN refused the layer's setup)."""
    try:
        return run.run(bottoms)
    except CaffeCompatError:
        raise
    except Exception as exc:  # noqa: BLE001 - the layers themselves then run (and report)
        run.broken = True
        _log.debug("%s: fused kernel unavailable (%s: %s); running its layers one by one",
                   layer_where(node.type, node.name), type(exc).__name__, exc)
        return None
