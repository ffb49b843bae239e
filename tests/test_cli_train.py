"""``caffe-compat train | test | time | plot`` as Caffe's ``caffe`` tool behaves.

Most tests call the CLI in-process (``cli.main``); the signal tests run
``python -m caffe_compat train`` in a subprocess and send it SIGHUP/SIGINT.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from caffe_compat import cli
from caffe_compat.commands.plot import read_log
from caffe_compat.commands.train import SignalHandler
from caffe_compat.solver import SolverAction
from caffe_compat.weights import read_weights

NET = """name: "clinet"
layer { name: "input" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 4 dim: 5 } shape { dim: 4 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param { num_output: 6 weight_filler { type: "gaussian" std: 0.5 }
                              bias_filler { type: "constant" value: 0.3 } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "extra" type: "InnerProduct" bottom: "ip2" top: "extra"
        inner_product_param { num_output: 2 } include { stage: "big" min_level: 1 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "ip2" bottom: "label" top: "acc" include { phase: TEST } }
"""

SOLVER = """net: "net.prototxt"
test_iter: 2
test_interval: 4
base_lr: 0.1
lr_policy: "step"
stepsize: 3
gamma: 0.5
momentum: 0.9
display: 2
max_iter: %(max_iter)d
snapshot: %(snapshot)d
snapshot_prefix: "%(prefix)s"
random_seed: 1
solver_mode: CPU
"""


@pytest.fixture(autouse=True)
def _restore_logger():
    """cli.main installs its own handler on the "caffe_compat" logger; undo it."""
    lg = logging.getLogger("caffe_compat")
    saved = (lg.handlers[:], lg.propagate, lg.level)
    yield
    lg.handlers[:] = saved[0]
    lg.propagate, lg.level = saved[1], saved[2]


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text(NET)

    def solver(name="solver.prototxt", max_iter=8, snapshot=4, prefix="snap", extra=""):
        (tmp_path / name).write_text(SOLVER % dict(max_iter=max_iter, snapshot=snapshot, prefix=prefix)
                                     + extra)
        return name

    solver()
    return solver


def run_cli(capsys, *argv):
    rc = cli.main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.err + captured.out


def _weights(path) -> dict[str, list[np.ndarray]]:
    return {name: [b[0] for b in blobs] for name, blobs in read_weights(path) if blobs}


# ------------------------------------------------------------ train
def test_train_logs_and_snapshots(work, capsys, tmp_path):
    rc, log = run_cli(capsys, "train", "--solver=solver.prototxt")
    assert rc == 0
    for line in ["Use CPU.", "Starting Optimization", "Solving clinet", "Learning Rate Policy: step",
                 "Iteration 0, Testing net (#0)", "Snapshotting to binary proto file snap_iter_4.caffemodel",
                 "Snapshotting solver state to binary proto file snap_iter_8.solverstate",
                 "Optimization Done."]:
        assert line in log
    assert re.search(r"Iteration 2 \([\d.e+-]+ iter/s, [\d.e+-]+s/2 iters\), loss = ", log)
    assert re.search(r"    Train net output #0: loss = [\d.e+-]+ \(\* 1 = [\d.e+-]+ loss\)", log)
    assert re.search(r"Iteration 4, lr = 0\.05\b", log)
    assert re.search(r"    Test net output #0: acc = ", log)
    assert sorted(p.name for p in tmp_path.glob("snap_iter_*")) == [
        "snap_iter_4.caffemodel", "snap_iter_4.solverstate",
        "snap_iter_8.caffemodel", "snap_iter_8.solverstate"]


def test_resumed_training_equals_uninterrupted(work, capsys, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    work("a.prototxt", prefix="a/snap")
    work("b.prototxt", prefix="b/snap")
    assert run_cli(capsys, "train", "--solver=a.prototxt")[0] == 0
    rc, log = run_cli(capsys, "train", "--solver=b.prototxt", "--snapshot=a/snap_iter_4.solverstate")
    assert rc == 0 and "Resuming from a/snap_iter_4.solverstate" in log
    assert not (tmp_path / "b" / "snap_iter_4.caffemodel").exists()
    whole, resumed = _weights("a/snap_iter_8.caffemodel"), _weights("b/snap_iter_8.caffemodel")
    assert whole.keys() == resumed.keys()
    for name in whole:
        for x, y in zip(whole[name], resumed[name]):
            np.testing.assert_array_equal(x, y)


def test_finetune_from_several_weight_files(work, capsys, tmp_path):
    import caffe_compat as caffe

    net = caffe.Net("net.prototxt", caffe.TRAIN)
    for blob in net.params["ip1"] + net.params["ip2"]:
        blob.data[...] = 1.0
    net.save("w1.caffemodel")
    net.params["ip2"][0].data[...] = 2.0
    net.save("w2.caffemodel")
    work(extra="base_lr: 0\n", max_iter=2, snapshot=0)
    rc, log = run_cli(capsys, "train", "-solver", "solver.prototxt",
                      "-weights", "w1.caffemodel,w2.caffemodel")
    assert rc == 0
    assert log.count("Finetuning from") == 2
    final = _weights("snap_iter_2.caffemodel")
    assert (final["ip1"][0] == 1).all() and (final["ip2"][0] == 2).all()


@pytest.mark.parametrize("argv", [
    ["-solver", "solver.prototxt"], ["--solver", "solver.prototxt"],
    ["-solver=solver.prototxt"], ["--solver=solver.prototxt"],
], ids=["-flag value", "--flag value", "-flag=value", "--flag=value"])
def test_gflags_spellings(work, capsys, argv):
    work(max_iter=1, snapshot=0, extra="snapshot_after_train: false\n")
    assert run_cli(capsys, "train", *argv)[0] == 0


@pytest.mark.parametrize("argv, message", [
    ([], "Need a solver definition to train"),
    (["--solver=solver.prototxt", "--snapshot=x.solverstate", "--weights=w.caffemodel"],
     "Give a snapshot to resume training or weights to finetune but not both."),
    (["--solver=missing.prototxt"], "missing.prototxt: no such file"),
    (["--solver=solver.prototxt", "--snapshot=nope.solverstate"],
     "nope.solverstate: no such solver state file"),
    (["--solver=solver.prototxt", "--gpu=x"], "--gpu=x: expected device ids"),
], ids=["no-solver", "snapshot-and-weights", "missing-solver", "missing-state", "bad-gpu"])
def test_train_errors(work, capsys, argv, message):
    rc, log = run_cli(capsys, "train", *argv)
    assert rc == 1
    assert message in log


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback; this machine has CUDA")
def test_gpu_flag_without_cuda_runs_on_cpu(work, capsys):
    work(max_iter=1, snapshot=0, extra="snapshot_after_train: false\n")
    rc, log = run_cli(capsys, "train", "--solver=solver.prototxt", "--gpu=0")
    assert rc == 0
    assert "CUDA is not available; running on the CPU instead" in log


def test_level_and_stage_go_into_the_train_state(work, capsys):
    work(max_iter=1, snapshot=0)
    assert run_cli(capsys, "train", "--solver=solver.prototxt", "--level=1", "--stage=big,other")[0] == 0
    assert "extra" in _weights("snap_iter_1.caffemodel")
    work(max_iter=1, snapshot=0)
    assert run_cli(capsys, "train", "--solver=solver.prototxt", "--stage=big")[0] == 0
    assert "extra" not in _weights("snap_iter_1.caffemodel")


def test_signal_handler_effects():
    h = SignalHandler("none", "snapshot")
    h._on_signal(signal.SIGINT, None)
    assert h.action() is SolverAction.NONE
    h._on_signal(signal.SIGHUP, None)
    assert h.action() is SolverAction.SNAPSHOT
    assert h.action() is SolverAction.NONE  # each signal is reported once
    h = SignalHandler("stop", "none")
    h._on_signal(signal.SIGINT, None)
    assert h.action() is SolverAction.STOP


def _wait_for(path: Path, pattern: str, proc: subprocess.Popen, timeout: float = 120) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        if re.search(pattern, text):
            return text
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"no {pattern!r} in the log:\n{path.read_text(errors='replace')[-3000:]}")


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="needs POSIX signals")
def test_sighup_snapshots_and_sigint_stops_with_a_snapshot(work, tmp_path):
    work(max_iter=100000, snapshot=0, extra="display: 1\ntest_interval: 100000\n")
    log = tmp_path / "train.log"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "caffe_compat", "train", "--solver=solver.prototxt"],
                                stderr=err, stdout=subprocess.DEVNULL, env=env)
        try:
            _wait_for(log, r"Iteration 3 \(", proc)
            proc.send_signal(signal.SIGHUP)
            _wait_for(log, r"Snapshotting solver state", proc)
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert rc == 0, text[-3000:]
    assert "Optimization stopped early." in text
    stops = re.findall(r"Snapshotting to binary proto file snap_iter_(\d+)\.caffemodel", text)
    assert len(stops) == 2  # the SIGHUP snapshot, then snapshot_after_train at the stop
    for it in stops:
        assert (tmp_path / f"snap_iter_{it}.solverstate").exists()


# ------------------------------------------------------------ test
def test_test_command(work, capsys):
    assert run_cli(capsys, "train", "--solver=solver.prototxt")[0] == 0
    rc, log = run_cli(capsys, "test", "--model=net.prototxt", "--weights=snap_iter_8.caffemodel",
                      "--iterations=3")
    assert rc == 0
    import caffe_compat as caffe

    net = caffe.Net("net.prototxt", caffe.TEST, weights="snap_iter_8.caffemodel")
    out = net.forward()
    assert "Running for 3 iterations." in log
    assert len(re.findall(r"Batch \d, loss = ", log)) == 3
    assert len(re.findall(r"Batch \d, acc = ", log)) == 3
    loss = float(re.search(r"Loss: ([\d.e+-]+)", log).group(1))
    assert loss == pytest.approx(float(out["loss"]), rel=1e-5)
    assert re.search(r"\] loss = [\d.e+-]+ \(\* 1 = [\d.e+-]+ loss\)", log)
    assert re.search(r"\] acc = [\d.e+-]+$", log, re.M)


def test_test_command_needs_weights(work, capsys):
    rc, log = run_cli(capsys, "test", "--model=net.prototxt")
    assert rc == 1 and "Need model weights to score" in log


# ------------------------------------------------------------ time
@pytest.mark.parametrize("phase", ["TRAIN", "TEST"])
def test_time_command(work, capsys, phase):
    rc, log = run_cli(capsys, "time", "-model", "net.prototxt", "-iterations", "2", f"-phase={phase}")
    assert rc == 0
    assert "Performing Forward" in log and "Initial loss: " in log
    assert len(re.findall(r"Iteration: \d forward-backward time: [\d.e+-]+ ms\.", log)) == 2
    for layer in ["input", "ip1", "relu1", "ip2", "loss"]:
        assert re.search(rf"\] +{layer}\tforward: [\d.e+-]+ ms\.", log)
        assert re.search(rf"\] +{layer}\tbackward: [\d.e+-]+ ms\.", log)
    for line in ["Average Forward pass", "Average Backward pass", "Average Forward-Backward", "Total Time"]:
        assert re.search(rf"{line}: [\d.e+-]+ ms\.", log)
    assert ("acc\tforward" in log) == (phase == "TEST")


def test_time_rejects_a_bad_phase(work, capsys):
    rc, log = run_cli(capsys, "time", "--model=net.prototxt", "--phase=VAL")
    assert rc == 1 and 'phase must be "TRAIN" or "TEST"' in log


# ------------------------------------------------------------ plot and log parsing
@pytest.fixture
def train_log(work, capsys, tmp_path):
    work(max_iter=8, snapshot=0)
    rc, text = run_cli(capsys, "train", "--solver=solver.prototxt")
    assert rc == 0
    path = tmp_path / "train.log"
    path.write_text(text)
    return path


def test_plot_draws_a_png(train_log, capsys, tmp_path):
    rc, out = run_cli(capsys, "plot", str(train_log), "-o", str(tmp_path / "curves.png"))
    assert rc == 0
    from PIL import Image

    with Image.open(tmp_path / "curves.png") as img:
        assert img.format == "PNG" and img.size[0] > 100
    log = read_log(train_log)
    assert [i for i, _ in log.train_loss] == [0, 2, 4, 6, 8]
    assert [i for i, _ in log.learning_rate] == [0, 2, 4, 6]
    assert list(log.test_outputs) == ["acc", "loss"]
    assert [i for i, _ in log.test_outputs["acc"]] == [0, 4, 8]


def test_plot_reads_a_real_caffe_log(tmp_path):
    path = tmp_path / "caffe.log"
    path.write_text(CAFFE_LOG)
    log = read_log(path)
    assert log.train_loss == [(0, 1.43072), (2, 0.84345), (4, 0.228108)]
    assert log.learning_rate == [(0, 0.1), (2, 0.1), (4, 0.05)]
    assert log.test_outputs["acc"] == [(0, 0.0), (5, 1.0)]
    assert log.test_outputs["loss"] == [(0, 1.43072), (5, 0.0785728)]
    assert log.train_outputs["loss"][0] == (0, 1.43072)


def test_plot_without_training_lines_fails(tmp_path, capsys):
    (tmp_path / "empty.log").write_text("nothing here\n")
    rc, log = run_cli(capsys, "plot", str(tmp_path / "empty.log"))
    assert rc == 1 and "no training lines found" in log


def test_caffes_parse_log_reads_our_log(train_log):
    parse_log = pytest.importorskip("caffe_compat.commands.parse_log",
                                    reason="parse_log tool not available").parse_log
    train, test = parse_log(train_log)
    assert [r["NumIters"] for r in train] == [0.0, 2.0, 4.0, 6.0]
    assert all("loss" in r and r["LearningRate"] > 0 for r in train)
    assert [r["NumIters"] for r in test] == [0.0, 4.0, 8.0]
    assert all(set(r) >= {"acc", "loss"} for r in test)


# Lines of a log real Caffe wrote (pycaffe solve() of the solver above, glog to stderr).
CAFFE_LOG = """\
I1128 19:11:13.137303 20089 solver.cpp:289] Solving clinet
I1128 19:11:13.137305 20089 solver.cpp:290] Learning Rate Policy: step
I1128 19:11:13.137308 20089 solver.cpp:347] Iteration 0, Testing net (#0)
I1128 19:11:13.137382 20089 solver.cpp:401] Test loss: 1.43072
I1128 19:11:13.137387 20089 solver.cpp:414]     Test net output #0: acc = 0
I1128 19:11:13.137391 20089 solver.cpp:414]     Test net output #1: loss = 1.43072 (* 1 = 1.43072 loss)
I1128 19:11:13.137403 20089 solver.cpp:239] Iteration 0 (-2.95732e+28 iter/s, 0s/2 iters), loss = 1.43072
I1128 19:11:13.137408 20089 solver.cpp:258]     Train net output #0: loss = 1.43072 (* 1 = 1.43072 loss)
I1128 19:11:13.137456 20089 sgd_solver.cpp:112] Iteration 0, lr = 0.1
I1128 19:11:13.137486 20089 solver.cpp:239] Iteration 2 (2 iter/s, 0s/2 iters), loss = 0.84345
I1128 19:11:13.137495 20089 solver.cpp:258]     Train net output #0: loss = 0.608998 (* 1 = 0.608998 loss)
I1128 19:11:13.137497 20089 sgd_solver.cpp:112] Iteration 2, lr = 0.1
I1128 19:11:13.137511 20089 solver.cpp:239] Iteration 4 (2 iter/s, 0s/2 iters), loss = 0.228108
I1128 19:11:13.137514 20089 solver.cpp:258]     Train net output #0: loss = 0.157035 (* 1 = 0.157035 loss)
I1128 19:11:13.137517 20089 sgd_solver.cpp:112] Iteration 4, lr = 0.05
I1128 19:11:13.137521 20089 solver.cpp:464] Snapshotting to binary proto file snap_iter_5.caffemodel
I1128 19:11:13.138182 20089 solver.cpp:347] Iteration 5, Testing net (#0)
I1128 19:11:13.138198 20089 solver.cpp:401] Test loss: 0.0785728
I1128 19:11:13.138203 20089 solver.cpp:414]     Test net output #0: acc = 1
I1128 19:11:13.138208 20089 solver.cpp:414]     Test net output #1: loss = 0.0785728 (* 1 = 0.0785728 loss)
"""


def test_plot_panels_say_what_they_show(train_log):
    """Loss on a log scale, the test panel named after its outputs, the lr line to the end."""
    import matplotlib.pyplot as plt

    from caffe_compat.commands.plot import figure, metrics_label

    log = read_log(train_log)
    assert log.last_iteration == 8 and log.learning_rate[-1][0] == 6
    fig = figure(log)
    try:
        loss_ax, test_ax, lr_ax = fig.axes
        assert loss_ax.get_yscale() == "log" and loss_ax.get_ylabel() == "loss (log scale)"
        assert test_ax.get_ylabel() == "test acc"
        assert max(max(line.get_xdata()) for line in lr_ax.get_lines()) == 8
        assert lr_ax.get_xlim()[1] == 8
    finally:
        plt.close(fig)
    assert metrics_label(["accuracy", "top5"]) == "test accuracy and top5"
    assert metrics_label(["a", "b", "c"]) == "test outputs (3, see legend)"
