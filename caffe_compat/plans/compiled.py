"""The whole net as one compiled graph (``caffe.accelerate(net, compile=True)``).

The solver's training pass and a full ``net.forward()`` run one
``torch.compile``\\ d module built by :func:`caffe_compat.to_torch`; the data
layers run outside it. Only the output blobs (and the data layers' tops) are
updated; partial forwards run the accelerated interpreter, and
``net.backward()`` is not available.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..errors import UnsupportedError
from .accelerated import AcceleratedPlan
from .base import seed_grad

if TYPE_CHECKING:
    from ..net import Net

__all__ = ["CompiledPlan"]


class CompiledPlan(AcceleratedPlan):
    name = "compiled"

    def module(self, net: "Net", kind: str) -> Any:
        """The compiled module computing ``kind`` ("train": the loss tops;
        "infer": the outputs) from the data layers' tops."""
        cfg = self.config
        module = cfg._modules.get(kind)
        if module is None:
            from ..export import to_torch

            if kind == "train":
                names = sorted({net._blob_names[net._nodes[li].top_ids[k]] for li, k, _ in net._loss_tops})
                graph = to_torch(net, outputs=names)
            else:
                graph = to_torch(net)
            backend = cfg.compile if isinstance(cfg.compile, str) else "inductor"
            mode = "reduce-overhead" if cfg.cuda_graphs and net.device.type == "cuda" else None
            module = torch.compile(graph, backend=backend, mode=mode, dynamic=False)
            cfg._modules[kind] = module
        return module

    @staticmethod
    def _data_tops(net: "Net", module: Any) -> list[torch.Tensor]:
        """Run the layers outside the graph (inputs, data layers) and return the
        tensors the compiled graph takes, in its order."""
        from ..export import _is_data_layer

        graph = module._orig_mod if hasattr(module, "_orig_mod") else module
        for node in net._nodes:
            if _is_data_layer(node.layer):
                net._run_layers(node.index, node.index, False, torch.is_grad_enabled(), False)
        return [net.blob(name).tensor for name in graph.input_names]

    def forward_range(self, net: "Net", start: int, end: int, want_loss: bool,
                      keep: bool) -> torch.Tensor | None:
        if not (start == 0 and end == len(net._nodes) - 1 and not want_loss):
            return super().forward_range(net, start, end, want_loss, keep)
        module = self.module(net, "infer")
        with torch.no_grad(), self.config.context(net.device):
            outs = module(*self._data_tops(net, module))
        for name, t in outs.items():
            net.blob(name)._t = t
        net._graph_alive = False
        return None

    def forward_backward(self, net: "Net") -> torch.Tensor | None:
        module = self.module(net, "train")
        with self.config.context(net.device):
            outs = module(*self._data_tops(net, module))
        seeds, grads = [], []
        loss: torch.Tensor | None = None
        for li, k, w in net._loss_tops:
            bid = net._nodes[li].top_ids[k]
            t = outs[net._blob_names[bid]]
            net._blob_list[bid]._t = t
            term = t.detach().float().sum() * w
            loss = term if loss is None else loss + term
            if t.requires_grad:
                seeds.append(t)
                grads.append(seed_grad(net._blob_list[bid].diff_tensor, t))
        params = [b.tensor for b in net._learnable if b.tensor.requires_grad]
        if seeds and params:
            torch.autograd.backward(seeds, grads, inputs=params)
        net._graph_alive = False
        return loss

    def backward_range(self, net: "Net", start: int, end: int, retain_graph: bool = True) -> None:
        raise UnsupportedError(
            "net.backward() is not available on a compiled net (caffe.accelerate(..., compile=...)); "
            "train with the solver, or call caffe.accelerate(net) to turn compilation off"
        )
