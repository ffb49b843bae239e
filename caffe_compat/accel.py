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
* ``onnxruntime=True`` runs a net's full TEST forward (no grad, CPU) as one ONNX
  Runtime session: the net exported to ONNX for its input shapes and weights
  (kept on disk under ``cache_dir``, ``$CAFFE_COMPAT_CACHE`` or
  ``~/.cache/caffe_compat``, so only the first run of a model pays the export's
  seconds). Only the output blobs (and those ``net.forward(blobs=[...])`` names)
  are updated; reading another blob raises
  :class:`~caffe_compat.errors.BlobReleasedError`. Outputs are Caffe's within float
  rounding. Partial forwards, forwards with grad and CUDA nets run the interpreter.
  For a Solver it applies to the test nets. Needs ``caffe-compat[onnx]``.
* ``tf32=True`` allows TensorFloat-32 matrix arithmetic on CUDA (process-wide;
  ``set_mode_gpu`` turns it off, since Caffe computes in true float32).
* ``cuda_graphs=True`` compiles with ``mode="reduce-overhead"`` (CUDA graphs
  for static shapes, on CUDA devices).
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import torch

from .plans import default_plan
from .plans.accelerated import AcceleratedPlan, Acceleration
from .errors import UnsupportedError
from .plans.compiled import CompiledPlan
from .plans.ort import _INSTALL as _ORT_INSTALL, OnnxRuntimePlan
from .plans.ort import available as ort_available, cache_dir as ort_cache_dir

__all__ = ["accelerate", "Acceleration"]

_log = logging.getLogger("caffe_compat")
_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
           "float16": torch.float16}


def accelerate(target: Any, *, channels_last: bool = False, autocast: str | None = None,
               compile: bool | str = False, cuda_graphs: bool = False,
               lean_memory: bool = False, tf32: bool = False, onnxruntime: bool = False,
               cache_dir: str | os.PathLike[str] | None = None) -> Any:
    """Turn accelerations on (or, with no arguments, off) for a Net or a Solver
    (its train and test nets): choose the execution plan each net runs. Returns ``target``."""
    nets = _nets_of(target)
    if autocast is not None and autocast not in _DTYPES:
        raise ValueError(f"accelerate: autocast must be one of {sorted(_DTYPES)}, got {autocast!r}")
    if onnxruntime:
        others = [n for n, v in (("channels_last", channels_last), ("autocast", autocast),
                                 ("compile", compile), ("lean_memory", lean_memory)) if v]
        if others:
            raise ValueError(f"accelerate: onnxruntime=True runs the forward in ONNX Runtime; "
                             f"it does not combine with {', '.join(others)}")
        missing = ort_available()
        if missing:
            raise UnsupportedError(f"accelerate(onnxruntime=True) needs {missing}: {_ORT_INSTALL}")
        if nets and nets[0] is not target:  # a solver: its test nets (training needs the interpreter)
            _set_channels_last(nets[0], False)
            nets[0]._plan = default_plan(nets[0])
            nets = nets[1:]
        for net in nets:
            if net.device.type != "cpu":
                warnings.warn("accelerate: onnxruntime runs on the CPU; this CUDA net keeps the "
                              "interpreter", RuntimeWarning, stacklevel=2)
            _set_channels_last(net, False)
            config = Acceleration(onnxruntime=True,
                                  cache_dir=None if cache_dir is None else os.fspath(cache_dir))
            plan = OnnxRuntimePlan(config)
            plan.check(net)
            net._plan = plan
        _log.info("accelerate: onnxruntime=True (cache %s)", ort_cache_dir(cache_dir) or "off")
        return target
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
