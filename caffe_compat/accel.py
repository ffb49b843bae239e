"""Opt-in accelerations for new hardware. All are off by default.

With channels_last, autocast or compile on, results are no longer bit-for-bit
Caffe's float32 numbers (reduced precision, reordered arithmetic); they stay within what
each technique normally costs in accuracy. Turn them on per net or solver:

    caffe.accelerate(solver, channels_last=True, autocast="bf16", compile=True)

* ``channels_last`` stores 4-d convolution weights NHWC, so convolutions run
  in torch's channels-last kernels (their outputs follow); blob arrays keep
  Caffe's NCHW indexing (numpy views are strided).
* ``autocast="bf16"|"fp16"`` runs the layers under ``torch.autocast``;
  parameters, gradients, solver history and loss values stay float32. Blob
  arrays of reduced-precision intermediates are float32 copies (writing into
  them does not reach the net).
* ``compile=True`` (or a backend name such as ``"aot_eager"``) runs the net
  through ``torch.compile``: the solver's training pass and ``net.forward()``
  then execute one compiled graph built by :func:`caffe_compat.to_torch`.
  Only the output blobs (and the data layers' tops) are updated; intermediate
  blobs keep their last interpreted values, and ``net.backward()`` is not
  available (use the solver, or ``caffe.accelerate(net)`` to turn it off).
* ``lean_memory=True`` lets a solver's training step free each intermediate
  result as soon as backward is done with it (as plain PyTorch does) instead of
  keeping every blob's data until the next forward as Caffe does. Afterwards
  the input, loss and output blobs still hold data; reading another blob
  raises :class:`~caffe_compat.errors.BlobReleasedError` until the next forward.
  Results are unchanged.
* ``tf32=True`` allows TensorFloat-32 matrix arithmetic on CUDA (process-wide;
  ``set_mode_gpu`` turns it off, since Caffe computes in true float32).
* ``cuda_graphs=True`` compiles with ``mode="reduce-overhead"`` (CUDA graphs
  for static shapes, on CUDA devices).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from .errors import UnsupportedError

if TYPE_CHECKING:
    from .net import Net

__all__ = ["accelerate", "Acceleration"]

_log = logging.getLogger("caffe_compat")
_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
           "float16": torch.float16}


@dataclass
class Acceleration:
    channels_last: bool = False
    autocast: torch.dtype | None = None
    compile: bool | str = False
    cuda_graphs: bool = False
    lean_memory: bool = False
    _modules: dict[str, Any] = field(default_factory=dict, repr=False)

    def context(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast)

    # ------------------------------------------------------------- compile
    def compiled(self, net: "Net", kind: str) -> Any:
        """The compiled module computing ``kind`` ("train": the loss tops;
        "infer": the outputs) from the data layers' tops."""
        module = self._modules.get(kind)
        if module is None:
            from .export import to_torch

            if kind == "train":
                names = sorted({net._blob_names[net._nodes[li].top_ids[k]] for li, k, _ in net._loss_tops})
                graph = to_torch(net, outputs=names)
            else:
                graph = to_torch(net)
            backend = self.compile if isinstance(self.compile, str) else "inductor"
            mode = "reduce-overhead" if self.cuda_graphs and net.device.type == "cuda" else None
            module = torch.compile(graph, backend=backend, mode=mode, dynamic=False)
            self._modules[kind] = module
        return module


def accelerate(target: Any, *, channels_last: bool = False, autocast: str | None = None,
               compile: bool | str = False, cuda_graphs: bool = False,
               lean_memory: bool = False, tf32: bool = False) -> Any:
    """Turn accelerations on (or, with no arguments, off) for a Net or a Solver
    (its train and test nets). Returns ``target``."""
    nets = _nets_of(target)
    if autocast is not None and autocast not in _DTYPES:
        raise ValueError(f"accelerate: autocast must be one of {sorted(_DTYPES)}, got {autocast!r}")
    if cuda_graphs and not compile:
        compile = True
    if tf32:
        # Process-wide in torch: TensorFloat-32 matmuls/convolutions on Ampere and later.
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.matmul.allow_tf32 = True
    on = channels_last or autocast is not None or bool(compile) or lean_memory
    for net in nets:
        if cuda_graphs and net.device.type != "cuda":
            warnings.warn("accelerate: cuda_graphs needs a CUDA device; compiling without them",
                          RuntimeWarning, stacklevel=2)
        _set_channels_last(net, channels_last)
        net._accel = Acceleration(channels_last, _DTYPES.get(autocast or ""), compile,
                                  cuda_graphs, lean_memory) if on else None
    if on:
        _log.info("accelerate: channels_last=%s autocast=%s compile=%s cuda_graphs=%s lean_memory=%s",
                  channels_last, autocast, compile, cuda_graphs, lean_memory)
    return target


def _nets_of(target: Any) -> list["Net"]:
    from .net import Net

    if isinstance(target, Net):
        return [target]
    if hasattr(target, "net") and hasattr(target, "test_nets"):
        return [target.net, *target.test_nets]
    raise TypeError(f"accelerate: expected a Net or a Solver, got {type(target).__name__}")


def _set_channels_last(net: "Net", on: bool) -> None:
    fmt = torch.channels_last if on else torch.contiguous_format
    with torch.no_grad():
        for node in net._nodes:
            if node.layer.type not in ("Convolution", "Deconvolution"):
                continue
            for p in node.layer.params:
                if p.dim() == 4 and not p._is_view():
                    p.data = p.data.contiguous(memory_format=fmt)
                    if p.grad is not None:
                        p.grad = p.grad.contiguous(memory_format=fmt)


# ------------------------------------------------------------ compiled passes
def _data_tops(net: "Net", module: Any) -> list[torch.Tensor]:
    """Run the layers outside the graph (inputs, data layers) and return the
    tensors the compiled graph takes, in its order."""
    from .export import _is_data_layer

    for node in net._nodes:
        if _is_data_layer(node.layer):
            net._run_layers(node.index, node.index, False, torch.is_grad_enabled(), False)
    return [net.blob(name).tensor for name in module.input_names]


def compiled_forward_backward(net: "Net", accel: Acceleration) -> torch.Tensor | None:
    from .net import seed_grad

    module = accel.compiled(net, "train")
    graph = module._orig_mod if hasattr(module, "_orig_mod") else module
    with accel.context(net.device):
        outs = module(*_data_tops(net, graph))
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


def compiled_forward(net: "Net") -> None:
    accel = net._accel
    assert accel is not None
    module = accel.compiled(net, "infer")
    graph = module._orig_mod if hasattr(module, "_orig_mod") else module
    with torch.no_grad(), accel.context(net.device):
        outs = module(*_data_tops(net, graph))
    for name, t in outs.items():
        net.blob(name)._t = t
    net._graph_alive = False


def check_backward_allowed(net: "Net") -> None:
    if net._accel is not None and net._accel.compile:
        raise UnsupportedError(
            "net.backward() is not available on a compiled net (caffe.accelerate(..., compile=...)); "
            "train with the solver, or call caffe.accelerate(net) to turn compilation off"
        )


def forward_range(net: "Net", start: int, end: int, want_loss: bool, keep: bool) -> torch.Tensor | None:
    """The net's forward under its accelerations."""
    accel = net._accel
    assert accel is not None
    if accel.compile and start == 0 and end == len(net._nodes) - 1 and not want_loss:
        compiled_forward(net)
        return None
    grad_on = torch.is_grad_enabled() and net._any_backward
    with accel.context(net.device), torch.set_grad_enabled(grad_on):
        return net._run_layers(start, end, want_loss, grad_on, keep)
