"""caffe.accelerate(net, onnxruntime=True): the TEST forward as one ONNX Runtime session,
the exported model kept on disk; outputs equal to the interpreter's within float rounding."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import torch

import caffe_compat as caffe
from caffe_compat.errors import BlobReleasedError, UnsupportedError
from caffe_compat.plans.accelerated import Acceleration
from caffe_compat.plans.ort import OnnxRuntimePlan

pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
pytest.importorskip("onnxscript", reason="torch's ONNX exporter needs onnxscript")

# A residual block with BatchNorm+Scale, LRN, a concat and a classifier: what the exporter
# and ONNX Runtime's fusions (Conv+BN, Conv+Add+ReLU) meet in the zoo nets.
NET = """
name: "res"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 12 dim: 12 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 bias_term: false
                            weight_filler { type: "xavier" } } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1"
        batch_norm_param { use_global_stats: true } }
layer { name: "sc1" type: "Scale" bottom: "conv1" top: "conv1"
        scale_param { bias_term: true filler { type: "uniform" min: 0.5 max: 1.5 }
                      bias_filler { type: "uniform" min: -0.1 max: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1
                            weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "sum" type: "Eltwise" bottom: "conv1" bottom: "conv2" top: "sum" }
layer { name: "relu2" type: "ReLU" bottom: "sum" top: "sum" }
layer { name: "norm" type: "LRN" bottom: "sum" top: "norm" lrn_param { local_size: 3 alpha: 0.1 beta: 0.75 } }
layer { name: "pool" type: "Pooling" bottom: "norm" top: "pool"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "pool_ave" type: "Pooling" bottom: "sum" top: "pool_ave"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "cat" type: "Concat" bottom: "pool" bottom: "pool_ave" top: "cat" }
layer { name: "ip" type: "InnerProduct" bottom: "cat" top: "ip"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.05 } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


@pytest.fixture
def model(tmp_path):
    """The prototxt and a .caffemodel with random weights and BatchNorm statistics."""
    proto = tmp_path / "net.prototxt"
    proto.write_text(NET)
    caffe.set_random_seed(5)
    net = caffe.Net(str(proto), caffe.TEST)
    rng = np.random.RandomState(1)
    bn = net.params["bn1"]
    bn[0].data[...] = rng.randn(8) * 0.1
    bn[1].data[...] = rng.rand(8) + 0.5
    bn[2].data[...] = 1.0
    weights = tmp_path / "net.caffemodel"
    net.save(str(weights))
    return str(proto), str(weights)


def make(model, **kw):
    net = caffe.Net(model[0], caffe.TEST, weights=model[1])
    if kw:
        caffe.accelerate(net, **kw)
    return net


def image(n=1, seed=0):
    return np.random.RandomState(seed).randn(n, 3, 12, 12).astype(np.float32)


def close(a, b, tol=1e-5):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= tol * max(np.abs(b).max(), 1e-30), np.abs(a - b).max()


def test_outputs_match_the_interpreter_and_intermediates_say_why(model, tmp_path):
    ref, net = make(model), make(model, onnxruntime=True, cache_dir=tmp_path / "cache")
    assert isinstance(net._plan, OnnxRuntimePlan)
    held = None
    for seed in (0, 1):
        x = image(seed=seed)
        want = ref.forward(data=x)["prob"]
        got = net.forward(data=x)["prob"]
        close(got, want)
        if held is not None:  # an array a script kept sees the new values, as Caffe's buffer
            close(held, want)
        held = net.blobs["prob"].data
    close(net.blobs["prob"].data, ref.blobs["prob"].data)
    np.testing.assert_array_equal(net.blobs["data"].data, x)  # the input stays
    with pytest.raises(BlobReleasedError, match="ONNX Runtime.*forward\\(blobs="):
        net.blobs["conv2"].data
    # what forward(blobs=...) asks for is computed (a second session with that output)
    out = net.forward(blobs=["conv1", "cat"], data=x)
    close(out["conv1"], ref.blobs["conv1"].data)  # after its in-place BatchNorm/Scale/ReLU, as Caffe's
    close(out["cat"], ref.blobs["cat"].data)
    close(out["prob"], ref.blobs["prob"].data)
    xs = image(3, seed=5)  # pycaffe's forward_all, batch by batch, with a blob asked for
    got_all, want_all = net.forward_all(blobs=["cat"], data=xs), ref.forward_all(blobs=["cat"], data=xs)
    for k in ("cat", "prob"):
        close(got_all[k], want_all[k])


def test_model_is_kept_on_disk_and_reused(model, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    x = image()
    first = make(model, onnxruntime=True, cache_dir=cache).forward(data=x)["prob"].copy()
    files = glob.glob(str(cache / "onnx" / "*.onnx"))
    assert len(files) == 1 and not glob.glob(str(cache / "onnx" / ".*"))  # no temporary left

    def no_export(*a, **k):
        raise AssertionError("exported again")

    monkeypatch.setattr(OnnxRuntimePlan, "_export", staticmethod(no_export))
    again = make(model, onnxruntime=True, cache_dir=cache)
    np.testing.assert_array_equal(again.forward(data=x)["prob"], first)
    monkeypatch.undo()
    # other weights: another model
    other = make(model, onnxruntime=True, cache_dir=cache)
    other.params["ip"][0].data[...] *= 2
    other.forward(data=x)
    assert len(glob.glob(str(cache / "onnx" / "*.onnx"))) == 2


def test_cache_off(model, tmp_path, monkeypatch):
    monkeypatch.setenv("CAFFE_COMPAT_CACHE", "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    net = make(model, onnxruntime=True)
    close(net.forward(data=image())["prob"], make(model).forward(data=image())["prob"])
    assert not os.path.exists(tmp_path / "xdg")


def test_weight_writes_are_seen(model, tmp_path):
    ref, net = make(model), make(model, onnxruntime=True, cache_dir=tmp_path / "c")
    x = image()
    net.forward(data=x)
    for n in (ref, net):  # through a numpy array that is gone at once
        n.params["conv2"][0].data[...] *= -1.5
    close(net.forward(data=x)["prob"], ref.forward(data=x)["prob"])
    held, held_ref = net.params["ip"][1].data, ref.params["ip"][1].data  # an array a script keeps
    held[...] = 3.0
    held_ref[...] = 3.0
    close(net.forward(data=x)["prob"], ref.forward(data=x)["prob"])
    held[0] = -2.0
    held_ref[0] = -2.0
    close(net.forward(data=x)["prob"], ref.forward(data=x)["prob"])
    with torch.no_grad():  # through torch
        net.params["ip"][0].tensor.mul_(0.5)
        ref.params["ip"][0].tensor.mul_(0.5)
    close(net.forward(data=x)["prob"], ref.forward(data=x)["prob"])


def test_reshaped_input_and_turning_it_off(model, tmp_path):
    ref, net = make(model), make(model, onnxruntime=True, cache_dir=tmp_path / "c")
    for n in (ref, net):
        n.blobs["data"].reshape(3, 3, 12, 12)
        n.reshape()
    x = image(3, seed=4)
    got = net.forward(data=x)["prob"]
    assert got.shape == (3, 5)
    close(got, ref.forward(data=x)["prob"])
    caffe.accelerate(net)  # off: every blob is the interpreter's again
    net.forward(data=x)
    close(net.blobs["conv2"].data, ref.blobs["conv2"].data)


def test_partial_forwards_run_the_interpreter(model, tmp_path):
    ref, net = make(model), make(model, onnxruntime=True, cache_dir=tmp_path / "c")
    x = image()
    out = net.forward(end="pool", data=x)
    close(out["pool"], ref.forward(end="pool", data=x)["pool"])
    close(net.blobs["conv2"].data, ref.blobs["conv2"].data)  # the interpreter fills every blob


PY_LAYER = """
import caffe_compat as caffe


class Twice(caffe.Layer):
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = 2 * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        pass
"""


def test_a_net_the_exporter_cannot_take_says_so(tmp_path, monkeypatch):
    (tmp_path / "twice_layer.py").write_text(PY_LAYER)
    monkeypatch.syspath_prepend(str(tmp_path))
    proto = tmp_path / "py.prototxt"
    proto.write_text("""
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 } } }
layer { name: "twice" type: "Python" bottom: "data" top: "out"
        python_param { module: "twice_layer" layer: "Twice" } }
""")
    net = caffe.Net(str(proto), caffe.TEST)
    with pytest.raises(UnsupportedError, match='Python layer "twice" cannot be exported'):
        caffe.accelerate(net, onnxruntime=True, cache_dir=tmp_path / "c")
    assert not isinstance(net._plan, OnnxRuntimePlan)
    # what the exporter refuses is said at the first forward, with its reason
    plan = OnnxRuntimePlan(Acceleration(onnxruntime=True, cache_dir=str(tmp_path)))
    net._plan = plan
    with pytest.raises(UnsupportedError, match="could not be exported to ONNX .*numpy"):
        net.forward(data=np.ones((1, 2), np.float32))


def test_bad_combinations_and_solvers(model, tmp_path):
    net = make(model)
    with pytest.raises(ValueError, match="does not combine with autocast"):
        caffe.accelerate(net, onnxruntime=True, autocast="bf16")
    train = tmp_path / "train.prototxt"
    train.write_text(NET.replace('name: "prob" type: "Softmax" bottom: "ip" top: "prob"',
                                 'name: "prob" type: "Softmax" bottom: "ip" top: "prob" '
                                 'include { phase: TEST }')
                     .replace('top: "data" input_param { shape { dim: 1 dim: 3 dim: 12 dim: 12 } }',
                              'top: "data" top: "label" '
                              'input_param { shape { dim: 2 dim: 3 dim: 12 dim: 12 } shape { dim: 2 } }')
                     + 'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" '
                       'top: "loss" }\n')
    solver_file = tmp_path / "solver.prototxt"
    solver_file.write_text(f'net: "{train}"\ntest_iter: 1\ntest_interval: 1000\nbase_lr: 0.01\n'
                           f'lr_policy: "fixed"\ndisplay: 0\nmax_iter: 10\nsnapshot_after_train: false\n')
    solver = caffe.SGDSolver(str(solver_file))
    caffe.accelerate(solver, onnxruntime=True, cache_dir=tmp_path / "c")
    assert not isinstance(solver.net._plan, OnnxRuntimePlan)
    assert isinstance(solver.test_nets[0]._plan, OnnxRuntimePlan)
    solver.step(1)  # training runs the interpreter
    tn = solver.test_nets[0]
    tn.blobs["data"].data[...] = image(2)
    tn.blobs["label"].data[...] = [1, 3]
    scores = solver.test(0)  # the test pass runs the session, its loss from the loss top
    ref = caffe.Net(str(train), caffe.TEST)
    for name, blobs in tn.params.items():
        for k, b in enumerate(blobs):
            ref.params[name][k].data[...] = b.data
    ref.blobs["data"].data[...] = image(2)
    ref.blobs["label"].data[...] = [1, 3]
    want = ref.forward()
    assert len(scores) == 1 + 2 * 5  # the outputs loss and prob, flattened
    close(scores[0], want["loss"])
    close(tn.blobs["loss"].data, want["loss"])
    close(tn.blobs["prob"].data, want["prob"])


def test_a_data_layer_runs_before_the_session(tmp_path):
    proto = tmp_path / "dummy.prototxt"
    proto.write_text("""
layer { name: "data" type: "DummyData" top: "data" top: "label"
        dummy_data_param { shape { dim: 4 dim: 6 } shape { dim: 4 } data_filler { type: "gaussian" std: 1 }
                           data_filler { type: "constant" value: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
""")
    caffe.set_random_seed(2)
    net = caffe.Net(str(proto), caffe.TEST)
    caffe.accelerate(net, onnxruntime=True, cache_dir=tmp_path / "c")
    for _ in range(2):  # new data each pass; the accuracy and loss from the session's ip
        out = net.forward()
        x, ip = net.blobs["data"].data, net.blobs["ip"].data
        w, b = net.params["ip"][0].data, net.params["ip"][1].data
        close(ip, x @ w.T + b)
        logp = ip - ip.max(1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(1, keepdims=True))
        close(out["loss"], -logp[:, 1].mean())
        close(out["acc"], (ip.argmax(1) == 1).mean())
