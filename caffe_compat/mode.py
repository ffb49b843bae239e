"""Caffe's global run mode: CPU or GPU, the device id, the random seed.

pycaffe keeps these as process-wide settings (``caffe.set_mode_gpu()``,
``caffe.set_device(1)``, ``caffe.set_random_seed(0)``); so do we. Nets read
:func:`current_device` when they are built and again before each forward, so
switching the mode after building a net moves it, as Caffe's layers follow
``Caffe::mode()``.
"""

from __future__ import annotations

import logging
import os
import warnings

import numpy as np
import torch

__all__ = [
    "set_mode_cpu",
    "set_mode_gpu",
    "set_device",
    "set_random_seed",
    "current_device",
    "is_gpu_mode",
    "set_strict",
    "is_strict",
    "host_rng",
    "set_multiprocess",
    "set_solver_count",
    "set_solver_rank",
    "multiprocess",
    "root_solver",
    "solver_rank",
    "solver_count",
]

_log = logging.getLogger("caffe_compat")

_gpu_mode = False
_device_id = 0
_strict = os.environ.get("CAFFE_COMPAT_STRICT", "") not in ("", "0")
_warned_no_cuda = False
_host_rng = np.random.default_rng()
_rank = 0
_count = 1
_multiprocess = False


def set_mode_cpu() -> None:
    """Run nets on the CPU (Caffe's ``Caffe::set_mode(Caffe::CPU)``)."""
    global _gpu_mode
    _gpu_mode = False


def set_mode_gpu() -> None:
    """Run nets on the CUDA device chosen with :func:`set_device`.

    Without CUDA this warns once and stays on the CPU, so scripts written for a
    GPU machine still run; in strict mode (:func:`set_strict`) it raises.
    """
    global _gpu_mode, _warned_no_cuda
    if not torch.cuda.is_available():
        if _strict:
            from .errors import UnsupportedError

            raise UnsupportedError("set_mode_gpu(): CUDA is not available on this machine")
        if not _warned_no_cuda:
            warnings.warn(
                "caffe_compat: set_mode_gpu() called but CUDA is not available; "
                "running on the CPU instead",
                RuntimeWarning,
                stacklevel=2,
            )
            _warned_no_cuda = True
        _gpu_mode = False
        return
    # Caffe computes in true float32; torch's default TF32 convolutions would not
    # (caffe.accelerate(..., tf32=True) turns them back on).
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    _gpu_mode = True


def set_device(device_id: int) -> None:
    """Choose the CUDA device used in GPU mode (``caffe.set_device``)."""
    global _device_id
    device_id = int(device_id)
    if device_id < 0:
        raise ValueError(f"set_device: device id must be >= 0, got {device_id}")
    if torch.cuda.is_available() and device_id >= torch.cuda.device_count():
        raise ValueError(
            f"set_device: device id {device_id} does not exist "
            f"({torch.cuda.device_count()} CUDA device(s) present)"
        )
    _device_id = device_id


def is_gpu_mode() -> bool:
    return _gpu_mode


def current_device() -> torch.device:
    """The torch device new computations run on under the current mode."""
    if _gpu_mode:
        return torch.device("cuda", _device_id)
    return torch.device("cpu")


def set_random_seed(seed: int) -> None:
    """Seed every random choice caffe_compat makes: fillers, dropout, shuffles."""
    global _host_rng
    seed = int(seed)
    torch.manual_seed(seed)
    _host_rng = np.random.default_rng(seed)


def host_rng() -> np.random.Generator:
    """The numpy generator used for host-side choices (data shuffling, crops)."""
    return _host_rng


def set_strict(strict: bool = True) -> None:
    """Turn lenient fallbacks (GPU→CPU, unknown proto fields) into errors."""
    global _strict
    _strict = bool(strict)


def is_strict() -> bool:
    return _strict


def set_multiprocess(rank: int | bool, count: int | None = None) -> None:
    """Record this process's place in data-parallel training: ``set_multiprocess(rank, count)``.

    With one argument it is pycaffe's ``caffe.set_multiprocess(flag)`` (Caffe 1.0's
    python/train.py calls it in each process); that only marks the process as one
    of several (:func:`multiprocess`). See :mod:`caffe_compat.parallel`.
    """
    global _multiprocess
    if count is None:
        _multiprocess = bool(rank)
        return
    set_solver_count(count)
    set_solver_rank(int(rank))
    _multiprocess = _count > 1


def set_solver_count(count: int) -> None:
    """pycaffe's ``caffe.set_solver_count``: how many solvers train together."""
    global _count
    if int(count) < 1:
        raise ValueError(f"set_solver_count: the solver count must be >= 1, got {count}")
    _count = int(count)


def set_solver_rank(rank: int) -> None:
    """pycaffe's ``caffe.set_solver_rank``: this process's solver (0 is the root)."""
    global _rank
    if int(rank) < 0:
        raise ValueError(f"set_solver_rank: the solver rank must be >= 0, got {rank}")
    _rank = int(rank)


def multiprocess() -> bool:
    return _multiprocess


def root_solver() -> bool:
    """Caffe's ``Caffe::root_solver()``: rank 0 tests, logs and snapshots."""
    return _rank == 0


def solver_rank() -> int:
    return _rank


def solver_count() -> int:
    return _count
