"""pycaffe's compiled module ``caffe._caffe``, as far as scripts see it.

Upstream's ``python/caffe/_caffe.cpp`` defines the classes and functions that
``caffe/__init__.py`` re-exports; here they are caffe_compat's own, gathered
under the same names so ``from caffe._caffe import Layer`` (and
``caffe._caffe.Timer``) work under the ``import caffe`` alias. What only this
module defines:

* :class:`Timer` — Caffe's timer (``start``, ``stop``, ``ms``), which BVLC's
  ``python/train.py`` hangs on the per-layer callbacks;
* :func:`init_log` and :func:`log` — glog's start-up and an INFO line, through
  caffe_compat's glog-format logging (:mod:`caffe_compat.glog`);
* the vector wrappers (``BlobVec``, ``IntVec``, ...): pycaffe returns them
  from ``net.layers``, ``net._blobs`` and the like; caffe_compat uses lists,
  and these names are list subclasses for code that names them.
"""

from __future__ import annotations

import logging
import tempfile
import time

import torch

from ._version import __version__
from .blob import Blob
from .layers.registry import layer_type_list
from .glog import init_glog, logger, setup_logging
from .mode import (
    is_gpu_mode,
    set_device,
    set_mode_cpu,
    set_mode_gpu,
    set_multiprocess,
    set_random_seed,
    set_solver_count,
    set_solver_rank,
    solver_count,
    solver_rank,
)
from .net import Net
from .parallel import NCCL, has_nccl
from .proto import caffe_pb2
from .python_layer import BlobVec, Layer
from .solver import (
    AdaDeltaSolver,
    AdaGradSolver,
    AdamSolver,
    NesterovSolver,
    RMSPropSolver,
    SGDSolver,
    Solver,
    get_solver,
)

__all__ = [
    "__version__", "Timer", "init_log", "log",
    "Net", "Blob", "Layer", "Solver", "SGDSolver", "NesterovSolver", "AdaGradSolver", "RMSPropSolver",
    "AdaDeltaSolver", "AdamSolver", "get_solver", "NCCL", "has_nccl", "layer_type_list",
    "set_mode_cpu", "set_mode_gpu", "set_device", "set_random_seed", "set_multiprocess",
    "solver_count", "set_solver_count", "solver_rank", "set_solver_rank",
    "LayerParameter", "SolverParameter",
    "BlobVec", "RawBlobVec", "LayerVec", "StringVec", "IntVec", "DtypeVec", "NetVec", "BoolVec",
]

LayerParameter = caffe_pb2.LayerParameter
SolverParameter = caffe_pb2.SolverParameter


class RawBlobVec(list):
    """pycaffe's ``RawBlobVec`` (a ``vector<Blob*>``); a list here."""


class LayerVec(list):
    """pycaffe's ``LayerVec`` (``net.layers``); a list here."""


class StringVec(list):
    """pycaffe's ``StringVec`` (``net._layer_names``); a list here."""


class IntVec(list):
    """pycaffe's ``IntVec`` (``net._inputs``); a list here."""


class DtypeVec(list):
    """pycaffe's ``DtypeVec`` (``net._blob_loss_weights``); a list here."""


class NetVec(list):
    """pycaffe's ``NetVec`` (``solver.test_nets``); a list here."""


class BoolVec(list):
    """pycaffe's ``BoolVec`` (``propagate_down``); a list here."""


# ------------------------------------------------------------------ timer
class Timer:
    """Caffe's ``Timer`` (``caffe.Timer()``: ``start()``, ``stop()``, ``ms``).

    As in Caffe: ``start()`` on a running timer and ``stop()`` on a stopped one
    do nothing; reading ``ms`` stops a running timer and gives the time between
    the last start and stop; reading it before any ``start()`` warns and gives
    0. On the CPU Caffe counts whole milliseconds (boost's
    ``total_milliseconds``), and so does this timer; in GPU mode it waits for
    the device at start and stop and gives fractional milliseconds, as Caffe's
    CUDA-event timer does.
    """

    __slots__ = ("_start", "_stop", "_running", "_ran", "_gpu")

    def __init__(self) -> None:
        self._start = self._stop = 0.0
        self._running = self._ran = False
        self._gpu = False

    def _now(self) -> float:
        if self._gpu and torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def start(self) -> None:
        if not self._running:
            self._gpu = is_gpu_mode()
            self._start = self._now()
            self._running = self._ran = True

    def stop(self) -> None:
        if self._running:
            self._stop = self._now()
            self._running = False

    @property
    def ms(self) -> float:
        """Milliseconds between the last ``start()`` and ``stop()``."""
        if not self._ran:
            logger.warning("Timer has never been run before reading time.")
            return 0.0
        if self._running:
            self.stop()
        elapsed = (self._stop - self._start) * 1000.0
        return elapsed if self._gpu else float(int(elapsed))

    def __repr__(self) -> str:
        state = "running" if self._running else ("stopped" if self._ran else "never started")
        return f"<caffe.Timer {state}>"


# ---------------------------------------------------------------- logging
# glog's minloglevel: 0 INFO, 1 WARNING, 2 ERROR, 3 FATAL.
_GLOG_LEVELS = {0: logging.INFO, 1: logging.WARNING, 2: logging.ERROR, 3: logging.CRITICAL}


def init_log(level: int | None = None, stderr: bool | None = None) -> None:
    """pycaffe's ``caffe.init_log([level[, stderr]])``: glog's ``InitGoogleLogging``.

    As in pycaffe, messages then go to log files (``GLOG_log_dir``, else the
    temporary directory, as glog does: ``.<host>.<user>.log.INFO.<time>.<pid>``)
    and to stderr only from ``GLOG_stderrthreshold`` (ERROR) up, unless
    ``stderr`` (glog's ``logtostderr``) is true. ``level`` is glog's
    ``minloglevel`` (0 INFO ... 3 FATAL). Calling it twice reconfigures
    (glog would abort).
    """
    if level is not None and int(level) not in _GLOG_LEVELS:
        raise ValueError(f"init_log: level must be glog's minloglevel 0..3 (INFO..FATAL), got {level!r}")
    init_glog("", minloglevel=level, logtostderr=stderr, default_log_dir=tempfile.gettempdir())


def log(message: str) -> None:
    """pycaffe's ``caffe.log(msg)``: one INFO line in Caffe's log (glog format).

    Before :func:`init_log` glog still prints to stderr, so this sets up
    caffe_compat's log handler first when nothing configured it.
    """
    if not logger.hasHandlers():
        setup_logging()
    logger.info("%s", message, stacklevel=2)
