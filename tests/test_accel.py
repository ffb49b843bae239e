"""Opt-in accelerations: same training within their precision, Caffe semantics kept where promised."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import caffe_compat as caffe
from caffe_compat.errors import UnsupportedError

NET = """
name: "acc"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 8 dim: 2 dim: 10 dim: 10 } shape { dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1"
        inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }
layer { name: "prob" type: "Softmax" bottom: "ip1" top: "prob" include { phase: TEST } }
"""

SOLVER = """
net: "{net}"
base_lr: 0.1
momentum: 0.9
weight_decay: 0.001
lr_policy: "fixed"
max_iter: 100
display: 0
snapshot_after_train: false
random_seed: 3
"""


def make_solver(tmp_path, name="s"):
    net = tmp_path / f"{name}_net.prototxt"
    net.write_text(NET)
    solver = tmp_path / f"{name}_solver.prototxt"
    solver.write_text(SOLVER.format(net=net))
    return caffe.SGDSolver(str(solver))


def batches(n):
    rng = np.random.RandomState(0)
    return [(rng.randn(8, 2, 10, 10).astype(np.float32), rng.randint(0, 3, 8).astype(np.float32))
            for _ in range(n)]


def train(solver, data):
    losses = []
    for x, y in data:
        solver.net.blobs["data"].data[...] = x
        solver.net.blobs["label"].data[...] = y
        solver.step(1)
        losses.append(float(solver.net.blobs["loss"].data))
    return losses


def weights(net):
    return {name: [b.data.copy() for b in blobs] for name, blobs in net.params.items()}


def assert_weights_close(a, b, rtol, atol):
    for name in a:
        for x, y in zip(a[name], b[name]):
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=name)


@pytest.fixture
def reference(tmp_path):
    caffe.set_random_seed(7)
    solver = make_solver(tmp_path, "ref")
    start = weights(solver.net)
    losses = train(solver, batches(4))
    return start, losses, weights(solver.net)


def accelerated(tmp_path, start, **kwargs):
    caffe.set_random_seed(7)
    solver = make_solver(tmp_path, "acc")
    for name, blobs in start.items():
        for b, v in zip(solver.net.params[name], blobs):
            b.data[...] = v
    return caffe.accelerate(solver, **kwargs)


def test_channels_last_trains_the_same(tmp_path, reference):
    start, losses, final = reference
    solver = accelerated(tmp_path, start, channels_last=True)
    w = solver.net.params["conv1"][0]
    assert w.tensor.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_array_equal(w.data, start["conv1"][0])  # NCHW indexing kept
    got = train(solver, batches(4))
    np.testing.assert_allclose(got, losses, rtol=1e-5)
    assert_weights_close(weights(solver.net), final, rtol=1e-4, atol=1e-6)


def test_channels_last_weights_save_in_caffe_layout(tmp_path, reference):
    start, _, _ = reference
    solver = accelerated(tmp_path, start, channels_last=True)
    path = tmp_path / "w.caffemodel"
    solver.net.save(str(path))
    plain = caffe.Net(NET, caffe.TEST)
    plain.copy_from(str(path))
    np.testing.assert_array_equal(plain.params["conv1"][0].data, start["conv1"][0])


def test_bf16_autocast_keeps_float32_state(tmp_path, reference):
    start, losses, _ = reference
    solver = accelerated(tmp_path, start, autocast="bf16")
    got = train(solver, batches(4))
    np.testing.assert_allclose(got, losses, rtol=5e-2, atol=5e-2)
    for blobs in solver.net.params.values():
        assert all(b.tensor.dtype == torch.float32 for b in blobs)
    assert solver.net.blobs["ip1"].data.dtype == np.float32


def test_compile_trains_the_same(tmp_path, reference):
    start, losses, final = reference
    solver = accelerated(tmp_path, start, compile="aot_eager")
    got = train(solver, batches(4))
    np.testing.assert_allclose(got, losses, rtol=1e-5)
    assert_weights_close(weights(solver.net), final, rtol=1e-4, atol=1e-6)


def test_compiled_net_forward_and_no_backward(tmp_path):
    net = caffe.Net(NET, caffe.TEST)
    x = np.random.RandomState(1).randn(8, 2, 10, 10).astype(np.float32)
    want = net.forward(data=x, label=np.zeros(8))["prob"].copy()
    caffe.accelerate(net, compile="aot_eager")
    got = net.forward(data=x, label=np.zeros(8))["prob"]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    with pytest.raises(UnsupportedError, match="compiled"):
        net.backward()
    caffe.accelerate(net)  # all off again: Caffe semantics back
    assert net._accel is None


def test_cuda_graphs_without_cuda_warns(tmp_path):
    net = caffe.Net(NET, caffe.TEST)
    with pytest.warns(RuntimeWarning, match="CUDA"):
        caffe.accelerate(net, cuda_graphs=True)


def test_bad_autocast_dtype():
    net = caffe.Net(NET, caffe.TEST)
    with pytest.raises(ValueError, match="autocast"):
        caffe.accelerate(net, autocast="int8")


@pytest.mark.slow
def test_inductor_compile(tmp_path, reference):
    start, losses, _ = reference
    solver = accelerated(tmp_path, start, compile=True)
    got = train(solver, batches(4))
    np.testing.assert_allclose(got, losses, rtol=1e-4)


def test_lean_memory_trains_the_same_and_releases_intermediates(tmp_path, reference):
    from caffe_compat.errors import BlobReleasedError

    start, losses, final = reference
    solver = accelerated(tmp_path, start, lean_memory=True)
    got = train(solver, batches(4))
    np.testing.assert_array_equal(got, losses)
    assert_weights_close(weights(solver.net), final, rtol=0, atol=0)
    assert solver.net.blobs["data"].data.shape == (8, 2, 10, 10)  # inputs and losses stay
    with pytest.raises(BlobReleasedError, match="net.forward"):
        solver.net.blobs["conv1"].data
    solver.net.forward()
    assert solver.net.blobs["conv1"].data.shape == (8, 4, 8, 8)
