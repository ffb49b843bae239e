"""pycaffe script patterns from public Caffe code, run through a real Caffe (kind "script").

Each case names a function below that takes the ``caffe`` module and an rng
and returns the arrays the script would look at. The generator runs it with
the real pycaffe; ``tests/test_golden_scripts.py`` runs the same function with
caffe_compat and compares every array. The patterns:

* ``deepdream`` — the deepdream notebook's ``make_step`` loop over octaves:
  reshape the input to each octave's size, ``forward(end=...)``, set the end
  blob's diff to its data, ``backward(start=...)``, step the image. A full
  forward/backward first leaves diffs in a branch the dream never
  backpropagates (a Split top read beyond ``end``): Caffe's buffers keep them,
  through reshapes that fit, and they flow into the image gradient.
* ``net_surgery`` — BVLC's net_surgery notebook: an array kept from
  ``blobs['conv'].data`` before changing the bias and running forward again,
  and the dict ``forward()`` returned.
* ``solver_then_backward`` — ``solver.step()``, then ``net.backward()`` with
  no forward in between (upstream test_net.py style ranges included).

Python 3.9 + numpy only.
"""

import os
import tempfile

import numpy as np

DREAM_NET = """
name: "dream"
force_backward: true
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 12 dim: 12 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 6 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "b1" type: "Convolution" bottom: "conv1" top: "b1"
        convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "relu_b1" type: "ReLU" bottom: "b1" top: "b1" }
layer { name: "b3" type: "Convolution" bottom: "conv1" top: "b3"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu_b3" type: "ReLU" bottom: "b3" top: "b3" }
layer { name: "mixed" type: "Concat" bottom: "b1" bottom: "b3" top: "mixed" }
layer { name: "side" type: "Convolution" bottom: "conv1" top: "side"
        convolution_param { num_output: 2 kernel_size: 1 } }
layer { name: "pool" type: "Pooling" bottom: "mixed" top: "pool"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "head" type: "Eltwise" bottom: "side" bottom: "side" top: "head" }
"""

SURGERY_NET = """
name: "surgery"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 1 dim: 6 dim: 6 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 3 kernel_size: 3 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip" inner_product_param { num_output: 4 } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""

TRAIN_NET = """
name: "train"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 4 dim: 2 dim: 4 dim: 4 } shape { dim: 4 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 3 kernel_size: 3 } }
layer { name: "sig" type: "Sigmoid" bottom: "conv" top: "conv" }
layer { name: "drop" type: "Dropout" bottom: "conv" top: "conv" dropout_param { dropout_ratio: 0.0 } }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip" inner_product_param { num_output: 5 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""

SOLVER = """
net: "%s"
base_lr: 0.1
momentum: 0.9
weight_decay: 0.001
lr_policy: "fixed"
max_iter: 100
display: 0
snapshot_after_train: false
"""


def _net(caffe, text, phase, tmp):
    path = os.path.join(tmp, "net.prototxt")
    with open(path, "w") as f:
        f.write(text)
    return caffe.Net(path, phase)


def _set_params(net, rng, scale=0.5):
    for blobs in net.params.values():
        for blob in blobs:
            blob.data[...] = rng.randn(*blob.data.shape) * scale


def deepdream(caffe, rng, tmp):
    net = _net(caffe, DREAM_NET, caffe.TEST, tmp)
    _set_params(net, rng)
    out = {}
    src = net.blobs["data"]
    src.data[...] = rng.randn(*src.data.shape)
    net.forward()
    net.blobs["head"].diff[...] = 1  # a classification-style pass first: diffs left behind
    net.backward()
    out["first/data_diff"] = src.diff.copy()
    end = "mixed"
    dst = net.blobs[end]
    base = rng.randn(3, 12, 12).astype(np.float32)
    # octave sizes: shrink (fits: buffers and their diffs kept), same, grow (fresh zeros)
    for octave, (h, w) in enumerate([(10, 10), (10, 10), (14, 13)]):
        src.reshape(1, 3, h, w)
        src.data[0] = base[:, :h, :w] if h <= 12 and w <= 12 else np.resize(base, (3, h, w))
        for step in range(2):
            ox, oy = rng.randint(-2, 3, 2)
            src.data[0] = np.roll(np.roll(src.data[0], ox, -1), oy, -2)
            net.forward(end=end)
            dst.diff[:] = dst.data
            net.backward(start=end)
            g = src.diff[0]
            src.data[:] += 1.5 / (np.abs(g).mean() + 1e-12) * g
            src.data[0] = np.roll(np.roll(src.data[0], -ox, -1), -oy, -2)
            key = "octave%d/step%d/" % (octave, step)
            out[key + "grad"] = g.copy()
            out[key + "image"] = src.data[0].copy()
            out[key + "side_diff"] = net.blobs["conv1"].diff.copy()
    return out


def net_surgery(caffe, rng, tmp):
    net = _net(caffe, SURGERY_NET, caffe.TEST, tmp)
    _set_params(net, rng)
    net.blobs["data"].data[...] = rng.rand(2, 1, 6, 6)
    first = net.forward()
    conv0 = net.blobs["conv"].data[0, 0]
    out = {"conv0/before": conv0.copy(), "prob/before": first["prob"].copy()}
    net.params["conv"][1].data[...] += 0.7
    net.forward()
    out["conv0/after_kept"] = conv0.copy()  # the array kept from before: Caffe's buffer
    out["prob/after_kept"] = first["prob"].copy()
    out["conv0/after_fresh"] = net.blobs["conv"].data[0, 0].copy()
    return out


def solver_then_backward(caffe, rng, tmp):
    net_path = os.path.join(tmp, "train.prototxt")
    with open(net_path, "w") as f:
        f.write(TRAIN_NET)
    solver_path = os.path.join(tmp, "solver.prototxt")
    with open(solver_path, "w") as f:
        f.write(SOLVER % net_path)
    solver = caffe.SGDSolver(solver_path)
    net = solver.net
    _set_params(net, rng)
    net.blobs["data"].data[...] = rng.randn(4, 2, 4, 4)
    net.blobs["label"].data[...] = rng.randint(0, 5, size=4)
    solver.step(2)
    out = {}
    net.clear_param_diffs()
    net.backward()  # no forward since the step: Caffe's blobs as the step left them
    out["full/data_diff"] = net.blobs["data"].diff.copy()
    for name, blobs in net.params.items():
        out["full/pdiff/%s" % name] = blobs[0].diff.copy()
    net.clear_param_diffs()
    net.blobs["ip"].diff[...] = rng.randn(4, 5)
    res = net.backward(start="ip", end="ip")
    out["range/conv_diff"] = res["conv"].copy()
    out["range/ip_pdiff"] = net.params["ip"][0].diff.copy()
    net.blobs["conv"].diff[...] = rng.randn(*net.blobs["conv"].diff.shape)
    net.backward(start="sig", end="conv")
    out["inplace/data_diff"] = net.blobs["data"].diff.copy()
    out["inplace/conv_pdiff"] = net.params["conv"][0].diff.copy()
    return out


CASES = [
    {"kind": "script", "name": "deepdream", "seed": 11, "tol": 1e-4},
    {"kind": "script", "name": "net_surgery", "seed": 12, "tol": 1e-5},
    {"kind": "script", "name": "solver_then_backward", "seed": 13, "tol": 1e-4},
]


def run(case, caffe, rng):
    tmp = tempfile.mkdtemp(prefix="script_golden_")
    try:
        return globals()[case["name"]](caffe, rng, tmp)
    finally:
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)


def generate(case, caffe, rng):
    arrays = run(case, caffe, rng)
    meta = {"kind": "script", "name": case["name"], "tol": case["tol"]}
    return meta, arrays
