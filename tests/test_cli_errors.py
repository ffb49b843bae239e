"""The ``caffe-compat`` console script as a new user meets it, run in subprocesses.

Errors are one line (``caffe-compat CMD: error: ...``, no traceback, not also as a
glog ``E`` line), write failures name the file, an exception in a user's Python
layer points at the user's code; ``export --onnx`` writes one self-contained file
and no exporter noise; ``test --iterations 0`` and ``draw`` without Graphviz fail
before doing anything.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from caffe_compat.cli import error_message, user_frames
from caffe_compat.commands import export as export_cmd

CLI = Path(sys.executable).parent / "caffe-compat"
ROOT = Path(__file__).resolve().parents[1]

NET = """name: "errnet"
layer { name: "input" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 4 dim: 5 } shape { dim: 4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""
DEPLOY = """name: "deploy"
layer { name: "input" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""
SOLVER = """net: "%s"
base_lr: 0.1
lr_policy: "fixed"
display: 1
max_iter: 2
snapshot_prefix: "%s"
random_seed: 1
solver_mode: CPU
"""
PY_NET = """name: "pynet"
layer { name: "input" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "boom" type: "Python" bottom: "data" top: "out"
        python_param { module: "userlayer" layer: "Boom" } }
"""
USER_LAYER = '''import caffe


def scale(x):
    return x / 0  # the user's bug


class Boom(caffe.Layer):
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = scale(len(bottom))

    def backward(self, top, propagate_down, bottom):
        pass
'''


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
        ) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GLOG_")}
    base["PYTHONPATH"] = str(ROOT)
    base.update(env or {})
    return subprocess.run([str(CLI), *args], cwd=cwd, capture_output=True, text=True, env=base,
                          timeout=timeout)


def _one_error_line(done: subprocess.CompletedProcess, command: str) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith(f"caffe-compat {command}: error: "), done.stderr
    assert "Traceback" not in done.stderr
    assert not re.search(r"^E\d{4} ", done.stderr, re.M)  # not also as a glog E line
    return errors[0]


@pytest.fixture
def work(tmp_path):
    (tmp_path / "net.prototxt").write_text(NET)
    (tmp_path / "deploy.prototxt").write_text(DEPLOY)
    return tmp_path


def test_errors_are_one_line(work):
    line = _one_error_line(cli("train", "--solver=missing.prototxt", cwd=work), "train")
    assert "missing.prototxt" in line
    assert cli("train", "--solver=missing.prototxt", cwd=work).stderr.count("\n") == 1
    line = _one_error_line(cli("test", "--model=net.prototxt", "--weights=none.caffemodel",
                               "--iterations=0", cwd=work), "test")
    assert "--iterations=0" in line


def test_write_failure_is_one_line_naming_the_file(work):
    (work / "solver.prototxt").write_text(SOLVER % ("net.prototxt", "no/such/dir/snap"))
    done = cli("train", "--solver=solver.prototxt", cwd=work)
    line = _one_error_line(done, "train")
    assert "no/such/dir/" in line and "snap_iter_2" in line  # the target (issue 13 names it exactly)


def test_user_layer_exception_points_at_the_users_code(work):
    (work / "userlayer.py").write_text(USER_LAYER)
    (work / "py.prototxt").write_text(PY_NET)
    done = cli("time", "--model=py.prototxt", "--iterations=1", cwd=work)
    line = _one_error_line(done, "time")
    assert "ZeroDivisionError" in line and '"boom"' in line
    where = done.stderr.split(line, 1)[1]
    layer_file = str(work / "userlayer.py")
    assert f'File "{layer_file}", line 5, in scale' in where
    assert f'File "{layer_file}", line 16, in forward' in where
    assert "return x / 0" in where
    assert "caffe_compat" not in where  # only the user's frames


def test_user_frames_and_messages():
    def user_code():
        raise KeyError("k")

    try:
        try:
            user_code()
        except KeyError as exc:
            from caffe_compat.errors import LayerError
            raise LayerError("wrapped") from exc
    except LayerError as exc:  # noqa: F821 - bound above
        frames = user_frames(exc)
        assert frames[-1].name == "user_code"
        assert error_message(exc) == "wrapped"
    err = FileNotFoundError(2, "No such file or directory", "/x/y.caffemodel")
    assert error_message(err) == "/x/y.caffemodel: No such file or directory"
    assert error_message(ValueError("v")) == "ValueError: v"


@pytest.mark.skipif(bool(__import__("shutil").which("dot")), reason="Graphviz is installed here")
def test_draw_without_graphviz_fails_before_announcing(work):
    done = cli("draw", "net.prototxt", "net.png", cwd=work, env={"PATH": str(work)})
    _one_error_line(done, "draw")
    assert "Graphviz" in done.stderr and "Drawing net to" not in done.stdout
    assert not (work / "net.png").exists()
    ok = cli("draw", "net.prototxt", "net.dot", cwd=work, env={"PATH": str(work)})
    assert ok.returncode == 0 and "Drawing net to net.dot" in ok.stdout


def test_onnx_export_is_one_quiet_self_contained_file(work):
    pytest.importorskip("onnxscript", reason="torch's ONNX exporter needs onnxscript")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    import numpy as np

    done = cli("export", "--model=deploy.prototxt", "--onnx", "net.onnx", cwd=work)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in work.iterdir() if p.name.startswith("net.onnx")) == ["net.onnx"]
    for noise in ("torchvision", "FutureWarning", "Warning", "[torch.onnx]"):
        assert noise not in done.stderr + done.stdout, done.stderr
    assert re.search(r"Wrote ONNX model net\.onnx \(inputs data, outputs prob\)", done.stderr)
    # the file alone, moved elsewhere, still runs
    moved = work / "elsewhere"
    moved.mkdir()
    (work / "net.onnx").rename(moved / "net.onnx")
    session = ort.InferenceSession(str(moved / "net.onnx"))
    (prob,) = session.run(None, {"data": np.ones((1, 2, 8, 8), np.float32)})
    assert prob.shape == (1, 3) and abs(float(prob.sum()) - 1) < 1e-5

    ext = cli("export", "--model=deploy.prototxt", "--onnx", "big.onnx", "--external_data=true", cwd=work)
    assert ext.returncode == 0, ext.stderr
    files = sorted(p.name for p in work.iterdir() if p.name.startswith("big.onnx"))
    assert files == ["big.onnx", "big.onnx.data"]
    assert "keep big.onnx and big.onnx.data together" in ext.stderr


@pytest.mark.parametrize("nbytes, choice, external", [
    (23 * 2**20, None, False), (2**31 - 2**20, None, True), (2**32, None, True),
    (10, True, True), (2**32, False, False),
], ids=["23MB", "just-under-2GB", "4GB", "forced-on", "forced-off"])
def test_external_data_only_beyond_protobufs_limit(nbytes, choice, external):
    assert export_cmd.needs_external_data(nbytes, choice) is external


def test_opset_has_help_text(work):
    done = cli("export", "--help", cwd=work)
    assert done.returncode == 0
    options = done.stdout.split("options:", 1)[1]
    opset = options.split("--opset", 1)[1].split("\n  --", 1)[0]
    assert "ONNX opset" in opset
