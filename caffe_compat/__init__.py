"""caffe_compat: Caffe's Python API (pycaffe) on PyTorch.

``import caffe_compat as caffe`` gives what pycaffe scripts use: ``Net``,
``Blob``, ``TRAIN``/``TEST``, the run-mode functions, and (as the other parts
land) solvers, ``Layer`` for Python layers, ``io``, ``NetSpec``.
"""

from __future__ import annotations

# First, before anything imports torch: libgomp reads its wait policy once (see threads.py).
from .threads import openmp_policy  # noqa: F401
from ._version import __version__
from .glog import configure_from_env as _configure_logging
from .blob import Blob
from .errors import CaffeCompatError
from .layers.registry import layer_type_list
from .mode import (
    set_device,
    set_mode_cpu,
    set_mode_gpu,
    set_multiprocess,
    set_random_seed,
    set_solver_count,
    set_solver_rank,
    set_strict,
    solver_count,
    solver_rank,
)
from .net import TEST, TRAIN, Net
from .python_layer import Layer  # pycaffe's caffe.Layer, for Python layers
from .torch_layer import TorchLayer
from .alias import install_alias
from .gradcheck import check_gradient
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
from .export import to_torch
from .accel import accelerate
from .parallel import NCCL, has_nccl
from .proto import caffe_pb2
from . import layers, pycaffe  # noqa: F401  (pycaffe attaches Net helpers)
from . import io  # noqa: F401  (pycaffe's caffe.io)
from .net_spec import NetSpec, params, to_proto
from .classifier import Classifier
from .detector import Detector
from . import _caffe  # noqa: F401  (pycaffe's caffe._caffe)
from ._caffe import Timer, init_log, log

__all__ = [
    "__version__",
    "accelerate",
    "AdaDeltaSolver",
    "AdaGradSolver",
    "AdamSolver",
    "NesterovSolver",
    "RMSPropSolver",
    "SGDSolver",
    "Solver",
    "get_solver",
    "Blob",
    "CaffeCompatError",
    "Classifier",
    "Detector",
    "Layer",
    "Net",
    "NetSpec",
    "TEST",
    "TRAIN",
    "Timer",
    "TorchLayer",
    "install_alias",
    "check_gradient",
    "caffe_pb2",
    "init_log",
    "layer_type_list",
    "log",
    "io",
    "layers",
    "params",
    "set_device",
    "set_mode_cpu",
    "set_mode_gpu",
    "set_random_seed",
    "set_strict",
    "set_multiprocess",
    "set_solver_count",
    "set_solver_rank",
    "solver_count",
    "solver_rank",
    "NCCL",
    "has_nccl",
    "to_proto",
    "to_torch",
]

_configure_logging()  # GLOG_minloglevel & co., as pycaffe honours them
