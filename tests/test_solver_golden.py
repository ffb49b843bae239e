"""Solver trajectories recorded with a real Caffe, replayed on caffe_compat.

Fixtures: ``tests/golden/data/solver/*.npz`` (cases in
``tests/golden/cases/solver.py``). Parameters must agree after every step
within the case tolerance (1e-4 relative to max(1, max|golden|)).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import caffe_compat as caffe
from caffe_compat.layers import registry
from caffe_compat.solver import snapshot as snap
from golden.cases import solver as sc
from golden_harness import assert_close

ROOT = Path(__file__).resolve().parent / "golden" / "data" / "solver"
FIXTURES = sorted(ROOT.glob("*.npz"))
CASES = {c["name"]: c for c in sc.CASES}


def _load(path: Path) -> tuple[dict, dict]:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(str(arrays.pop("meta"))), arrays


def _ids(paths):
    return [p.stem for p in paths]


def _with(flag: str) -> list[Path]:
    return [p for p in FIXTURES if _load(p)[0].get(flag)]


def _skip_unavailable(meta: dict) -> None:
    known = set(registry.layer_type_list())
    missing = sorted(set(re.findall(r'type:\s*"([A-Za-z0-9_]+)"', meta["net"])) - known)
    if missing:
        pytest.skip(f"layer type(s) {', '.join(missing)} not implemented in caffe_compat yet")


def _h5(path: str, arrays: dict) -> None:
    with h5py.File(path, "w") as f:
        for name, value in arrays.items():
            f.create_dataset(name, data=value)


def _make_solver(meta: dict, directory: Path):
    case = dict(CASES[meta["name"]])
    sc.write_files(case, str(directory), _h5)
    if meta["cls"]:
        return getattr(caffe, meta["cls"])("solver.prototxt")
    return caffe.get_solver("solver.prototxt")


def _set_init(solver, arrays: dict) -> None:
    for key, value in arrays.items():
        if key.startswith("init/"):
            _, layer, i = key.split("/")
            solver.net.params[layer][int(i)].data[...] = value


def _feed(solver, arrays: dict, row: int) -> None:
    for key, value in arrays.items():
        if key.startswith("input/"):
            solver.net.blobs[key[6:]].data[...] = value[row]


def _replay(solver, meta: dict, arrays: dict, first: int) -> None:
    tol = float(meta["tol"])
    rows = {int(s): r for r, s in enumerate(arrays["steps"])}
    for step in range(first, meta["steps"]):
        row = rows[step]
        _feed(solver, arrays, row)
        solver.step(1)
        assert solver.iter == step + 1
        where = f"{meta['name']} step {step}"
        assert_close(solver.net.blobs["loss"].data, arrays["loss"][row], tol, f"{where}: loss")
        for key, value in arrays.items():
            if key.startswith("w/"):
                layer, i = key[2:].split("/")
                assert_close(solver.net.params[layer][int(i)].data, value[row], tol,
                             f"{where}: {layer}[{i}] after the update")
        if meta.get("test"):
            net = solver.test_nets[0]
            for name, value in sc.test_net_inputs(CASES[meta["name"]], step).items():
                net.blobs[name].data[...] = value
            out = net.forward()
            for key, value in arrays.items():
                if key.startswith("test/"):
                    assert_close(out[key[5:]], value[row], tol, f"{where}: test net output {key[5:]}")


@pytest.mark.parametrize("path", FIXTURES, ids=_ids(FIXTURES))
def test_trajectory_matches_caffe(path, tmp_path, monkeypatch):
    meta, arrays = _load(path)
    _skip_unavailable(meta)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # Python layer modules of a case
    solver = _make_solver(meta, tmp_path)
    first = 0
    if meta["resume_ours"]:
        for f in sc.ours_files(CASES[meta["name"]]):
            (tmp_path / Path(f).name).write_bytes(Path(f).read_bytes())
        state = next(p.name for p in tmp_path.iterdir() if ".solverstate" in p.name)
        solver.restore(state)
        first = meta["resume_ours"]
        assert solver.iter == first
    else:
        _set_init(solver, arrays)
    _replay(solver, meta, arrays, first)


def _write_caffe_files(arrays: dict, directory: Path) -> str:
    state = None
    for key, value in arrays.items():
        if key.startswith("file/"):
            name = key[5:]
            (directory / name).write_bytes(value.tobytes())
            if ".solverstate" in name:
                state = name
    assert state is not None
    return state


SNAPSHOTS = _with("snapshot_at")


@pytest.mark.parametrize("path", SNAPSHOTS, ids=_ids(SNAPSHOTS))
def test_resume_from_caffe_solverstate(path, tmp_path, monkeypatch):
    """Restore a solverstate real Caffe wrote mid-run; the rest of the run matches."""
    meta, arrays = _load(path)
    _skip_unavailable(meta)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # Python layer modules of a case
    state = _write_caffe_files(arrays, tmp_path)
    solver = _make_solver(meta, tmp_path)
    solver.restore(state)
    assert solver.iter == meta["snapshot_at"]
    _replay(solver, meta, arrays, meta["snapshot_at"])


@pytest.mark.parametrize("path", SNAPSHOTS, ids=_ids(SNAPSHOTS))
def test_our_solverstate_matches_caffes(path, tmp_path, monkeypatch):
    """After the same k steps our snapshot holds what Caffe's holds."""
    meta, arrays = _load(path)
    _skip_unavailable(meta)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # Python layer modules of a case
    caffe_dir = tmp_path / "caffe"
    caffe_dir.mkdir()
    theirs = snap.read_state(caffe_dir / _write_caffe_files(arrays, caffe_dir))
    solver = _make_solver(meta, tmp_path)
    _set_init(solver, arrays)
    for step in range(meta["snapshot_at"]):
        _feed(solver, arrays, step)
        solver.step(1)
    model = solver.snapshot()
    ours = snap.read_state(model.replace(".caffemodel", ".solverstate"))
    assert (ours.iter, ours.current_step) == (theirs.iter, theirs.current_step)
    assert ours.learned_net == theirs.learned_net == model
    assert len(ours.history) == len(theirs.history)
    for i, ((a, sa, _), (b, sb, _)) in enumerate(zip(ours.history, theirs.history)):
        assert sa == sb, f"history {i}: shape {sa} vs Caffe's {sb}"
        assert_close(a, b, float(meta["tol"]), f"{meta['name']}: history {i}")


RESUME_OURS = _with("resume_ours")


@pytest.mark.parametrize("path", RESUME_OURS, ids=_ids(RESUME_OURS))
def test_committed_snapshot_is_what_we_write(path, tmp_path):
    """The committed files real Caffe resumed from are still what the code writes."""
    meta, _ = _load(path)
    sys.path.insert(0, str(Path(__file__).parent / "golden"))
    try:
        from write_ours_snapshots import write_snapshot
    finally:
        sys.path.pop(0)
    written = {Path(p).name: p for p in write_snapshot(CASES[meta["name"]], str(tmp_path))}
    committed = {Path(p).name: p for p in sc.ours_files(CASES[meta["name"]])}
    assert sorted(written) == sorted(committed)
    state = next(n for n in written if ".solverstate" in n)
    a, b = snap.read_state(written[state]), snap.read_state(committed[state])
    assert (a.iter, a.current_step, a.learned_net) == (b.iter, b.current_step, b.learned_net)
    for (x, _, _), (y, _, _) in zip(a.history, b.history):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
