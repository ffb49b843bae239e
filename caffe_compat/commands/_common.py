"""Flag handling shared by ``train``, ``test`` and ``time`` (tools/caffe.cpp's helpers)."""

from __future__ import annotations

import logging

import numpy as np
import torch

from .. import mode
from ..errors import CaffeCompatError, SolverError
from ..net import TEST, TRAIN

__all__ = ["parse_gpus", "use_device", "parse_stages", "parse_phase", "fmt"]

_log = logging.getLogger("caffe_compat")


def fmt(x: float) -> str:
    """A float as C++'s ostream prints it (6 significant digits)."""
    return f"{float(np.float32(x)):g}"


def parse_gpus(flag: str) -> list[int]:
    """``--gpu``: "" (none), "all", or ids separated by commas."""
    flag = (flag or "").strip()
    if not flag:
        return []
    if flag == "all":
        return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else [0]
    try:
        ids = [int(s) for s in flag.split(",")]
    except ValueError:
        raise CaffeCompatError(f"--gpu={flag}: expected device ids separated by ',' or 'all'") from None
    if any(i < 0 for i in ids):
        raise CaffeCompatError(f"--gpu={flag}: device ids must be >= 0")
    return ids


def use_device(gpus: list[int], explicit: bool = True) -> bool:
    """Set the run mode for ``gpus`` (the first one); True if a GPU is used.

    Without CUDA this warns (unless the GPU was only Caffe's default
    ``solver_mode``) and runs on the CPU, so Caffe command lines written for a
    GPU machine still work.
    """
    if not gpus:
        _log.info("Use CPU.")
        mode.set_mode_cpu()
        return False
    if not torch.cuda.is_available():
        if explicit:
            _log.warning("GPU %s requested but CUDA is not available; running on the CPU instead",
                         ",".join(map(str, gpus)))
        else:  # only Caffe's default solver_mode (GPU) asked for it
            _log.info("Use CPU.")
        mode.set_mode_cpu()
        return False
    if gpus[0] >= torch.cuda.device_count():
        raise CaffeCompatError(f"GPU {gpus[0]} does not exist ({torch.cuda.device_count()} CUDA "
                               "device(s) present)")
    _log.info("Use GPU with device ID %d", gpus[0])
    _log.info("GPU device name: %s", torch.cuda.get_device_name(gpus[0]))
    mode.set_device(gpus[0])
    mode.set_mode_gpu()
    return True


def parse_stages(flag: str) -> list[str]:
    """``--stage``: stages separated by ','. (Caffe adds one empty stage for an
    empty flag; an empty stage matches no rule, so it is left out.)"""
    return [s for s in (flag or "").split(",") if s]


def parse_phase(flag: str, default: int) -> int:
    if not flag:
        return default
    if flag == "TRAIN":
        return TRAIN
    if flag == "TEST":
        return TEST
    raise SolverError(f'--phase={flag}: phase must be "TRAIN" or "TEST"')
