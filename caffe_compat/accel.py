"""Opt-in accelerations for new hardware. All are off by default.

With channels_last, autocast or compile on, results are no longer bit-for-bit
Caffe's float32 numbers (reduced precision, reordered arithmetic); they stay within what
each technique normally costs in accuracy. Turn them on per net or solver:

    caffe.accelerate(solver, channels_last=True, autocast="bf16", compile=True)

* ``channels_last`` stores 4-d convolution weights NHWC, so convolutions run
  in torch's channels-last kernels (their outputs follow); a blob's array is
  C-contiguous NCHW, as pycaffe's: the blob takes an NCHW copy when it is read.
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

import logging
import warnings
from typing import Any

import torch

from .plans import default_plan
from .plans.accelerated import AcceleratedPlan, Acceleration
from .plans.compiled import CompiledPlan

__all__ = ["accelerate", "Acceleration"]

_log = logging.getLogger("caffe_compat")
_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
           "float16": torch.float16}


def accelerate(target: Any, *, channels_last: bool = False, autocast: str | None = None,
               compile: bool | str = False, cuda_graphs: bool = False,
               lean_memory: bool = False, tf32: bool = False) -> Any:
    """Turn accelerations on (or, with no arguments, off) for a Net or a Solver
    (its train and test nets): choose the execution plan each net runs. Returns ``target``."""
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
        if not on:
            net._plan = default_plan(net)
            continue
        config = Acceleration(channels_last, _DTYPES.get(autocast or ""), compile, cuda_graphs, lean_memory)
        net._plan = CompiledPlan(config) if compile else AcceleratedPlan(config)
    if on:
        _log.info("accelerate: channels_last=%s autocast=%s compile=%s cuda_graphs=%s lean_memory=%s",
                  channels_last, autocast, compile, cuda_graphs, lean_memory)
    return target


def _nets_of(target: Any) -> list[Any]:
    if hasattr(target, "_plan") and hasattr(target, "_nodes"):  # a Net
        return [target]
    if hasattr(target, "net") and hasattr(target, "test_nets"):
        return [target.net, *target.test_nets]
    raise TypeError(f"accelerate: expected a Net or a Solver, got {type(target).__name__}")


def _set_channels_last(net: Any, on: bool) -> None:
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
