"""pycaffe's Net API, as scripts use it (modelled on pycaffe's test_net.py, written fresh).

Every test takes the ``caffe`` fixture and so runs on caffe_compat and, where
importable, on the real pycaffe: the expectations below are Caffe's.
Python 3.9 syntax, numpy only.
"""

from __future__ import annotations

import numpy as np
import pytest

NET = """
name: "testnet"
force_backward: true
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 5 dim: 2 dim: 3 dim: 4 } shape { dim: 5 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 11 kernel_size: 2 pad: 3
          weight_filler { type: "gaussian" std: 1 } bias_filler { type: "constant" value: 2 } }
        param { decay_mult: 1 } param { decay_mult: 0 } }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        inner_product_param { num_output: %d
          weight_filler { type: "gaussian" std: 2.5 } bias_filler { type: "constant" value: -3 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""

NUM_OUTPUT = 13


def write(tmp_path, text, name="net.prototxt"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.fixture
def net(caffe, tmp_path):
    n = caffe.Net(write(tmp_path, NET % NUM_OUTPUT), caffe.TRAIN)
    rng = np.random.RandomState(0)
    n.blobs["data"].data[...] = rng.randn(5, 2, 3, 4)
    n.blobs["label"].data[...] = rng.randint(0, NUM_OUTPUT, size=5)
    return n


# ----------------------------------------------------------------- structure
def test_structure(net):
    assert list(net._layer_names) == ["data", "conv", "ip", "loss"]
    types = ["Input", "Convolution", "InnerProduct", "SoftmaxWithLoss"]
    assert [layer.type for layer in net.layers] == types
    assert list(net.blobs) == ["data", "label", "conv", "ip", "loss"]
    assert list(net.inputs) == ["data", "label"]
    assert list(net.outputs) == ["loss"]
    assert list(net.params) == ["conv", "ip"]
    assert [b.data.shape for b in net.params["conv"]] == [(11, 2, 2, 2), (11,)]
    assert [b.data.shape for b in net.params["ip"]] == [(NUM_OUTPUT, 11 * 8 * 9), (NUM_OUTPUT,)]
    assert net.blobs["conv"].data.shape == (5, 11, 8, 9)
    assert net.blobs["loss"].data.shape == ()


def test_layer_dict_and_names(net):
    assert list(net.layer_dict) == list(net._layer_names)
    for name, layer in zip(net._layer_names, net.layers):
        assert net.layer_dict[name] is layer or net.layer_dict[name].type == layer.type
    assert dict(net.top_names) == {"data": ["data", "label"], "conv": ["conv"], "ip": ["ip"],
                                   "loss": ["loss"]}
    assert dict(net.bottom_names) == {"data": [], "conv": ["data"], "ip": ["conv"],
                                      "loss": ["ip", "label"]}
    assert dict(net.blob_loss_weights) == {"data": 0, "label": 0, "conv": 0, "ip": 0, "loss": 1}


def test_layer_blobs_are_params(net):
    conv = net.layers[list(net._layer_names).index("conv")]
    assert len(conv.blobs) == 2
    conv.blobs[1].data[...] = 7
    assert (net.params["conv"][1].data == 7).all()


def test_fillers_applied(net):
    assert (net.params["conv"][1].data == 2).all()
    assert (net.params["ip"][1].data == -3).all()
    w = net.params["ip"][0].data
    assert abs(w.std() - 2.5) < 0.3


# ------------------------------------------------------------------- blobs
def test_blob_accessors(net):
    b = net.blobs["data"]
    assert (b.num, b.channels, b.height, b.width) == (5, 2, 3, 4)
    assert b.count == 120 and isinstance(b.count, int)
    assert tuple(b.shape) == (5, 2, 3, 4)
    assert b.data.dtype == np.float32 and b.diff.dtype == np.float32
    lab = net.blobs["label"]
    assert (lab.num, lab.channels, lab.height, lab.width) == (5, 1, 1, 1)


def test_param_writes_feed_forward(net):
    net.forward()
    first = net.blobs["ip"].data.copy()
    net.params["ip"][1].data[...] += np.arange(NUM_OUTPUT)
    net.forward()
    np.testing.assert_allclose(net.blobs["ip"].data - first, np.tile(np.arange(NUM_OUTPUT), (5, 1)),
                               rtol=1e-4, atol=1e-3)


def test_held_input_view_stays_live(net):
    data = net.blobs["data"].data
    data[...] = 0
    net.forward()
    zero_conv = net.blobs["conv"].data.copy()
    data[...] = 1
    net.forward()
    assert not np.allclose(net.blobs["conv"].data, zero_conv)


def test_blob_reshape_and_net_reshape(net):
    net.blobs["data"].reshape(2, 2, 3, 4)
    net.blobs["label"].reshape(2)
    net.reshape()
    assert net.blobs["conv"].data.shape == (2, 11, 8, 9)
    assert net.blobs["ip"].data.shape == (2, NUM_OUTPUT)
    net.blobs["data"].data[...] = 1
    net.blobs["label"].data[...] = 0
    out = net.forward()
    assert np.isfinite(out["loss"])


# ----------------------------------------------------------- forward/backward
def test_forward_backward(net):
    out = net.forward()
    assert set(out) == {"loss"}
    assert float(out["loss"]) > 0
    diffs = net.backward()
    assert set(diffs) == {"data", "label"}
    assert np.abs(net.blobs["data"].diff).sum() > 0
    assert (net.blobs["label"].diff == 0).all()
    assert float(net.blobs["loss"].diff) == 1.0


def test_forward_with_kwargs_and_blobs(net, caffe):
    rng = np.random.RandomState(3)
    data = rng.randn(5, 2, 3, 4).astype(np.float32)
    label = rng.randint(0, NUM_OUTPUT, size=5).astype(np.float32)
    out = net.forward(blobs=["conv"], data=data, label=label)
    assert set(out) == {"loss", "conv"}
    np.testing.assert_array_equal(net.blobs["data"].data, data)


def test_forward_start_end(net):
    net.forward()
    conv = net.blobs["conv"].data.copy()
    ip = net.blobs["ip"].data.copy()
    net.blobs["conv"].data[...] = 0
    out = net.forward(start="ip", end="ip")
    assert set(out) == {"ip"}
    assert not np.allclose(net.blobs["ip"].data, ip)
    net.forward(end="conv")
    np.testing.assert_allclose(net.blobs["conv"].data, conv, rtol=1e-6)


def test_backward_start_end(net):
    net.forward()
    net.backward()
    ip_diff = net.blobs["ip"].diff.copy()
    data_diff = net.blobs["data"].diff.copy()
    net.blobs["data"].diff[...] = 0
    out = net.backward(start="conv", end="conv")
    assert set(out) == {"data"}
    np.testing.assert_allclose(net.blobs["data"].diff, data_diff, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.blobs["ip"].diff, ip_diff)


def test_param_diffs_accumulate_until_cleared(net):
    net.clear_param_diffs()
    net.forward()
    net.backward()
    once = net.params["conv"][0].diff.copy()
    net.backward()
    np.testing.assert_allclose(net.params["conv"][0].diff, 2 * once, rtol=1e-5, atol=1e-6)
    net.clear_param_diffs()
    for blobs in net.params.values():
        for b in blobs:
            assert not b.diff.any()


def test_backward_with_output_diff(caffe, tmp_path):
    text = """
    name: "nd" force_backward: true
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
            inner_product_param { num_output: 4 weight_filler { type: "gaussian" } } }
    """
    net = caffe.Net(write(tmp_path, text), caffe.TEST)
    net.blobs["x"].data[...] = np.arange(6).reshape(2, 3)
    net.forward()
    top = np.ones((2, 4), dtype=np.float32)
    out = net.backward(y=top)
    w = net.params["ip"][0].data
    np.testing.assert_allclose(out["x"], top.dot(w), rtol=1e-5)


def test_no_force_backward_leaves_input_diff(caffe, tmp_path):
    net = caffe.Net(write(tmp_path, (NET % NUM_OUTPUT).replace("force_backward: true", "")), caffe.TRAIN)
    net.blobs["data"].data[...] = np.random.RandomState(4).randn(5, 2, 3, 4)
    net.blobs["label"].data[...] = 1
    net.forward()
    net.backward()
    assert not net.blobs["data"].diff.any()
    assert net.params["conv"][0].diff.any()


# ------------------------------------------------------------- batch helpers
def test_forward_all_pads_and_trims(caffe, tmp_path):
    text = """
    name: "fa"
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 4 dim: 3 } } }
    layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
            inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }
    """
    net = caffe.Net(write(tmp_path, text), caffe.TEST)
    x = np.random.RandomState(1).randn(10, 3).astype(np.float32)
    out = net.forward_all(x=x)
    assert out["y"].shape == (10, 2)
    w, b = net.params["ip"][0].data, net.params["ip"][1].data
    np.testing.assert_allclose(out["y"], x.dot(w.T) + b, rtol=1e-5, atol=1e-6)


def test_forward_backward_all(caffe, tmp_path):
    text = """
    name: "fba" force_backward: true
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 4 dim: 3 } } }
    layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
            inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }
    """
    net = caffe.Net(write(tmp_path, text), caffe.TEST)
    rng = np.random.RandomState(2)
    x = rng.randn(6, 3).astype(np.float32)
    dy = rng.randn(6, 2).astype(np.float32)
    outs, diffs = net.forward_backward_all(x=x, y=dy)
    assert outs["y"].shape == (6, 2) and diffs["x"].shape == (6, 3)
    np.testing.assert_allclose(diffs["x"], dy.dot(net.params["ip"][0].data), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------- weights
def test_save_and_load(net, caffe, tmp_path):
    path = str(tmp_path / "w.caffemodel")
    net.save(path)
    other = caffe.Net(write(tmp_path, NET % NUM_OUTPUT, "other.prototxt"), caffe.TRAIN)
    other.copy_from(path)
    for name in net.params:
        for a, b in zip(net.params[name], other.params[name]):
            np.testing.assert_array_equal(a.data, b.data)
    third = caffe.Net(write(tmp_path, NET % NUM_OUTPUT, "third.prototxt"), path, caffe.TRAIN)
    np.testing.assert_array_equal(third.params["ip"][0].data, net.params["ip"][0].data)
    fourth = caffe.Net(write(tmp_path, NET % NUM_OUTPUT, "fourth.prototxt"), caffe.TEST, weights=path)
    np.testing.assert_array_equal(fourth.params["conv"][0].data, net.params["conv"][0].data)


def test_save_and_load_hdf5(net, caffe, tmp_path):
    path = str(tmp_path / "w.h5")
    net.save_hdf5(path)
    other = caffe.Net(write(tmp_path, NET % NUM_OUTPUT, "o.prototxt"), caffe.TRAIN)
    other.load_hdf5(path)
    np.testing.assert_array_equal(other.params["conv"][0].data, net.params["conv"][0].data)


def test_copy_from_ignores_unknown_layers(caffe, tmp_path, net):
    path = str(tmp_path / "w.caffemodel")
    net.save(path)
    text = """
    name: "sub"
    layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 5 dim: 2 dim: 3 dim: 4 } } }
    layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
            convolution_param { num_output: 11 kernel_size: 2 pad: 3 } }
    """
    sub = caffe.Net(write(tmp_path, text, "sub.prototxt"), caffe.TEST)
    sub.copy_from(path)
    np.testing.assert_array_equal(sub.params["conv"][0].data, net.params["conv"][0].data)


def test_share_with(caffe, tmp_path, net):
    other = caffe.Net(write(tmp_path, NET % NUM_OUTPUT, "s.prototxt"), caffe.TEST)
    other.share_with(net)
    net.params["ip"][0].data[...] = 0.5
    np.testing.assert_array_equal(other.params["ip"][0].data, net.params["ip"][0].data)


# ------------------------------------------------------------- net state
STATE_NET = """
name: "state"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 } } }
layer { name: "always" type: "InnerProduct" bottom: "data" top: "always"
        inner_product_param { num_output: 1 } }
layer { name: "train_only" type: "InnerProduct" bottom: "data" top: "train_only"
        inner_product_param { num_output: 1 } include { phase: TRAIN } }
layer { name: "test_only" type: "InnerProduct" bottom: "data" top: "test_only"
        inner_product_param { num_output: 1 } include { phase: TEST } }
layer { name: "level_ge_1" type: "InnerProduct" bottom: "data" top: "level_ge_1"
        inner_product_param { num_output: 1 } include { min_level: 1 } }
layer { name: "level_le_0" type: "InnerProduct" bottom: "data" top: "level_le_0"
        inner_product_param { num_output: 1 } include { max_level: 0 } }
layer { name: "stage_a" type: "InnerProduct" bottom: "data" top: "stage_a"
        inner_product_param { num_output: 1 } include { stage: "a" } }
layer { name: "stage_a_and_b" type: "InnerProduct" bottom: "data" top: "stage_a_and_b"
        inner_product_param { num_output: 1 } include { stage: "a" stage: "b" } }
layer { name: "stage_a_or_b" type: "InnerProduct" bottom: "data" top: "stage_a_or_b"
        inner_product_param { num_output: 1 } include { stage: "a" } include { stage: "b" } }
layer { name: "not_b" type: "InnerProduct" bottom: "data" top: "not_b"
        inner_product_param { num_output: 1 } exclude { stage: "b" } }
"""

STATE_CASES = [
    ("TRAIN", 0, [], ["always", "train_only", "level_le_0", "not_b"]),
    ("TEST", 0, [], ["always", "test_only", "level_le_0", "not_b"]),
    ("TEST", 1, [], ["always", "test_only", "level_ge_1", "not_b"]),
    ("TEST", 0, ["a"], ["always", "test_only", "level_le_0", "stage_a", "stage_a_or_b", "not_b"]),
    ("TEST", 0, ["b"], ["always", "test_only", "level_le_0", "stage_a_or_b"]),
    ("TEST", 0, ["a", "b"], ["always", "test_only", "level_le_0", "stage_a", "stage_a_and_b",
                             "stage_a_or_b"]),
]


@pytest.mark.parametrize("phase,level,stages,layers", STATE_CASES,
                         ids=["train", "test", "level1", "stage_a", "stage_b", "stages_ab"])
def test_net_state_rules(caffe, tmp_path, phase, level, stages, layers):
    net = caffe.Net(write(tmp_path, STATE_NET), getattr(caffe, phase), level=level, stages=stages)
    kept = [name for name, layer in zip(net._layer_names, net.layers) if layer.type != "Split"]
    assert kept == ["data"] + layers


# --------------------------------------------------------------- splits, in-place
SPLIT_NET = """
name: "split" force_backward: true
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" } } }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" }
"""


def test_split_layers_named_as_caffe(caffe, tmp_path):
    net = caffe.Net(write(tmp_path, SPLIT_NET), caffe.TEST)
    assert list(net._layer_names) == ["data", "label_data_1_split", "ip", "relu", "ip_relu_0_split",
                                      "loss", "acc"]
    assert "ip_relu_0_split_0" in net.blobs and "label_data_1_split_1" in net.blobs
    assert list(net.outputs) == ["acc", "loss"]
    assert net.layers[1].type == "Split"


def test_inplace_blob_diff_is_bottom_diff(caffe, tmp_path):
    text = """
    name: "inplace" force_backward: true
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
            inner_product_param { num_output: 3 weight_filler { type: "gaussian" } } }
    layer { name: "relu" type: "ReLU" bottom: "y" top: "y" }
    """
    net = caffe.Net(write(tmp_path, text), caffe.TEST)
    net.blobs["x"].data[...] = np.random.RandomState(5).randn(2, 3)
    net.forward()
    y = net.blobs["y"].data.copy()
    assert (y >= 0).all()
    net.blobs["y"].diff[...] = 1
    net.backward()
    # After backward the in-place blob holds the gradient at ReLU's input.
    np.testing.assert_array_equal(net.blobs["y"].diff, (y > 0).astype(np.float32))


def test_layer_hooks_run_in_caffe_order(net):
    calls = []
    net.before_forward(lambda i: calls.append(("bf", i)))
    net.after_forward(lambda i: calls.append(("af", i)))
    net.forward()
    assert calls == [(k, i) for i in range(4) for k in ("bf", "af")]
    del calls[:]
    net.before_backward(lambda i: calls.append(("bb", i)))
    net.after_backward(lambda i: calls.append(("ab", i)))
    net.backward()
    assert [i for k, i in calls if k == "bb"] == [3, 2, 1, 0]
    assert [i for k, i in calls if k == "ab"] == [3, 2, 1, 0]
