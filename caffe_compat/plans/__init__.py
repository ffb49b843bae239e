"""Execution plans: how a net runs its forward, backward and training passes.

* :class:`EagerPlan` (``eager.py``) — the interpreter every net starts with:
  layer by layer, autograd for the backward, Caffe's float32 numbers; without
  a graph, Caffe's layer-by-layer backward (``replay.py``).
* :class:`AcceleratedPlan` (``accelerated.py``) — the same interpreter under
  opt-in settings: channels-last weights, autocast, lean memory.
* :class:`CompiledPlan` (``compiled.py``) — the whole net as one
  ``torch.compile``\\ d graph (:func:`caffe_compat.to_torch`).

:func:`caffe_compat.accelerate` picks the plan; the net only calls it.
"""

from .base import ExecutionPlan, seed_grad
from .eager import EagerPlan

__all__ = ["ExecutionPlan", "EagerPlan", "seed_grad"]
