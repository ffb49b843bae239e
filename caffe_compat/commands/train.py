"""``caffe-compat train``: Caffe's ``caffe train`` (tools/caffe.cpp).

    caffe-compat train --solver=S [--weights=W1,W2 | --snapshot=STATE] [--gpu=0]
                       [--level=N --stage=a,b] [--sigint_effect=stop|snapshot|none]
                       [--sighup_effect=snapshot|stop|none]

The level and stages go into the solver's ``train_state``. ``--snapshot``
resumes from a solverstate; ``--weights`` copies weights (by layer name) into
the train and test nets before training. SIGINT stops training by default
(Caffe's default), and the final snapshot is written since
``snapshot_after_train`` defaults to true; SIGHUP snapshots and continues.
On an interactive terminal a progress bar runs below the log.

Differences from Caffe: without CUDA, ``--gpu`` (or ``solver_mode: GPU``)
falls back to the CPU with a warning. Several GPUs (``--gpu=0,1``) need the
data-parallel trainer (:func:`train_multi_gpu`, the hook for it); until it
exists, the first GPU is used and the log says so.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from typing import Any, Iterator

from ..cli import command
from ..errors import SolverError
from ..proto import caffe_pb2
from ..solver import Solver, SolverAction
from ..solver.params import load_solver_param
from ._common import parse_gpus, parse_stages, use_device

__all__ = ["SignalHandler", "train_multi_gpu"]

_log = logging.getLogger("caffe_compat")

_EFFECTS = ("stop", "snapshot", "none")


class SignalHandler:
    """Caffe's SignalHandler: SIGINT/SIGHUP set flags the solver polls."""

    def __init__(self, sigint_effect: str, sighup_effect: str) -> None:
        self._effects: dict[int, SolverAction] = {int(signal.SIGINT): SolverAction(sigint_effect)}
        if hasattr(signal, "SIGHUP"):
            self._effects[int(signal.SIGHUP)] = SolverAction(sighup_effect)
        self._pending: list[int] = []
        self._previous: dict[int, Any] = {}

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._pending.append(int(signum))

    def action(self) -> SolverAction:
        """The action for the oldest unhandled signal (each is reported once)."""
        while self._pending:
            effect = self._effects[self._pending.pop(0)]
            if effect is not SolverAction.NONE:
                return effect
        return SolverAction.NONE

    @contextlib.contextmanager
    def installed(self) -> Iterator["SignalHandler"]:
        for sig in self._effects:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        try:
            yield self
        finally:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)


def train_multi_gpu(solver: Solver, gpus: list[int]) -> bool:
    """Hook for data-parallel training over ``gpus`` (issue 6).

    Returns True when it trained; the single-device path runs otherwise.
    """
    try:
        from .. import parallel  # type: ignore[attr-defined]
    except ImportError:
        _log.warning("multi-GPU training (--gpu=%s) is not available yet; training on GPU %d "
                     "only (the effective batch size is that of one device)",
                     ",".join(map(str, gpus)), gpus[0])
        return False
    parallel.train(solver, gpus)
    return True


def _progress_context(enabled: bool) -> contextlib.AbstractContextManager[Any]:
    if not enabled:
        return contextlib.nullcontext()
    try:
        from tqdm.contrib.logging import logging_redirect_tqdm
    except ImportError:  # pragma: no cover - old tqdm
        return contextlib.nullcontext()
    return logging_redirect_tqdm(loggers=[_log])


@command("train", "train or finetune a model (Caffe's caffe train)")
def setup(parser: argparse.ArgumentParser):
    parser.add_argument("--solver", default="", help="the solver definition (.prototxt)")
    parser.add_argument("--weights", default="",
                        help="pretrained weights to finetune from, separated by ','")
    parser.add_argument("--snapshot", default="", help="a .solverstate to resume training from")
    parser.add_argument("--gpu", default="", help="GPU id(s) separated by ',' or 'all'")
    parser.add_argument("--level", type=int, default=0, help="network level")
    parser.add_argument("--stage", default="", help="network stages separated by ','")
    parser.add_argument("--sigint_effect", default="stop", choices=_EFFECTS,
                        help="action on SIGINT (default: stop)")
    parser.add_argument("--sighup_effect", default="snapshot", choices=_EFFECTS,
                        help="action on SIGHUP (default: snapshot)")

    def run(args: argparse.Namespace) -> int:
        if not args.solver:
            raise SolverError("Need a solver definition to train: --solver=SOLVER.prototxt")
        if args.snapshot and args.weights:
            raise SolverError("Give a snapshot to resume training or weights to finetune but not both.")
        spec = load_solver_param(args.solver)
        spec.param.train_state.level = args.level
        spec.param.train_state.stage.extend(parse_stages(args.stage))
        gpus = parse_gpus(args.gpu)
        explicit = bool(gpus)
        if not gpus and spec.param.solver_mode == caffe_pb2.SolverParameter.GPU:
            # Caffe: without --gpu, solver_mode (default GPU) and device_id decide.
            gpus = [spec.param.device_id]
            explicit = spec.param.HasField("solver_mode")
        if len(gpus) > 1:
            _log.info("Using GPUs %s", ", ".join(map(str, gpus)))
        on_gpu = use_device(gpus, explicit)
        handler = SignalHandler(args.sigint_effect, args.sighup_effect)
        solver = Solver(spec)
        solver.set_action_function(handler.action)
        if args.snapshot:
            _log.info("Resuming from %s", args.snapshot)
            solver.restore(args.snapshot)
        elif args.weights:
            for name in args.weights.split(","):
                _log.info("Finetuning from %s", name)
                solver.net.copy_from(name)
                for net in solver.test_nets:
                    net.copy_from(name)
        solver.progress = sys.stderr.isatty()
        with handler.installed(), _progress_context(solver.progress):
            if not (on_gpu and len(gpus) > 1 and train_multi_gpu(solver, gpus)):
                _log.info("Starting Optimization")
                solver.solve()
        _log.info("Optimization Done.")
        return 0

    return run
