"""Data-parallel training (caffe_compat.parallel) with Caffe 1.0's multi-GPU semantics.

Multi-process tests run real ranks on the CPU (gloo) as subprocesses with a
timeout, so a hang fails instead of blocking CI: through ``torchrun``,
``caffe-compat train --cpu_processes=2``, the launcher environment alone
(RANK/WORLD_SIZE/MASTER_*, each rank in its own directory so that anything a
non-root rank writes is seen), and the pycaffe route of Caffe 1.0's
python/train.py (examples/parallel/train.py). In-process tests use a
one-rank gloo group.

The data-sharding expectations were measured on real Caffe (pycaffe with
``set_solver_count``/``set_solver_rank``, kendryte-caffe 1.0 CPU build).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import lmdb
import numpy as np
import pytest
import torch
import torch.distributed as dist

import caffe_compat as caffe
from caffe_compat import cli, mode, parallel
from caffe_compat.commands.train import processes_to_start
from caffe_compat.errors import CaffeCompatError, SolverError, UnsupportedError
from caffe_compat.parallel import World
from caffe_compat.proto import caffe_pb2
from caffe_compat.weights import read_weights

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TIMEOUT = 240  # seconds for a whole multi-process run (a hang fails the test)

NET = """name: "pnet"
layer {{ name: "d" type: "Data" top: "data" top: "label"
        data_param {{ source: "{db}" backend: LMDB batch_size: {batch} }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param {{ num_output: 6 weight_filler {{ type: "gaussian" std: 0.5 }}
                              bias_filler {{ type: "uniform" min: -0.1 max: 0.1 }} }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }}
layer {{ name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param {{ num_output: 3 weight_filler {{ type: "gaussian" std: 0.5 }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }}
layer {{ name: "acc" type: "Accuracy" bottom: "ip2" bottom: "label" top: "acc" include {{ phase: TEST }} }}
layer {{ name: "rec" type: "Python" bottom: "data"
        python_param {{ module: "recorder" layer: "Recorder" share_in_parallel: true }}
        include {{ phase: TRAIN stage: "record" }} }}
layer {{ name: "rec_test" type: "Python" bottom: "data"
        python_param {{ module: "recorder" layer: "Recorder" param_str: "tested" }}
        include {{ phase: TEST }} }}
"""

SOLVER = """net: "net.prototxt"
{tests}base_lr: 0.1
momentum: 0.9
weight_decay: 0.01
lr_policy: "multistep"
stepvalue: 2
stepvalue: 4
gamma: 0.5
display: 1
max_iter: {max_iter}
snapshot: {snapshot}
snapshot_prefix: "{prefix}"
random_seed: 3
solver_mode: CPU
iter_size: {iter_size}
"""

RECORDER = '''
import caffe_compat as caffe
from caffe_compat import mode


class Recorder(caffe.Layer):
    """Writes the record numbers (first value of each item) a rank sees to
    <param_str or "seen">_<rank>.txt; the "seen" files start with a setup line."""

    def setup(self, bottom, top):
        self.path = "%s_%d.txt" % (self.param_str or "seen", mode.solver_rank())
        if not self.param_str:
            with open(self.path, "a") as f:
                f.write("setup %d %d\\n" % (mode.solver_rank(), mode.solver_count()))

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        with open(self.path, "a") as f:
            rows = bottom[0].data.reshape(bottom[0].data.shape[0], -1)
            f.write(" ".join(str(int(round(v))) for v in rows[:, 0]) + "\\n")

    def backward(self, top, propagate_down, bottom):
        pass
'''


# ------------------------------------------------------------------ helpers
def write_db(path: Path, n: int, repeat: int = 1, seed: int = 0) -> None:
    """n float Datums (5 values, the first is i; label i % 3), each stored ``repeat`` times in a row."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i in range(n):
            d = caffe_pb2.Datum(channels=5, height=1, width=1, label=i % 3)
            d.float_data.extend([float(i)] + rng.standard_normal(4).astype(np.float32).tolist())
            for r in range(repeat):
                txn.put(b"%08d" % (i * repeat + r), d.SerializeToString())
    env.close()


def write_job(folder: Path, db: str = "db", batch: int = 4, max_iter: int = 6, snapshot: int = 0,
              prefix: str = "snap", test_interval: int = 3, iter_size: int = 1,
              solver: str = "solver.prototxt", extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "net.prototxt").write_text(NET.format(db=db, batch=batch))
    (folder / "recorder.py").write_text(RECORDER)
    tests = f"test_iter: 2\ntest_interval: {test_interval}\n" if test_interval else ""
    (folder / solver).write_text(SOLVER.format(max_iter=max_iter, snapshot=snapshot, prefix=prefix,
                                               tests=tests, iter_size=iter_size) + extra)
    return folder / solver


def weights(path: Path) -> dict[str, list[np.ndarray]]:
    return {name: [a for a, _, _ in blobs] for name, blobs in read_weights(str(path)) if blobs}


def net_weights(net) -> dict[str, list[np.ndarray]]:
    return {name: [b.data.copy() for b in blobs] for name, blobs in net.params.items()}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        for x, y in zip(a[name], b[name]):
            np.testing.assert_array_equal(x, y, err_msg=name)


@contextlib.contextmanager
def inside(folder: Path):
    """Work in ``folder`` with one intra-op thread, as the ranks do (OMP_NUM_THREADS=1)."""
    threads, cwd = torch.get_num_threads(), os.getcwd()
    torch.set_num_threads(1)
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)


def single_process(solver_path: Path, iters: int) -> dict[str, list[np.ndarray]]:
    """The same training in this process, one solver."""
    with inside(solver_path.parent):
        solver = caffe.get_solver(solver_path.name)
        solver.step(iters)
        return net_weights(solver.net)


def subprocess_env(folder: Path, **extra: str) -> dict[str, str]:
    # a rank stuck in a collective gives up after 120 s (instead of 30 min)
    env = dict(os.environ, OMP_NUM_THREADS="1", CAFFE_COMPAT_DIST_TIMEOUT="120", **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder), env.get("PYTHONPATH")]))
    return env


def run(argv: list[str], folder: Path, timeout: float = TIMEOUT) -> tuple[int, str]:
    """Run a launcher in ``folder``, in its own process group (killed whole on a hang;
    ranks started by caffe-compat die with their launcher)."""
    p = subprocess.Popen(argv, cwd=folder, env=subprocess_env(folder), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        pytest.fail(f"{' '.join(argv)} did not finish in {timeout}s:\n{out}")
    return p.returncode, out


def launch_ranks(argv: list[str], folders: list[Path], timeout: float = TIMEOUT) -> list[tuple[int, str]]:
    """Start one process per folder as ranks of one group (torchrun's environment
    variables, no launcher); each writes its log to <folder>/rank.log."""
    port = int(parallel.new_uid().rsplit(":", 1)[1])
    procs = []
    for rank, folder in enumerate(folders):
        n = str(len(folders))
        env = subprocess_env(folder, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=n, LOCAL_WORLD_SIZE=n,
                             MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        log = open(folder / "rank.log", "w")
        procs.append((subprocess.Popen([PY, *argv], cwd=folder, env=env, stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True), log))
    deadline = time.monotonic() + timeout
    try:
        for p, _ in procs:
            p.wait(max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for p, _ in procs:
            p.kill()
        pytest.fail(f"ranks hung: {[(f / 'rank.log').read_text()[-2000:] for f in folders]}")
    finally:
        for _, log in procs:
            log.close()
    return [(p.returncode, (f / "rank.log").read_text()) for (p, _), f in zip(procs, folders)]


def info_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if re.match(r"I\d{4} ", line)]


# ------------------------------------------------------------ equal to one process
@pytest.mark.parametrize("route", [
    "torchrun",
    pytest.param("pycaffe_script", marks=pytest.mark.slow),  # the same check through examples/parallel
])
def test_two_processes_with_identical_batches_end_with_one_process_weights(route, tmp_path):
    """Caffe averages: sum over ranks × (float)(1/2). With the same batch on both
    ranks that is exactly the one-process gradient, so the weights match bit
    for bit (momentum, weight decay, multistep lr, iter_size 2 with Caffe's
    default layer_wise_reduce: a reduction after each pass)."""
    # Each record twice in a row: rank 0 reads the even, rank 1 the odd copies.
    write_db(tmp_path / "two" / "db", 12, repeat=2)
    write_db(tmp_path / "one" / "db", 12)
    write_job(tmp_path / "one", max_iter=5, iter_size=2)
    solver = write_job(tmp_path / "two", max_iter=5, snapshot=5, iter_size=2)
    if route == "torchrun":
        argv = [PY, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                "-m", "caffe_compat", "train", f"--solver={solver.name}"]
    else:
        argv = [PY, str(ROOT / "examples" / "parallel" / "train.py"), "--solver", solver.name, "--cpus", "2"]
    rc, log = run(argv, solver.parent)
    assert rc == 0, log
    expected = single_process(tmp_path / "one" / "solver.prototxt", 5)
    assert_same(weights(tmp_path / "two" / "snap_iter_5.caffemodel"), expected)
    if route == "torchrun":  # only rank 0 logs below WARNING
        assert log.count("Initializing solver from parameters") == 1
        assert "All 2 solvers hold identical weights." in log


# ------------------------------------------------------------ sharding, Python layers
def test_ranks_read_interleaved_shards_with_their_own_python_layers(tmp_path):
    """--cpu_processes=2: rank r keeps records offset % 2 == r (the sequences real
    Caffe's DataLayer gives with solver_count 2); each process sets up its own
    Python layer, which sees its rank; 2 × batch 3 trains like 1 × batch 6."""
    write_db(tmp_path / "db", 7)
    solver = write_job(tmp_path, batch=3, max_iter=4, test_interval=0)
    rc, log = run([PY, "-m", "caffe_compat", "train", f"--solver={solver.name}", "--cpu_processes=2",
                   "--stage=record"], tmp_path)
    assert rc == 0, log
    seen = {r: (tmp_path / f"seen_{r}.txt").read_text().splitlines() for r in (0, 1)}
    # measured: caffe.set_solver_count(2); set_solver_rank(r); Data layer, 7 records, batch 3.
    # Rank 0 runs Solve(), whose last display forwards once more (the fifth batch).
    assert seen[0] == ["setup 0 2", "0 2 4", "6 1 3", "5 0 2", "4 6 1", "3 5 0"]
    assert seen[1] == ["setup 1 2", "1 3 5", "0 2 4", "6 1 3", "5 0 2"]
    # the two shards of one iteration are the batch of 6 consecutive records
    write_db(tmp_path / "one" / "db", 7)
    reference = single_process(write_job(tmp_path / "one", batch=6, max_iter=4, test_interval=0), 4)
    got = weights(tmp_path / "snap_iter_4.caffemodel")
    for name in reference:
        for x, y in zip(got[name], reference[name]):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6, err_msg=name)


# ------------------------------------------------------------ resume, root-only output
def test_resume_in_two_processes_equals_the_uninterrupted_run(tmp_path):
    """Every rank restores the solverstate; rank 0's weights are broadcast. Each
    rank runs in its own directory: only rank 0 writes snapshots, and rank 1
    logs nothing below WARNING."""
    dirs = [tmp_path / "r0", tmp_path / "r1"]
    for d in dirs:
        write_db(d / "db", 8)  # 2 ranks × batch 4: every iteration reads the same records
        write_job(d, max_iter=6, snapshot=3, prefix="a")
        write_job(d, max_iter=6, snapshot=3, prefix="b", solver="resume.prototxt")
    results = launch_ranks(["-m", "caffe_compat", "train", "--solver=solver.prototxt"], dirs)
    assert [rc for rc, _ in results] == [0, 0], results
    assert "All 2 solvers hold identical weights." in results[0][1]
    assert info_lines(results[1][1]) == []
    assert sorted(p.name for p in dirs[1].glob("a_*")) == []
    assert (dirs[0] / "tested_0.txt").exists() and not list(dirs[1].glob("tested_*"))  # rank 0 tests
    assert sorted(p.name for p in dirs[0].glob("a_*")) == [
        "a_iter_3.caffemodel", "a_iter_3.solverstate", "a_iter_6.caffemodel", "a_iter_6.solverstate"]
    for suffix in (".caffemodel", ".solverstate"):  # Caffe restores on every rank
        shutil.copy(dirs[0] / f"a_iter_3{suffix}", dirs[1] / f"a_iter_3{suffix}")
    results = launch_ranks(["-m", "caffe_compat", "train", "--solver=resume.prototxt",
                            "--snapshot=a_iter_3.solverstate"], dirs)
    assert [rc for rc, _ in results] == [0, 0], results
    assert "All 2 solvers hold identical weights." in results[0][1]
    assert_same(weights(dirs[0] / "b_iter_6.caffemodel"), weights(dirs[0] / "a_iter_6.caffemodel"))
    assert (dirs[0] / "b_iter_6.solverstate").read_bytes().replace(b"b_iter", b"a_iter") == \
        (dirs[0] / "a_iter_6.solverstate").read_bytes()
    assert not list(dirs[1].glob("b_*"))


# ------------------------------------------------------------ signals
def test_sighup_and_sigint_reach_all_ranks(tmp_path):
    """The launcher passes SIGHUP/SIGINT to rank 0; the ranks agree: one
    snapshot for the SIGHUP, then all stop at the same iteration and rank 0
    writes the final snapshot (snapshot_after_train)."""
    write_db(tmp_path / "db", 8)
    solver = write_job(tmp_path, max_iter=10 ** 6, test_interval=0)
    solver.write_text(solver.read_text().replace("display: 1\n", "display: 100\n"))
    p = subprocess.Popen([PY, "-m", "caffe_compat", "train", f"--solver={solver.name}", "--cpu_processes=2"],
                         cwd=tmp_path, env=subprocess_env(tmp_path), stdin=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(p.stderr.readline, "")), daemon=True)
    reader.start()

    def wait_for(text: str) -> None:
        deadline = time.monotonic() + TIMEOUT / 2
        while not any(text in line for line in lines):
            if time.monotonic() > deadline or p.poll() is not None:
                p.kill()
                pytest.fail(f"no {text!r} in the log:\n{''.join(lines)}")
            time.sleep(0.05)

    try:
        wait_for("Iteration 100 ")
        p.send_signal(signal.SIGHUP)
        wait_for("Snapshotting solver state")
        p.send_signal(signal.SIGINT)
        rc = p.wait(TIMEOUT / 2)
    finally:
        if p.poll() is None:
            p.kill()
        reader.join(10)
    log = "".join(lines)
    assert rc == 0, log
    assert "Optimization stopped early." in log and "All 2 solvers hold identical weights." in log
    states = sorted(int(p.name.split("_")[2].split(".")[0]) for p in tmp_path.glob("snap_iter_*.solverstate"))
    assert len(states) == 2 and states[0] < states[1], states


BOOM = '''
import caffe_compat as caffe
from caffe_compat import mode


class Boom(caffe.Layer):
    def setup(self, bottom, top):
        self.calls = 0

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        self.calls += 1
        if mode.solver_rank() == 1 and self.calls == 3:
            raise RuntimeError("rank 1 fails on purpose")

    def backward(self, top, propagate_down, bottom):
        pass
'''


def test_a_failing_rank_ends_the_run_with_its_status(tmp_path):
    """Rank 1 raises in its third forward; rank 0, waiting in the all-reduce,
    is stopped by the launcher, which exits with rank 1's status."""
    write_db(tmp_path / "db", 8)
    solver = write_job(tmp_path, max_iter=10 ** 6, test_interval=0)
    (tmp_path / "boom.py").write_text(BOOM)
    net = tmp_path / "net.prototxt"
    net.write_text(net.read_text() + 'layer { name: "boom" type: "Python" bottom: "label" '
                   'python_param { module: "boom" layer: "Boom" } include { phase: TRAIN } }\n')
    rc, log = run([PY, "-m", "caffe_compat", "train", f"--solver={solver.name}", "--cpu_processes=2"],
                  tmp_path)
    assert rc == 1, log
    assert "rank 1 fails on purpose" in log and "Rank 1 exited with status 1" in log


STOP_SCRIPT = '''
import sys
import caffe_compat as caffe
from caffe_compat import mode, parallel
from caffe_compat.glog import setup_logging

setup_logging()
world = parallel.world_from_env()
parallel.become_rank(world)
parallel.init_process_group(world, False)
for case, who, when in (("test-stop", 0, 6), ("worker-stop", 1, 4)):
    solver = caffe.get_solver("solver.prototxt")
    fired = []

    def action():
        # rank 0's first poll at iteration 6 comes from its test loop
        if mode.solver_rank() == who and solver.iter == when and not fired:
            fired.append(1)
            return "stop"
        return "none"

    same = parallel.train(solver, action)
    print("RESULT", case, mode.solver_rank(), solver.iter, same, flush=True)
parallel.shutdown()
'''


def test_a_stop_on_any_rank_stops_every_rank(tmp_path):
    """A stop requested by a worker stops all ranks after the same update (one
    iteration late); a stop that interrupts rank 0's test ends rank 0 there and
    lets the others, waiting in their all-reduce, finish the iterations they
    started (rank 0 joins their all-reduces), instead of hanging them."""
    dirs = [tmp_path / "r0", tmp_path / "r1"]
    for d in dirs:
        write_db(d / "db", 8)
        write_job(d, max_iter=20, test_interval=3)
        (d / "stop.py").write_text(STOP_SCRIPT)
    results = launch_ranks(["stop.py"], dirs)
    assert [rc for rc, _ in results] == [0, 0], results
    got = sorted(re.findall(r"RESULT (\S+) (\d) (\d+) (\w+)", results[0][1] + results[1][1]))
    assert got == [("test-stop", "0", "6", "True"), ("test-stop", "1", "8", "True"),
                   ("worker-stop", "0", "6", "True"), ("worker-stop", "1", "6", "True")]
    assert "Test interrupted." in results[0][1]


# ------------------------------------------------------------ one rank, in process
@pytest.fixture
def one_rank_group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()
        logging.getLogger("caffe_compat").setLevel(logging.NOTSET)


@pytest.mark.parametrize("iter_size,layer_wise", [(1, "true"), (2, "true"), (2, "false")],
                         ids=["iter_size1", "iter_size2-per-pass", "iter_size2-once"])
def test_one_rank_sync_changes_nothing(iter_size, layer_wise, tmp_path, one_rank_group):
    write_db(tmp_path / "db", 8)
    path = write_job(tmp_path, max_iter=4, iter_size=iter_size, extra=f"layer_wise_reduce: {layer_wise}\n")
    expected = single_process(path, 4)
    with inside(tmp_path):
        solver = caffe.get_solver(path.name)
        sync = parallel.NCCL(solver)
        sync.bcast()
        solver.add_callback(sync)
        solver.step(4)
        assert sync.finish()
    assert len(solver._pass_hooks) == (1 if (iter_size, layer_wise) == (2, "true") else 0)
    base, end = sync._buf.data_ptr(), sync._buf.data_ptr() + 4 * sync._buf.numel()
    assert all(base <= b.diff_tensor.data_ptr() < end for b in solver.net.learnable_params)
    assert_same(net_weights(solver.net), expected)


@pytest.mark.parametrize("request_,iters,snapshots", [
    ("stop", 5, ["snap_iter_5"]),
    ("snapshot", 8, ["snap_iter_5", "snap_iter_8"]),
], ids=["stop", "snapshot"])
def test_requests_are_acted_on_one_iteration_late(request_, iters, snapshots, tmp_path, one_rank_group):
    """A request polled before iteration 3's all-reduce takes effect after
    iteration 4's update (iter 5), on every rank at once."""
    write_db(tmp_path / "db", 8)
    path = write_job(tmp_path, max_iter=8, test_interval=0)
    with inside(tmp_path):
        solver = caffe.get_solver(path.name)
        fired = []

        def action():
            if solver.iter == 3 and not fired:
                fired.append(1)
                return request_
            return "none"

        assert parallel.train(solver, action)
    assert solver.iter == iters
    assert sorted(p.stem for p in tmp_path.glob("snap_*.caffemodel")) == snapshots


class FakeEvent:
    """Stands in for torch.cuda.Event so the CUDA bookkeeping runs on the CPU."""

    def __init__(self) -> None:
        self.recorded = 0

    def record(self, stream: object = None) -> None:
        self.recorded += 1

    def synchronize(self) -> None:
        assert self.recorded


def test_cuda_flag_slots_alternate(tmp_path, one_rank_group, monkeypatch):
    """On CUDA the agreed flags go to two pinned host slots with events (no sync
    per iteration); the slot being written is never the one still to be read."""
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: None)
    write_db(tmp_path / "db", 8)
    path = write_job(tmp_path, max_iter=8, test_interval=0, extra="snapshot_after_train: false\n")
    with inside(tmp_path):
        solver = caffe.get_solver(path.name)
        sync = parallel.NCCL(solver)
        solver.add_callback(sync)
        calls = []

        def action():
            calls.append(solver.iter)
            return "stop" if solver.iter == 3 and calls.count(3) == 1 else "none"

        solver.set_action_function(sync.agree_on_actions(action))
        sync._slots = [(FakeEvent(), torch.zeros(3)), (FakeEvent(), torch.zeros(3))]
        solver.step(8)
    assert solver.iter == 5
    assert [e.recorded for e, _ in sync._slots] == [3, 2]


def test_sync_rebinds_diffs_after_the_net_moves(tmp_path, one_rank_group):
    write_db(tmp_path / "db", 8)
    path = write_job(tmp_path, max_iter=4, test_interval=0)
    with inside(tmp_path):
        solver = caffe.get_solver(path.name)
        sync = parallel.NCCL(solver)
        solver.add_callback(sync)
        solver.step(1)
        blob = solver.net.learnable_params[0]
        blob.diff_tensor = torch.zeros_like(blob.tensor)  # e.g. net.to(device) replaces diffs
        solver.step(1)
    assert blob.diff_tensor.data_ptr() == sync._buf.data_ptr()


def test_nccl_needs_a_group_or_a_uid(tmp_path):
    write_db(tmp_path / "db", 8)
    path = write_job(tmp_path, test_interval=0)
    with inside(tmp_path):
        solver = caffe.get_solver(path.name)
    with pytest.raises(UnsupportedError, match="NCCL.new_uid"):
        parallel.NCCL(solver)
    assert parallel.has_nccl()
    assert re.fullmatch(r"tcp://127\.0\.0\.1:\d+", parallel.NCCL.new_uid())


# ------------------------------------------------------------ launcher logic (tables)
def env(**kv: object) -> dict[str, str]:
    base = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    return {**base, **{k: str(v) for k, v in kv.items()}}


@pytest.mark.parametrize("environ,expected", [
    ({}, None),
    (env(RANK=0, WORLD_SIZE=1), None),
    (env(RANK=1, WORLD_SIZE=2), World(1, 2, 1, 2)),
    (env(RANK=3, WORLD_SIZE=4, LOCAL_RANK=1, LOCAL_WORLD_SIZE=2), World(3, 4, 1, 2)),
], ids=["alone", "world-of-one", "torchrun-2", "two-nodes"])
def test_world_from_env(environ, expected):
    assert parallel.world_from_env(environ) == expected


@pytest.mark.parametrize("environ,message", [
    (env(RANK=2, WORLD_SIZE=2), "RANK=2 WORLD_SIZE=2"),
    (env(RANK="x", WORLD_SIZE=2), "bad launcher environment"),
    ({"RANK": "0", "WORLD_SIZE": "2"}, "MASTER_ADDR is not set"),
], ids=["rank-too-big", "not-a-number", "no-master"])
def test_world_from_env_errors(environ, message):
    with pytest.raises(CaffeCompatError, match=message):
        parallel.world_from_env(environ)


@pytest.mark.parametrize("gpus,world,explicit,expected", [
    ([], World(1, 2, 1, 2), True, []),
    ([2, 3], World(1, 2, 1, 2), True, [3]),
    ([0], World(1, 2, 1, 2), False, [1]),  # solver_mode GPU only: GPU LOCAL_RANK
    ([5], World(3, 4, 0, 1), False, [5]),  # one process per node: device_id
], ids=["cpu", "gpu-list", "solver-default", "one-per-node"])
def test_rank_devices(gpus, world, explicit, expected):
    assert parallel.rank_devices(gpus, world, explicit) == expected


def test_rank_devices_too_few_gpus():
    with pytest.raises(CaffeCompatError, match="names 1 device"):
        parallel.rank_devices([0], World(1, 2, 1, 2), True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback when CUDA is missing")
def test_several_gpus_without_cuda_start_as_many_cpu_processes(caplog):
    with caplog.at_level(logging.WARNING, logger="caffe_compat"):
        assert processes_to_start([0, 1], 0) == 2
    assert "2 CPU processes" in caplog.text
    assert processes_to_start([0], 0) == 1 and processes_to_start([], 3) == 3


@pytest.mark.parametrize("argv,message", [
    (["--cpu_processes=-1"], "--cpu_processes=-1: expected a count >= 1"),
    (["--cpu_processes=2", "--gpu=0"], "Give --gpu or --cpu_processes, not both"),
    (["--gpu=1,1"], "each GPU may be used once"),
], ids=["negative", "both", "duplicate-gpu"])
def test_train_flag_errors(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_db(tmp_path / "db", 8)
    write_job(tmp_path)
    lg = logging.getLogger("caffe_compat")
    saved = (lg.handlers[:], lg.propagate, lg.level)
    try:
        assert cli.main(["train", "--solver=solver.prototxt", *argv]) == 1
    finally:
        lg.handlers[:] = saved[0]
        lg.propagate, lg.level = saved[1], saved[2]
    assert message in capsys.readouterr().err


def test_flags_argv_round_trips_through_the_train_parser():
    parser = cli.build_parser()
    args = parser.parse_args(["train", "--solver=s.prototxt", "--gpu=0,1", "--stage=a,b", "--level=2",
                              "--sigint_effect=snapshot"])
    again = parser.parse_args(["train", *parallel.flags_argv(args)])
    assert {k: v for k, v in vars(again).items() if k != "_command"} == \
        {k: v for k, v in vars(args).items() if k != "_command"}


def test_pycaffe_solver_count_and_rank():
    try:
        mode.set_solver_count(3)
        mode.set_solver_rank(2)
        mode.set_multiprocess(True)  # pycaffe's one-argument form: a flag only
        assert (mode.solver_count(), mode.solver_rank(), mode.multiprocess(), mode.root_solver()) == \
            (3, 2, True, False)
        with pytest.raises(ValueError, match="solver count must be >= 1"):
            mode.set_solver_count(0)
        with pytest.raises(ValueError, match="solver rank must be >= 0"):
            mode.set_solver_rank(-1)
    finally:
        mode.set_multiprocess(0, 1)
        mode.set_multiprocess(False)
    assert (mode.solver_count(), mode.solver_rank(), mode.root_solver()) == (1, 0, True)


def test_python_layers_build_under_several_solvers(tmp_path, monkeypatch):
    """Caffe 1.0's CLI aborts on a TRAIN Python layer with solver_count > 1
    ("PythonLayer does not support CLI Multi-GPU, use train.py"); with
    processes, as its train.py, each process has its own layer. Ours are
    processes, so the layer builds and sees its rank."""
    (tmp_path / "recorder.py").write_text(RECORDER)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    mode.set_multiprocess(1, 2)
    try:
        caffe.Net('''layer { name: "in" type: "Input" top: "label" input_param { shape { dim: 2 } } }
                     layer { name: "rec" type: "Python" bottom: "label"
                             python_param { module: "recorder" layer: "Recorder"
                                            share_in_parallel: true } }''',
                  caffe.TRAIN).forward()
    finally:
        mode.set_multiprocess(0, 1)
    assert (tmp_path / "seen_1.txt").read_text().splitlines() == ["setup 1 2", "0 0"]


def test_each_rank_seeds_random_seed_plus_rank(tmp_path):
    """Solver::Init seeds random_seed + solver_rank: rank 1 of a solver with
    random_seed 3 fills its weights as rank 0 with random_seed 4 (bcast then
    gives every rank rank 0's)."""
    write_db(tmp_path / "db", 8)
    write_job(tmp_path, test_interval=0)
    (tmp_path / "seed4.prototxt").write_text((tmp_path / "solver.prototxt").read_text()
                                             .replace("random_seed: 3", "random_seed: 4"))
    with inside(tmp_path):
        mode.set_multiprocess(1, 2)
        try:
            rank1 = net_weights(caffe.get_solver("solver.prototxt").net)
        finally:
            mode.set_multiprocess(0, 1)
        rank0_seed4 = net_weights(caffe.get_solver("seed4.prototxt").net)
        rank0 = net_weights(caffe.get_solver("solver.prototxt").net)
    assert_same(rank1, rank0_seed4)
    assert not np.array_equal(rank1["ip1"][0], rank0["ip1"][0])


def test_solver_error_messages_name_the_flag():
    with pytest.raises(SolverError, match="each GPU may be used once"):
        processes_to_start([0, 0], 0)
