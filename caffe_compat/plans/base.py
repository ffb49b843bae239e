"""What every execution plan provides; the net calls nothing else to run a pass."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch

if TYPE_CHECKING:
    from ..net import Net

__all__ = ["ExecutionPlan", "seed_grad", "add_param_grads"]


class ExecutionPlan:
    """How a :class:`~caffe_compat.net.Net` runs its passes.

    A net holds exactly one plan (``net._plan``): the eager interpreter when it
    is built, another when :func:`caffe_compat.accelerate` chooses one. The net
    checks ranges, flushes host writes and moves blobs to its device, then hands
    the pass to its plan; it never asks which plan it holds.
    """

    #: a short name for logs and ``repr``
    name = "plan"
    #: the opt-in settings this plan runs with (``caffe_compat.accel.Acceleration``), if any
    config: object | None = None

    def forward_range(self, net: "Net", start: int, end: int, want_loss: bool,
                      keep: bool) -> torch.Tensor | None:
        """Run layers ``start``..``end``; return the weighted loss when ``want_loss``.
        ``keep=False`` (the solver's pass) may drop what only a pycaffe backward needs."""
        raise NotImplementedError

    def backward_range(self, net: "Net", start: int, end: int, retain_graph: bool = True) -> None:
        """Backpropagate layers ``start`` down to ``end`` into blob and parameter diffs."""
        raise NotImplementedError

    def forward_backward(self, net: "Net") -> torch.Tensor | None:
        """The solver's training pass: forward, then the parameter gradients; the loss."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


def seed_grad(diff: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """A top's diff as backward's seed: in the top's dtype (reduced under opt-in autocast)."""
    return diff if diff.dtype == top.dtype else diff.to(top.dtype)


def add_param_grads(params: "list[torch.Tensor]", grads: "Sequence[torch.Tensor | None]") -> None:
    """Add backward's parameter gradients into ``.grad``: Caffe accumulates parameter diffs
    until ClearParamDiffs (a None gradient adds nothing: unused, or already added in place)."""
    acc: list[torch.Tensor] = []
    new: list[torch.Tensor] = []
    for p, g in zip(params, grads):
        if g is not None:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            acc.append(p.grad)
            new.append(g)
    if acc:
        torch._foreach_add_(acc, new)
