"""Solver snapshots as Caffe writes and reads them.

A snapshot at iteration N is two files (``Solver::Snapshot``):

* the weights, ``<prefix>_iter_N.caffemodel`` (binary NetParameter) or
  ``<prefix>_iter_N.caffemodel.h5`` (``/data/<layer>/<i>``);
* the solver state, ``<prefix>_iter_N.solverstate`` — a binary
  ``SolverState {iter, learned_net, history, current_step}`` — or
  ``<prefix>_iter_N.solverstate.h5`` with datasets ``iter`` and
  ``current_step`` (int32, shape (1,)), ``learned_net`` (a NUL-terminated
  fixed-length string) and the group ``history/0..K-1``.

``history`` holds one blob per learnable parameter (two for Adam and
AdaDelta: all first moments, then all second moments). ``learned_net`` is the
weights path exactly as written, which Caffe opens relative to the current
directory when restoring. Every file is written to a temporary name and
renamed into place (:mod:`caffe_compat.atomic`); the temporaries a killed
process leaves are removed when the next solver with the same prefix starts
or snapshots.

Differences from Caffe: when ``learned_net`` does not exist relative to the
current directory but does beside the solverstate, that file is used (and the
log says so) instead of failing.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import SolverError, WeightsError
from ..proto import caffe_pb2, caffe_raw_pb2
from ..atomic import write_hdf5
from ..proto.files import PathLike, atomic_write_bytes, parse_binary

__all__ = ["SolverState", "write_state", "read_state", "resolve_learned_net", "snapshot_filename",
           "clean_stale_snapshots"]

_log = logging.getLogger("caffe_compat")


@dataclass
class SolverState:
    iter: int = 0
    learned_net: str | None = None
    current_step: int = 0
    #: (values, stored shape, legacy 4-d shape?) per history blob
    history: list[tuple[np.ndarray, tuple[int, ...], bool]] = field(default_factory=list)
    source: str = ""


def snapshot_filename(prefix: str, it: int, extension: str) -> str:
    return f"{prefix}_iter_{it}{extension}"


_cleaned: set[str] = set()
_SNAPSHOT_NAME = re.compile(r"^(?P<prefix>.*)_iter_\d+\.(?:solverstate|caffemodel)(?:\.h5)?$")


def clean_stale_snapshots(prefix: str) -> list[str]:
    """Remove the temporaries that crashed writers left for ``<prefix>_iter_*``
    (once per prefix and process: at the solver's start, or its first snapshot)."""
    from ..atomic import clean_stale

    key = os.path.abspath(prefix)
    if key in _cleaned:
        return []
    _cleaned.add(key)
    directory, base = os.path.split(key)
    removed = clean_stale(directory, f"{base}_iter_")
    for path in removed:
        _log.info("Removed %s, left by an interrupted snapshot", path)
    return removed


# ------------------------------------------------------------------ writing
def write_state(path: PathLike, state_iter: int, learned_net: str, current_step: int,
                history: Sequence[torch.Tensor], hdf5: bool) -> None:
    m = _SNAPSHOT_NAME.match(os.fspath(path))
    if m is not None:
        clean_stale_snapshots(m.group("prefix"))
    if hdf5:
        _write_hdf5(path, state_iter, learned_net, current_step, history)
        return
    head = caffe_pb2.SolverState(iter=state_iter, learned_net=learned_net,
                                 current_step=current_step)
    raw = caffe_raw_pb2.RawSolverState()
    for h in history:
        arr = np.ascontiguousarray(h.detach().cpu().numpy(), dtype="<f4")
        blob = raw.history.add(data=arr.tobytes())
        blob.shape.dim.extend(arr.shape)
    # SolverState's fields in Caffe's order: iter, learned_net, history, current_step.
    # Serialized messages concatenate into one (protobuf merging), so the
    # history can be appended as pre-packed bytes.
    atomic_write_bytes(path, head.SerializeToString() + raw.SerializeToString(), "snapshot")


def _write_hdf5(path: PathLike, state_iter: int, learned_net: str, current_step: int,
                history: Sequence[torch.Tensor]) -> None:
    def fill(h5: Any) -> None:
        h5.create_dataset("iter", data=np.array([state_iter], dtype=np.int32))
        _write_c_string(h5, "learned_net", learned_net)
        h5.create_dataset("current_step", data=np.array([current_step], dtype=np.int32))
        group = h5.create_group("history")
        for i, h in enumerate(history):
            group.create_dataset(str(i), data=h.detach().cpu().numpy().astype(np.float32))

    write_hdf5(path, fill, "snapshot")


def _write_c_string(f: "object", name: str, value: str) -> None:
    """A scalar string dataset the way H5LTmake_dataset_string makes it.

    Caffe reads it into a buffer of the stored size and takes it as a C
    string, so the stored size must include the terminating NUL.
    """
    import h5py

    data = value.encode("utf-8")
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(len(data) + 1)
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    space = h5py.h5s.create(h5py.h5s.SCALAR)
    dset = h5py.h5d.create(f.id, name.encode(), tid, space)  # type: ignore[attr-defined]
    buf = np.array(data + b"\0", dtype=f"S{len(data) + 1}")
    dset.write(h5py.h5s.ALL, h5py.h5s.ALL, buf)


# ------------------------------------------------------------------ reading
def read_state(path: PathLike) -> SolverState:
    """Read a ``.solverstate`` (binary) or ``.solverstate.h5`` file.

    As in Caffe, a name ending in ``.h5`` means HDF5.
    """
    p = Path(path)
    if not p.exists():
        raise SolverError(f"{p}: no such solver state file")
    if str(p).endswith(".h5"):
        return _read_hdf5(p)
    data = p.read_bytes()
    if not data:
        raise SolverError(f"{p}: solver state file is empty")
    try:
        raw = parse_binary(data, caffe_raw_pb2.RawSolverState(), str(p))
    except WeightsError as exc:
        raise SolverError(str(exc)) from None
    state = SolverState(iter=raw.iter, current_step=raw.current_step, source=str(p),
                        learned_net=raw.learned_net if raw.HasField("learned_net") else None)
    unpacked = False
    for blob in raw.history:
        legacy = any(blob.HasField(f) for f in ("num", "channels", "height", "width"))
        shape = (blob.num, blob.channels, blob.height, blob.width) if legacy else tuple(blob.shape.dim)
        count = int(np.prod(shape)) if shape else 1
        if blob.double_data:
            values = np.frombuffer(blob.double_data, dtype="<f8").astype(np.float32)
        else:
            values = np.frombuffer(blob.data, dtype="<f4")
        if values.size != count:
            unpacked = True
            break
        state.history.append((values.reshape(shape), shape, legacy))
    if unpacked:  # values stored one field each (not packed): parse the slow way
        full = parse_binary(data, caffe_pb2.SolverState(), str(p))
        state.history = []
        for i, blob in enumerate(full.history):
            legacy = any(blob.HasField(f) for f in ("num", "channels", "height", "width"))
            shape = (blob.num, blob.channels, blob.height, blob.width) if legacy else tuple(blob.shape.dim)
            values = np.asarray(blob.double_data if len(blob.double_data) else blob.data, dtype=np.float32)
            if values.size != (int(np.prod(shape)) if shape else 1):
                raise SolverError(f"{p}: history blob {i} holds {values.size} values but its shape "
                                  f"{list(shape)} needs {int(np.prod(shape))}")
            state.history.append((values.reshape(shape), shape, legacy))
    return state


def _read_hdf5(p: Path) -> SolverState:
    import h5py

    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise SolverError(f"{p}: cannot open as HDF5: {exc}") from None
    with f:
        for key in ("iter", "current_step", "history"):
            if key not in f:
                raise SolverError(f'{p}: not a Caffe solver state: no "{key}" in the HDF5 file '
                                  f"(found {sorted(f.keys())})")
        state = SolverState(iter=int(np.asarray(f["iter"]).reshape(-1)[0]),
                            current_step=int(np.asarray(f["current_step"]).reshape(-1)[0]),
                            source=str(p))
        if "learned_net" in f:
            raw = f["learned_net"][()]
            state.learned_net = (raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)).rstrip("\0")
        group = f["history"]
        for i in range(len(group)):
            if str(i) not in group:
                raise SolverError(f"{p}: history/{i} missing (history has {sorted(group.keys())})")
            arr = np.asarray(group[str(i)], dtype=np.float32)
            state.history.append((arr, tuple(arr.shape), False))
    return state


def resolve_learned_net(state: SolverState) -> str:
    """The weights file a state names: as Caffe opens it (relative to the
    current directory), else beside the state file."""
    name = state.learned_net or ""
    if os.path.exists(name):
        return name
    beside = Path(state.source).parent / Path(name).name
    if state.source and beside.exists():
        _log.info("learned_net %s not found from the current directory; using %s "
                  "(beside the solver state)", name, beside)
        return str(beside)
    raise SolverError(
        f'{state.source}: learned_net "{name}" does not exist (Caffe opens it relative to the '
        f"current directory {os.getcwd()}; it is not beside the solver state either)"
    )
