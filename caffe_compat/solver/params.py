"""Reading a solver definition as Caffe does, and the checks Caffe makes on it.

``load_solver_param`` follows ``ReadSolverParamsFromTextFileOrDie``: parse the
text file, upgrade the deprecated ``solver_type`` enum to ``type``, and fix up
``snapshot_prefix`` (unset → the solver file's path without extension; a
directory → ``<dir>/<solver file stem>``).

``check_solver_param`` raises :class:`SolverError` (naming the file and field)
where Caffe's ``Solver::Init``, ``InitTrainNet``, ``InitTestNets``,
``CheckSnapshotWritePermissions`` and the solver constructors abort, plus a
few settings that can only produce NaN or garbage in Caffe (``iter_size`` < 1,
an unknown ``regularization_type`` with non-zero ``weight_decay``, an unknown
``lr_policy``, reported at construction instead of at the first update).
Settings Caffe takes silently but that are almost surely mistakes (a
negative ``base_lr``, ``stepvalue``s that do not increase) are a
``SuspiciousInputWarning``; strict mode makes them errors.

Differences from Caffe: relative net paths are resolved against the current
directory as in Caffe; when a file is not found there but exists beside the
solver file, that one is used and the log says so.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import (ExtensionWarning, ProtoError, SolverError, SuspiciousInputWarning, WriteError,
                      warn_or_raise)
from ..mode import root_solver
from ..proto import caffe_pb2
from ..proto.extensions import find_extensions
from ..proto.files import parse_text, read_text
from ..proto.upgrade import upgrade_solver
from .lr_policy import check_lr_policy

__all__ = ["SolverSpec", "load_solver_param", "check_solver_param", "resolve_net_path",
           "SOLVER_TYPES", "TRAIN_NET_FIELDS"]

_log = logging.getLogger("caffe_compat")

SOLVER_TYPES = ("SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam")
TRAIN_NET_FIELDS = ("net", "net_param", "train_net", "train_net_param")


@dataclass
class SolverSpec:
    param: caffe_pb2.SolverParameter
    source: str  # for messages: the file, or a description
    base_dir: Path | None  # the solver file's directory, for the relative-path fallback


def load_solver_param(solver: Any, source: str | None = None) -> SolverSpec:
    """A :class:`SolverSpec` from a path, a SolverParameter, or prototxt text."""
    if isinstance(solver, SolverSpec):
        return solver
    if isinstance(solver, caffe_pb2.SolverParameter):
        param = caffe_pb2.SolverParameter()
        param.CopyFrom(solver)
        src = source or "<SolverParameter>"
        upgrade_solver(param, src)
        base = Path(source).resolve().parent if source and os.path.exists(source) else None
        return SolverSpec(param, src, base)
    if isinstance(solver, (str, os.PathLike)):
        if isinstance(solver, str) and ("\n" in solver or ":" in solver) and not os.path.exists(solver):
            param = parse_text(solver, caffe_pb2.SolverParameter(), "<solver prototxt string>")
            upgrade_solver(param, "<solver prototxt string>")
            return SolverSpec(param, "<solver prototxt string>", None)
        path = str(solver)
        try:
            param = read_text(path, caffe_pb2.SolverParameter())
        except ProtoError as exc:
            raise SolverError(f"cannot read the solver file: {exc}") from exc
        upgrade_solver(param, path)
        _upgrade_snapshot_prefix(param, path)
        return SolverSpec(param, path, Path(path).resolve().parent)
    raise TypeError(f"Solver: expected a solver prototxt path or a SolverParameter, "
                    f"got {type(solver).__name__}")


def _upgrade_snapshot_prefix(param: caffe_pb2.SolverParameter, path: str) -> None:
    # Caffe's UpgradeSnapshotPrefixProperty.
    if not param.HasField("snapshot_prefix"):
        param.snapshot_prefix = os.path.splitext(path)[0]
        _log.info("snapshot_prefix was not specified and is set to %s", param.snapshot_prefix)
    elif os.path.isdir(param.snapshot_prefix):
        param.snapshot_prefix = os.path.join(param.snapshot_prefix,
                                             os.path.splitext(os.path.basename(path))[0])
        _log.info("snapshot_prefix was a directory and is replaced to %s", param.snapshot_prefix)


def check_solver_param(spec: SolverSpec) -> None:
    """The checks of Caffe's Solver::Init / InitTrainNet / InitTestNets."""
    p, where = spec.param, spec.source
    if p.average_loss < 1:
        raise SolverError(f"{where}: average_loss must be >= 1, got {p.average_loss}")
    if p.iter_size < 1:
        raise SolverError(f"{where}: iter_size must be >= 1, got {p.iter_size}")
    if p.type not in SOLVER_TYPES:
        raise SolverError(f'{where}: unknown solver type "{p.type}"; known types: '
                          f"{', '.join(sorted(SOLVER_TYPES))}")
    given = [f for f in TRAIN_NET_FIELDS if p.HasField(f)]
    if not given:
        raise SolverError(f"{where}: no train net: the solver must specify one of "
                          f"{', '.join(TRAIN_NET_FIELDS)}")
    if len(given) > 1:
        raise SolverError(f"{where}: more than one train net given ({', '.join(given)}); "
                          f"use exactly one of {', '.join(TRAIN_NET_FIELDS)}")
    check_lr_policy(p, where)
    _check_suspicious(p, where)
    if p.weight_decay and p.regularization_type not in ("L2", "L1"):
        raise SolverError(f'{where}: unknown regularization_type "{p.regularization_type}"; '
                          "expected L2 or L1")
    n_specific = len(p.test_net) + len(p.test_net_param)
    generic = p.HasField("net") or p.HasField("net_param")
    if generic and len(p.test_iter) < n_specific or not generic and len(p.test_iter) != n_specific:
        raise SolverError(
            f"{where}: test_iter must be given once per test net: {len(p.test_iter)} test_iter "
            f"value(s) for {n_specific} test_net/test_net_param entr"
            f"{'y' if n_specific == 1 else 'ies'}"
            + (" (with net/net_param, extra test_iter values add test nets built from it)"
               if generic else "")
        )
    n_test = max(len(p.test_iter), n_specific)
    if len(p.test_state) and len(p.test_state) != n_test:
        raise SolverError(f"{where}: test_state must be unspecified or given once per test net: "
                          f"{len(p.test_state)} test_state for {n_test} test net(s)")
    if n_test and p.test_interval <= 0:
        raise SolverError(f"{where}: test_interval must be > 0 when there are test nets "
                          f"({n_test}), got {p.test_interval}")
    if p.snapshot:
        _check_snapshot_prefix(p, where)


def _check_suspicious(p: caffe_pb2.SolverParameter, where: str) -> None:
    """Settings Caffe takes silently that are almost surely mistakes: warn (strict: SolverError)."""
    if p.base_lr < 0:
        warn_or_raise(f"{where}: base_lr is negative ({p.base_lr:g}): every update climbs the loss "
                      "instead of descending it (Caffe does not check)", SuspiciousInputWarning, SolverError,
                      stacklevel=5)
    steps = list(p.stepvalue)
    if p.lr_policy == "multistep" and steps != sorted(set(steps)):
        bad = next(i for i in range(1, len(steps)) if steps[i] <= steps[i - 1])
        warn_or_raise(
            f"{where}: stepvalue must increase: stepvalue[{bad}] = {steps[bad]} comes after "
            f"{steps[bad - 1]} ({steps}); Caffe moves to the next step only once the iteration reaches "
            "it, so the steps after it are taken late or never", SuspiciousInputWarning, SolverError,
            stacklevel=5)
    extensions = find_extensions(p, skip=frozenset(TRAIN_NET_FIELDS) | {"test_net_param"})
    if extensions:
        warn_or_raise(f"{where}: uses what upstream BVLC Caffe does not have, so this file will not load "
                      f"in real Caffe: {'; '.join(extensions)}", ExtensionWarning, SolverError, stacklevel=5)


def _check_snapshot_prefix(p: caffe_pb2.SolverParameter, where: str) -> None:
    """Caffe's ``CheckSnapshotWritePermissions``: create and delete a probe file
    (``os.access`` would say yes to root everywhere, ``/proc`` included). Only
    the root solver writes snapshots, so only it probes, as in Caffe."""
    if not p.HasField("snapshot_prefix"):
        raise SolverError(f"{where}: snapshot: {p.snapshot} is given but snapshot_prefix is not")
    if not root_solver():
        return
    from ..atomic import probe_directory
    from .snapshot import clean_stale_snapshots, snapshot_filename

    directory = os.path.dirname(p.snapshot_prefix) or "."
    try:
        probe_directory(snapshot_filename(p.snapshot_prefix, 0, ".tempfile"))
    except WriteError as exc:
        raise SolverError(
            f"{where}: cannot write to snapshot prefix '{p.snapshot_prefix}' ({exc}); make sure that "
            f"the directory {os.path.abspath(directory)} exists and is writeable"
        ) from None
    clean_stale_snapshots(p.snapshot_prefix)


def resolve_net_path(path: str, field: str, spec: SolverSpec) -> str:
    """``path`` as Caffe opens it (relative to the current directory), else
    relative to the solver file."""
    if os.path.exists(path):
        return path
    if spec.base_dir is not None and not os.path.isabs(path):
        candidate = spec.base_dir / path
        if candidate.exists():
            _log.info('%s: %s "%s" is not found from the current directory %s; using %s '
                      "(relative to the solver file)", spec.source, field, path, os.getcwd(), candidate)
            return str(candidate)
    raise SolverError(
        f'{spec.source}: {field}: no such file "{path}" (Caffe opens it relative to the '
        f"current directory {os.getcwd()}"
        + (f"; not found relative to the solver file's directory {spec.base_dir} either"
           if spec.base_dir is not None else "")
        + ")"
    )
