"""The eager interpreter under opt-in settings (``caffe.accelerate``): channels-last
weights, autocast to bf16/fp16, and lean memory for the solver's pass."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from .eager import EagerPlan

if TYPE_CHECKING:
    from ..net import Net

__all__ = ["Acceleration", "AcceleratedPlan"]


@dataclass
class Acceleration:
    """The settings of :func:`caffe_compat.accelerate` for one net."""

    channels_last: bool = False
    autocast: torch.dtype | None = None
    compile: bool | str = False
    cuda_graphs: bool = False
    lean_memory: bool = False
    onnxruntime: bool = False
    cache_dir: str | None = None
    _modules: dict[str, Any] = field(default_factory=dict, repr=False)

    def context(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast)


class AcceleratedPlan(EagerPlan):
    """:class:`EagerPlan` under autocast (when asked) and, with ``lean_memory``, a
    solver pass that lets autograd alone hold the intermediate results."""

    name = "accelerated"
    config: Acceleration

    def __init__(self, config: Acceleration) -> None:
        self.config = config

    def forward_range(self, net: "Net", start: int, end: int, want_loss: bool,
                      keep: bool) -> torch.Tensor | None:
        grad_on = torch.is_grad_enabled() and net._any_backward
        with self.config.context(net.device), torch.set_grad_enabled(grad_on):
            return self.run_layers(net, start, end, want_loss, grad_on, keep)

    def before_param_backward(self, net: "Net") -> None:
        if not self.config.lean_memory:
            return
        keep = {*net._output_ids, *(net._nodes[li].top_ids[k] for li, k, _ in net._loss_tops),
                *(b for n in net._nodes if not n.bottom_ids for b in n.top_ids)}
        for bid, blob in enumerate(net._blob_list):
            if bid not in keep:
                blob.release()  # autograd alone holds what backward still needs

    def __repr__(self) -> str:
        return f"<AcceleratedPlan {self.config}>"
