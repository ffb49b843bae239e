"""Execution plans: how a net runs its forward, backward and training passes.

* :class:`EagerPlan` (``eager.py``) — the interpreter every net starts with:
  layer by layer, autograd for the backward, Caffe's float32 numbers; without
  a graph, Caffe's layer-by-layer backward (``replay.py``).
* :class:`InferencePlan` (``inference.py``) — the interpreter with oneDNN's fused,
  prepacked CPU kernels for the convolutions and inner products of a net that
  nothing backpropagates through (what a deploy net starts with).
* :class:`AcceleratedPlan` (``accelerated.py``) — the same interpreter under
  opt-in settings: channels-last weights, autocast, lean memory.
* :class:`OnnxRuntimePlan` (``ort.py``) — the full TEST forward as one ONNX Runtime
  session (opt-in, CPU), the exported model kept on disk.
* :class:`CompiledPlan` (``compiled.py``) — the whole net as one
  ``torch.compile``\\ d graph (:func:`caffe_compat.to_torch`).

:func:`default_plan` picks a net's first plan, :func:`caffe_compat.accelerate` any
other; the net only calls it.
"""

from typing import TYPE_CHECKING

from ..proto import caffe_pb2
from .base import ExecutionPlan, seed_grad
from .eager import EagerPlan
from .inference import InferencePlan

if TYPE_CHECKING:
    from ..net import Net

__all__ = ["ExecutionPlan", "EagerPlan", "InferencePlan", "default_plan", "seed_grad"]


def default_plan(net: "Net") -> ExecutionPlan:
    """The plan a net starts with: the inference plan when no layer needs backward or the
    net is a TEST-phase one (a solver's test net: its passes run without grad, which is
    when that plan fuses; a forward with grad, for a backward, runs the eager one)."""
    if net._any_backward and net.phase != caffe_pb2.TEST:
        return EagerPlan()
    return InferencePlan()
