"""``caffe-compat train``: Caffe's ``caffe train`` (tools/caffe.cpp).

    caffe-compat train --solver=S [--weights=W1,W2 | --snapshot=STATE] [--gpu=0]
                       [--level=N --stage=a,b] [--sigint_effect=stop|snapshot|none]
                       [--sighup_effect=snapshot|stop|none] [--cpu_processes=N]

The level and stages go into the solver's ``train_state``. ``--snapshot``
resumes from a solverstate; ``--weights`` copies weights (by layer name) into
the train and test nets before training. SIGINT stops training by default
(Caffe's default), and the final snapshot is written since
``snapshot_after_train`` defaults to true; SIGHUP snapshots and continues.
On an interactive terminal a progress bar runs below the log.

Several GPUs (``--gpu=0,1`` or ``all``) train data-parallel with one process
per GPU, ``--cpu_processes=N`` with N CPU processes, and under ``torchrun``
each process is one rank (:mod:`caffe_compat.parallel`).

Differences from Caffe: without CUDA, ``--gpu`` (or ``solver_mode: GPU``)
falls back to the CPU with a warning; ``--gpu=0,1`` then trains with as many
CPU processes, keeping the effective batch size.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from typing import Any, Iterator

import torch

from .. import mode, parallel
from ..cli import command
from ..errors import SolverError
from ..proto import caffe_pb2
from ..solver import Solver, SolverAction
from ..solver.params import load_solver_param
from ._common import parse_gpus, parse_stages, use_device

__all__ = ["SignalHandler", "processes_to_start"]

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


def processes_to_start(gpus: list[int], cpu_processes: int) -> int:
    """How many training processes ``--gpu`` / ``--cpu_processes`` ask this launcher for."""
    if len(gpus) > 1 and len(set(gpus)) != len(gpus):
        raise SolverError(f"--gpu={','.join(map(str, gpus))}: each GPU may be used once")
    if len(gpus) > 1 and torch.cuda.is_available() and max(gpus) >= torch.cuda.device_count():
        raise SolverError(f"GPU {max(gpus)} does not exist ({torch.cuda.device_count()} CUDA "
                          "device(s) present)")
    if len(gpus) > 1 and not torch.cuda.is_available():
        _log.warning("GPUs %s requested but CUDA is not available; training with %d CPU processes "
                     "instead (same effective batch size)", ",".join(map(str, gpus)), len(gpus))
    return max(cpu_processes, len(gpus), 1)


def _progress_context(enabled: bool) -> contextlib.AbstractContextManager[Any]:
    if not enabled:
        return contextlib.nullcontext()
    try:
        from tqdm.contrib.logging import logging_redirect_tqdm
    except ImportError:  # pragma: no cover - old tqdm
        return contextlib.nullcontext()
    return logging_redirect_tqdm(loggers=[_log])


@command("train", "train or finetune a model (Caffe's caffe train)", python_layers=True)
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
    parser.add_argument("--cpu_processes", type=int, default=0,
                        help="train data-parallel with N CPU processes (gloo)")

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
        world = parallel.world_from_env()
        if args.cpu_processes < 0:
            raise SolverError(f"--cpu_processes={args.cpu_processes}: expected a count >= 1")
        if args.cpu_processes:  # CPU ranks, whatever solver_mode says
            if args.gpu:
                raise SolverError("Give --gpu or --cpu_processes, not both.")
            gpus, explicit = [], False
        if world is None:
            nprocs = processes_to_start(gpus, args.cpu_processes)
            if len(gpus) > 1:
                _log.info("Using GPUs %s", ", ".join(map(str, gpus)))
            if nprocs > 1:
                cpu = not gpus or not torch.cuda.is_available()
                return parallel.spawn(["train", *parallel.flags_argv(args)], nprocs, cpu)
        else:
            parallel.become_rank(world)
            gpus = parallel.rank_devices(gpus, world, explicit)
        on_gpu = use_device(gpus, explicit)
        if world is not None:
            parallel.init_process_group(world, on_gpu)
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
        solver.progress = sys.stderr.isatty() and mode.root_solver()
        with handler.installed(), _progress_context(solver.progress):
            _log.info("Starting Optimization")
            if world is None:
                solver.solve()
            else:
                same = parallel.train(solver, handler.action)
                parallel.shutdown()
                if not same:
                    return 1
        _log.info("Optimization Done.")
        return 0

    return run
