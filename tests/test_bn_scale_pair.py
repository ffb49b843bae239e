"""A BatchNorm and the Scale in place on its top run as one batch-norm kernel when a pass
runs both (net._pair_affine): the same values, diffs, parameter diffs and running
statistics as the two layers one by one, and Caffe's blob contents for partial passes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import caffe_compat as caffe
from caffe_compat.layers.common.batch_norm import BatchNorm
from caffe_compat.layers.common.scale import Scale

NET = """
name: "bn_scale"
force_backward: true
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 4 dim: 3 dim: 5 dim: 5 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 6 kernel_size: 3 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" %s }
layer { name: "scale" type: "Scale" bottom: "conv" top: "conv"
        scale_param { bias_term: %s filler { type: "uniform" min: 0.5 max: 2 }
                      bias_filler { type: "uniform" min: -1 max: 1 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.3 } } }
"""


LOSS = """
layer { name: "label" type: "Input" top: "label" input_param { shape { dim: 4 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def build(tmp_path, global_stats, bias, seed=7, loss=False):
    proto = tmp_path / f"n{int(global_stats)}{int(bias)}{int(loss)}.prototxt"
    proto.write_text(NET % ("batch_norm_param { use_global_stats: true }" if global_stats else "",
                            "true" if bias else "false") + (LOSS if loss else ""))
    caffe.set_random_seed(seed)
    net = caffe.Net(str(proto), caffe.TRAIN)
    rng = np.random.RandomState(3)
    net.params["bn"][0].data[...] = rng.randn(6)
    net.params["bn"][1].data[...] = rng.rand(6) + 0.5
    net.params["bn"][2].data[...] = 2.0
    return net


def one_by_one(net):
    net.before_forward(lambda i: None)  # a per-layer hook: each layer runs on its own


def pass_of(net, x, dtop):
    net.blobs["data"].data[...] = x
    net.forward()
    net.blobs["ip"].diff[...] = dtop
    net.backward()
    return {"conv": net.blobs["conv"].data.copy(), "ip": net.blobs["ip"].data.copy(),
            "dx": net.blobs["data"].diff.copy(),
            **{f"{n}{k}": b.diff.copy() for n in ("conv", "scale", "ip")
               for k, b in enumerate(net.params[n])},
            **{f"bn{k}": b.data.copy() for k, b in enumerate(net.params["bn"])}}


@pytest.mark.parametrize("global_stats", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_pair_matches_the_two_layers(tmp_path, global_stats, bias):
    paired, single = build(tmp_path, global_stats, bias), build(tmp_path, global_stats, bias)
    assert paired._nodes[2].affine is paired._nodes[3].layer  # the pair is found
    one_by_one(single)
    rng = np.random.RandomState(0)
    for _ in range(2):  # running statistics move twice the same way
        x = rng.randn(4, 3, 5, 5).astype(np.float32)
        dtop = rng.randn(4, 2).astype(np.float32)
        a, b = pass_of(paired, x, dtop), pass_of(single, x, dtop)
        for k in b:
            np.testing.assert_allclose(a[k], b[k], rtol=2e-5, atol=2e-6, err_msg=k)


def test_solver_step_pairs_too(tmp_path):
    paired, single = build(tmp_path, False, True, loss=True), build(tmp_path, False, True, loss=True)
    one_by_one(single)
    x = np.random.RandomState(1).randn(4, 3, 5, 5).astype(np.float32)
    for net in (paired, single):
        net.blobs["data"].data[...] = x
        net.blobs["label"].data[...] = [0, 1, 1, 0]
    la, lb = paired._forward_backward(), single._forward_backward()
    np.testing.assert_allclose(float(la), float(lb), rtol=1e-6)
    assert np.abs(paired.params["scale"][0].diff).max() > 0
    for name in ("scale", "conv"):
        for pa, pb in zip(paired.params[name], single.params[name]):
            np.testing.assert_allclose(pa.diff, pb.diff, rtol=2e-5, atol=2e-6)


def test_partial_passes_keep_caffes_blob_contents(tmp_path):
    net = build(tmp_path, True, True)
    x = np.random.RandomState(2).randn(4, 3, 5, 5).astype(np.float32)
    net.blobs["data"].data[...] = x
    net.forward(end="bn")  # the Scale did not run: the blob holds the normalised values only
    conv = torch.nn.functional.conv2d(torch.from_numpy(x), net.params["conv"][0].tensor.detach(),
                                      net.params["conv"][1].tensor.detach())
    mean = net.params["bn"][0].data / 2.0
    var = net.params["bn"][1].data / 2.0
    normed = (conv.numpy() - mean[:, None, None]) / np.sqrt(var + 1e-5)[:, None, None]
    np.testing.assert_allclose(net.blobs["conv"].data, normed, rtol=1e-5, atol=1e-5)
    gamma, beta = net.params["scale"][0].data, net.params["scale"][1].data
    net.forward(start="scale", end="scale")  # ... and a Scale run alone scales what it finds
    np.testing.assert_allclose(net.blobs["conv"].data,
                               normed * gamma[:, None, None] + beta[:, None, None], rtol=1e-5, atol=1e-5)


def test_only_the_plain_pair_is_taken(tmp_path):
    proto = tmp_path / "n.prototxt"
    proto.write_text("""
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 4 } } }
layer { name: "bn" type: "BatchNorm" bottom: "data" top: "bn" }
layer { name: "scale" type: "Scale" bottom: "bn" top: "scaled" }
layer { name: "bn2" type: "BatchNorm" bottom: "scaled" top: "scaled" }
layer { name: "scale2" type: "Scale" bottom: "scaled" top: "scaled" scale_param { axis: 0 num_axes: 1 } }
""")
    net = caffe.Net(str(proto), caffe.TRAIN)
    assert all(n.affine is None for n in net._nodes)  # not in place / another axis
    assert isinstance(net._nodes[1].layer, BatchNorm) and isinstance(net._nodes[2].layer, Scale)


def test_one_value_per_channel_pairs_too(tmp_path):
    proto = tmp_path / "one.prototxt"
    proto.write_text("""
force_backward: true
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 4 } } }
layer { name: "bn" type: "BatchNorm" bottom: "data" top: "data" }
layer { name: "scale" type: "Scale" bottom: "data" top: "data"
        scale_param { bias_term: true filler { type: "constant" value: 2 }
                      bias_filler { type: "constant" value: 0.5 } } }
""")
    paired, single = caffe.Net(str(proto), caffe.TRAIN), caffe.Net(str(proto), caffe.TRAIN)
    assert paired._nodes[1].affine is paired._nodes[2].layer
    one_by_one(single)
    for net in (paired, single):
        net.blobs["data"].data[...] = [[1.0, -2.0, 3.0, 0.5]]
        net.forward()
        net.blobs["data"].diff[...] = 1.0
        net.backward()
    np.testing.assert_allclose(paired.blobs["data"].data, single.blobs["data"].data, atol=1e-6)
    for pa, pb in zip(paired.params["scale"], single.params["scale"]):
        np.testing.assert_allclose(pa.diff, pb.diff, atol=1e-6)
