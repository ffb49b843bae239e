"""``caffe-compat verify``: the blob-by-blob comparison with a reference pycaffe.

The reference is either the real pycaffe of this machine (``/work/caffe_ref``
or ``$CAFFE_COMPAT_REFERENCE_PYTHON``; skipped, saying so, when absent) or a
stand-in (``tests/data/fake_pycaffe``: caffe_compat under the name ``caffe``,
optionally skewed) that exercises the comparison, the table and the exit
statuses anywhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from caffe_compat.cli import main
from caffe_compat.commands import verify as verify_cmd

HERE = Path(__file__).resolve().parent
FAKE = HERE / "data" / "fake_pycaffe"
NET = """name: "v" force_backward: true
layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 6 dim: 6 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip"
        inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


def _real_reference() -> str | None:
    for python in (os.environ.get(verify_cmd.ENV_PYTHON), "/work/caffe_ref/venv/bin/python"):
        if python and Path(python).exists():
            probe = subprocess.run([python, "-c", "import caffe"], capture_output=True,
                                   env=dict(os.environ, GLOG_minloglevel="2"))
            if probe.returncode == 0:
                return python
    return None


@pytest.fixture
def model(tmp_path):
    import caffe_compat as caffe

    path = tmp_path / "net.prototxt"
    path.write_text(NET)
    net = caffe.Net(str(path), caffe.TEST)
    weights = tmp_path / "net.caffemodel"
    net.save(str(weights))
    return path, weights


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAKE), str(HERE.parent)]))
    monkeypatch.delenv("FAKE_PYCAFFE_SKEW", raising=False)
    monkeypatch.delenv("FAKE_PYCAFFE_FAIL", raising=False)
    return sys.executable


def test_agreeing_reference_passes_with_a_table(model, fake, capsys):
    path, weights = model
    rc = main(["verify", "--model", str(path), "--weights", str(weights), "--caffe-python", fake,
               "--backward"])
    out = capsys.readouterr().out
    assert rc == 0, out
    for name in ("data", "conv", "pool", "ip", "prob"):
        assert f"blob        {name}" in out
    assert "param diff  conv[0]" in out and "all within tolerance" in out


def test_disagreeing_blob_fails_the_run(model, fake, monkeypatch, capsys):
    path, weights = model
    monkeypatch.setenv("FAKE_PYCAFFE_SKEW", "pool")
    rc = main(["verify", "--model", str(path), "--weights", str(weights), "--caffe-python", fake])
    out = capsys.readouterr().out
    assert rc == 1
    row = next(line for line in out.splitlines() if line.startswith("blob") and " pool " in f"{line} ")
    assert "FAIL" in row and "0.5" in row
    assert "over tolerance" in out.splitlines()[-1]


def test_inputs_by_name_and_in_order(model, fake, tmp_path):
    path, weights = model
    x = np.random.RandomState(3).randn(2, 3, 6, 6).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    for spec in (f"data={tmp_path / 'x.npy'}", str(tmp_path / "x.npy")):
        report = verify_cmd.verify(str(path), str(weights), [spec], caffe_python=fake)
        assert report.ok and report.rows[0].name == "data" and report.rows[0].abs_diff == 0


def test_missing_reference_exits_2(model, monkeypatch, capsys):
    monkeypatch.delenv(verify_cmd.ENV_PYTHON, raising=False)
    path, _ = model
    assert main(["verify", "--model", str(path)]) == 2
    assert "--caffe-python" in capsys.readouterr().err


def test_failing_reference_exits_2_with_its_error(model, fake, monkeypatch, capsys):
    path, _ = model
    monkeypatch.setenv("FAKE_PYCAFFE_FAIL", "1")
    assert main(["verify", "--model", str(path), "--caffe-python", fake]) == 2
    assert "asked to fail" in capsys.readouterr().err


def test_bad_input_name_is_an_error(model, fake, tmp_path, capsys):
    path, _ = model
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 6, 6), np.float32))
    args = ["verify", "--model", str(path), "--caffe-python", fake, "--input", f"image={tmp_path / 'x.npy'}"]
    assert main(args) == 1
    assert "has no input 'image'" in capsys.readouterr().err


def test_shape_mismatch_and_missing_blob_rows():
    import json

    ref = {"meta": np.array(json.dumps({"blobs": ["a", "b"]})), "blob/a": np.zeros((2, 3)),
           "blob/b": np.ones(2)}

    class Blobs(dict):
        pass

    class FakeNet:
        blobs = Blobs(a=type("B", (), {"data": np.zeros((3, 2))})())
        params: dict = {}

    report = verify_cmd.compare(FakeNet(), ref, 1e-4, backward=False)
    assert [(r.name, r.ok) for r in report.rows] == [("a", False), ("b", False)]
    assert "shape [3, 2]" in report.rows[0].note and "missing" in report.rows[1].note


def test_real_pycaffe_agrees_on_a_fork_free_net(model):
    python = _real_reference()
    if python is None:
        pytest.skip("no real pycaffe here (set CAFFE_COMPAT_REFERENCE_PYTHON or make caffe-ref)")
    path, weights = model
    report = verify_cmd.verify(str(path), str(weights), caffe_python=python, backward=True)
    assert report.ok, report.table()
    assert {r.kind for r in report.rows} == {"blob", "diff", "param diff"}


# ------------------------------------------------------------------ label inputs
TRAIN_VAL = """name: "tv"
layer { name: "in" type: "Input" top: "data" top: "label" top: "sim"
        input_param { shape { dim: 6 dim: 3 dim: 4 dim: 4 } shape { dim: 6 } shape { dim: 6 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 7 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" accuracy_param { top_k: 2 } }
layer { name: "ip2" type: "InnerProduct" bottom: "data" top: "ip2" inner_product_param { num_output: 2 } }
layer { name: "closs" type: "ContrastiveLoss" bottom: "ip2" bottom: "ip2" bottom: "sim" top: "closs" }
"""


def test_label_inputs_follow_splits_to_their_class_count(tmp_path):
    import caffe_compat as caffe

    (tmp_path / "tv.prototxt").write_text(TRAIN_VAL)
    net = caffe.Net(str(tmp_path / "tv.prototxt"), caffe.TEST)
    assert verify_cmd.label_inputs(net) == {"label": (7, 'SoftmaxWithLoss "loss"'),
                                            "sim": (2, 'ContrastiveLoss "closs"')}


def test_train_val_net_gets_valid_labels_by_default(tmp_path, fake):
    """Through the console script: random float labels made SoftmaxWithLoss fail before."""
    (tmp_path / "tv.prototxt").write_text(TRAIN_VAL)
    cli = Path(sys.executable).parent / "caffe-compat"
    done = subprocess.run([str(cli), "verify", "--model", "tv.prototxt", "--caffe-python", fake],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'note: input "label" got random integer labels in [0, 7)' in done.stdout
    assert "--input label=FILE.npy" in done.stdout
    assert "all within tolerance" in done.stdout


PY_LOSS = '''import caffe
import numpy as np


class HalfSquare(caffe.Layer):
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(1)

    def forward(self, bottom, top):
        top[0].data[...] = np.sum(bottom[0].data ** 2) / 2

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = bottom[0].data * top[0].diff[0]
'''
PY_NET = """name: "py"
layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "Python" bottom: "ip" top: "loss"
        python_param { module: "halfsquare" layer: "HalfSquare" } }
"""


def _python_loss_model(tmp_path):
    (tmp_path / "halfsquare.py").write_text(PY_LOSS)
    (tmp_path / "py.prototxt").write_text(PY_NET)
    return tmp_path / "py.prototxt"


def test_python_loss_weight_rule_is_named_in_the_rows(tmp_path, monkeypatch):
    """What real Caffe reports for this net: loss weight 0, so every gradient is 0."""
    import json

    import caffe_compat as caffe

    monkeypatch.syspath_prepend(str(tmp_path))
    net = caffe.Net(str(_python_loss_model(tmp_path)), caffe.TEST)
    net.blobs["data"].data[...] = np.random.RandomState(0).randn(2, 3)
    net.forward()
    net.backward()
    meta = {"blobs": list(net.blobs), "loss_weights": {"data": 0, "ip": 0, "loss": 0}}
    ref = {"meta": np.array(json.dumps(meta))}
    for name, blob in net.blobs.items():
        ref["blob/" + name] = blob.data.copy()
        ref["diff/" + name] = np.zeros_like(blob.diff)
    for layer, blobs in net.params.items():
        for i, b in enumerate(blobs):
            ref[f"pdiff/{layer}/{i}"] = np.zeros_like(b.diff)
    report = verify_cmd.compare(net, ref, 1e-4, backward=True)
    assert report.ok
    documented = [r for r in report.rows if r.documented]
    assert {(r.kind, r.name) for r in documented} == {("diff", "ip"), ("diff", "loss"),
                                                      ("param diff", "ip[0]"), ("param diff", "ip[1]")}
    table = report.table()
    assert "inf" not in table
    assert 'blob "loss" of Python layer "loss" has loss weight 1 here and 0 in Caffe' in table
    assert "Python layers used as losses" in table and "4 differ by a documented difference" in table


def test_real_pycaffe_python_loss_rows_say_why(tmp_path):
    python = _real_reference()
    if python is None:
        pytest.skip("no real pycaffe here (set CAFFE_COMPAT_REFERENCE_PYTHON or make caffe-ref)")
    model = _python_loss_model(tmp_path)
    report = verify_cmd.verify(str(model), caffe_python=python, backward=True)
    assert report.ok, report.table()
    assert any(r.documented for r in report.rows) and "documented difference" in report.table()
