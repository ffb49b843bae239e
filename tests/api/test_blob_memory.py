"""Caffe's blob memory and backward without a forward, as pycaffe scripts rely on them.

Each test runs on caffe_compat and, where importable, on the real pycaffe (see
conftest.py): the expectations are Caffe's. Modelled on what upstream's
test_net.py, BVLC's net_surgery notebook and deepdream do, written fresh.
Python 3.9 syntax, numpy only.
"""

from __future__ import annotations

import numpy as np
import pytest

NET = """
name: "memory"
force_backward: true
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 4 dim: 2 dim: 5 dim: 5 } shape { dim: 4 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 3 kernel_size: 2
          weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "constant" value: 0.5 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        inner_product_param { num_output: 6
          weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""

SIGMOID_NET = """
name: "inplace"
force_backward: true
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 3 dim: 4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "sig" type: "Sigmoid" bottom: "ip" top: "ip" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip" top: "out"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 1 } } }
"""


def make(caffe, tmp_path, text=NET, phase=None):
    path = tmp_path / "net.prototxt"
    path.write_text(text)
    net = caffe.Net(str(path), caffe.TRAIN if phase is None else phase)
    rng = np.random.RandomState(3)
    net.blobs["data"].data[...] = rng.randn(*net.blobs["data"].data.shape)
    if "label" in net.blobs:
        net.blobs["label"].data[...] = rng.randint(0, 6, size=4)
    return net


def ip_backward(net, top_diff):
    """What InnerProduct's backward gives its bottom: top_diff times the weights."""
    w = net.params["ip"][0].data
    return (top_diff @ w).reshape(net.blobs["conv"].data.shape)


# ------------------------------------------------------- backward without forward
def test_backward_of_one_layer_on_a_new_net(caffe, tmp_path):
    net = make(caffe, tmp_path)
    diff = np.random.RandomState(0).rand(*net.blobs["ip"].diff.shape).astype(np.float32)
    net.blobs["ip"].diff[...] = diff
    out = net.backward(start="ip", end="ip")
    assert "conv" in out
    np.testing.assert_allclose(net.blobs["conv"].diff, ip_backward(net, diff), rtol=1e-5, atol=1e-6)
    # the conv blob holds zeros (no forward ran): so does the weight gradient
    assert not net.params["ip"][0].diff.any()
    np.testing.assert_allclose(net.params["ip"][1].diff, diff.sum(0), rtol=1e-5)


def test_backward_reads_the_blobs_current_data(caffe, tmp_path):
    net = make(caffe, tmp_path)
    conv = np.random.RandomState(1).rand(*net.blobs["conv"].data.shape).astype(np.float32)
    net.blobs["conv"].data[...] = conv
    diff = np.ones(net.blobs["ip"].diff.shape, np.float32)
    net.blobs["ip"].diff[...] = diff
    net.backward(start="ip", end="ip")
    want = diff.T @ conv.reshape(conv.shape[0], -1)
    np.testing.assert_allclose(net.params["ip"][0].diff, want, rtol=1e-5)


def test_backward_after_forward_without_keeping_anything(caffe, tmp_path):
    net = make(caffe, tmp_path)
    net.forward()
    net.backward()
    first = net.blobs["data"].diff.copy()
    grad = net.params["conv"][0].diff.copy()
    assert np.abs(first).max() > 0
    net.clear_param_diffs()
    net.backward()  # again, with no forward in between: same blobs, same result
    np.testing.assert_allclose(net.blobs["data"].diff, first, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(net.params["conv"][0].diff, grad, rtol=1e-5, atol=1e-7)


def test_backward_twice_accumulates_parameter_diffs(caffe, tmp_path):
    net = make(caffe, tmp_path)
    net.forward()
    net.backward()
    once = net.params["ip"][0].diff.copy()
    net.backward()
    np.testing.assert_allclose(net.params["ip"][0].diff, 2 * once, rtol=1e-5, atol=1e-7)


def test_backward_range_from_a_middle_layer(caffe, tmp_path):
    net = make(caffe, tmp_path)
    net.forward()
    top = np.random.RandomState(4).randn(*net.blobs["conv"].diff.shape).astype(np.float32)
    net.blobs["conv"].diff[...] = top
    out = net.backward(start="relu", end="conv")
    assert set(out) >= {"data"}
    # ReLU in place passes the diff where the (rectified) data is positive
    relu_diff = top * (net.blobs["conv"].data > 0)
    np.testing.assert_allclose(net.blobs["conv"].diff, relu_diff, rtol=1e-6)


def test_inplace_sigmoid_backward_without_a_graph(caffe, tmp_path):
    net = make(caffe, tmp_path, SIGMOID_NET)
    net.forward()
    y = net.blobs["ip"].data.copy()
    net.blobs["out"].diff[...] = 1
    net.backward()
    first = net.blobs["data"].diff.copy()
    w2 = net.params["ip2"][0].data
    want_ip = (np.ones((3, 2), np.float32) @ w2) * y * (1 - y)
    np.testing.assert_allclose(first, want_ip @ net.params["ip"][0].data, rtol=1e-5, atol=1e-6)
    net.backward()
    np.testing.assert_allclose(net.blobs["data"].diff, first, rtol=1e-5, atol=1e-7)


# -------------------------------------------------------------- memory persists
def test_array_kept_across_forward_shows_new_values(caffe, tmp_path):
    # BVLC's net_surgery: keep conv0, change the bias, forward, look at conv0 again
    net = make(caffe, tmp_path)
    net.forward()
    conv0 = net.blobs["conv"].data[0, 0]
    before = conv0.mean()
    net.params["conv"][1].data[...] += 1
    net.forward()
    assert conv0.mean() != before
    np.testing.assert_array_equal(conv0, net.blobs["conv"].data[0, 0])


def test_array_taken_before_the_first_forward(caffe, tmp_path):
    net = make(caffe, tmp_path)
    ip = net.blobs["ip"].data
    assert not ip.any()
    net.forward()
    assert ip.any()
    np.testing.assert_array_equal(ip, net.blobs["ip"].data)


def test_forward_dict_arrays_are_the_blobs(caffe, tmp_path):
    net = make(caffe, tmp_path)
    first = net.forward(blobs=["ip"])
    net.blobs["data"].data[...] *= 2
    second = net.forward(blobs=["ip"])
    np.testing.assert_array_equal(first["ip"], second["ip"])
    np.testing.assert_array_equal(first["loss"], second["loss"])


def test_diff_kept_across_backward_shows_new_values(caffe, tmp_path):
    net = make(caffe, tmp_path)
    net.forward()
    net.backward()
    kept = net.blobs["data"].diff
    old = kept.copy()
    net.blobs["data"].data[...] *= -1
    net.forward()
    net.backward()
    assert not np.allclose(kept, old)
    np.testing.assert_array_equal(kept, net.blobs["data"].diff)


def test_array_taken_before_reshape_forward(caffe, tmp_path):
    net = make(caffe, tmp_path)
    net.forward()
    ip = net.blobs["ip"].data
    net.blobs["data"].reshape(2, 2, 5, 5)  # smaller: every buffer keeps its memory
    net.blobs["label"].reshape(2)
    net.reshape()
    net.blobs["data"].data[...] = 2
    net.forward()
    assert net.blobs["ip"].data.shape == (2, 6)
    np.testing.assert_array_equal(ip[:2], net.blobs["ip"].data)


# ---------------------------------------------------------------- Blob.reshape
def test_reshape_within_capacity_keeps_data_and_diff(caffe, tmp_path):
    net = make(caffe, tmp_path)
    blob = net.blobs["data"]
    blob.data[...] = np.arange(blob.data.size).reshape(blob.data.shape)
    blob.diff[...] = -np.arange(blob.data.size).reshape(blob.data.shape)
    blob.reshape(2, 2, 5, 5)
    np.testing.assert_array_equal(blob.data.ravel(), np.arange(100))
    np.testing.assert_array_equal(blob.diff.ravel(), -np.arange(100))
    blob.reshape(4, 2, 5, 5)  # back to the capacity: everything still there
    np.testing.assert_array_equal(blob.data.ravel(), np.arange(200))
    np.testing.assert_array_equal(blob.diff.ravel(), -np.arange(200))
    blob.reshape(5, 2, 5, 5)  # past the capacity: a fresh zeroed buffer
    assert not blob.data.any() and not blob.diff.any()


def test_reshape_changes_layout_not_values(caffe, tmp_path):
    net = make(caffe, tmp_path)
    blob = net.blobs["data"]
    values = np.random.RandomState(2).rand(4, 2, 5, 5).astype(np.float32)
    blob.data[...] = values
    blob.reshape(4, 50)
    np.testing.assert_array_equal(blob.data, values.reshape(4, 50))


def test_stale_top_diff_flows_after_reshape(caffe, tmp_path):
    # deepdream's pattern: the net's blobs keep the last pass's diffs through a
    # reshape that fits, and a backward from a middle layer reads what is there.
    net = make(caffe, tmp_path)
    net.forward()
    net.blobs["conv"].diff[...] = 1
    net.blobs["data"].reshape(3, 2, 5, 5)
    net.blobs["label"].reshape(3)
    net.reshape()
    assert net.blobs["conv"].diff.shape == (3, 3, 4, 4)
    assert (net.blobs["conv"].diff == 1).all()


@pytest.mark.parametrize("phase", ["TRAIN", "TEST"])
def test_dropout_backward_without_graph_uses_the_last_mask(caffe, tmp_path, phase):
    text = """
    name: "drop" force_backward: true
    layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 50 } } }
    layer { name: "drop" type: "Dropout" bottom: "data" top: "out" dropout_param { dropout_ratio: 0.5 } }
    """
    net = make(caffe, tmp_path, text, getattr(caffe, phase))
    net.forward()
    out = net.blobs["out"].data.copy()
    net.blobs["out"].diff[...] = 1
    net.backward()
    kept = out != 0
    np.testing.assert_array_equal(net.blobs["data"].diff != 0, kept)
    if phase == "TRAIN":
        np.testing.assert_allclose(net.blobs["data"].diff[kept], 2.0)
