"""Export to plain PyTorch: fx GraphModule, torch.export, ONNX (onnxruntime)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import caffe_compat as caffe
from caffe_compat.cli import main as cli_main
from caffe_compat.errors import BlobNotFoundError
from caffe_compat.export import to_torch

NET = """
name: "small" force_backward: true
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 1 dim: 12 dim: 12 } shape { dim: 2 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "pool1" top: "pool1" }
layer { name: "ip/1" type: "InnerProduct" bottom: "pool1" top: "ip1"
        inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }
layer { name: "prob" type: "Softmax" bottom: "ip1" top: "prob" }
"""


@pytest.fixture
def net():
    n = caffe.Net(NET, caffe.TEST)
    rng = np.random.RandomState(0)
    n.blobs["data"].data[...] = rng.rand(2, 1, 12, 12)
    n.blobs["label"].data[...] = [1, 3]
    n.forward()
    return n


def test_graph_module_matches_net(net):
    m = to_torch(net)
    assert m.input_names == ["data", "label"]
    assert m.output_names == ["loss", "prob"]
    out = m(torch.from_numpy(net.blobs["data"].data.copy()), torch.from_numpy(net.blobs["label"].data.copy()))
    np.testing.assert_allclose(out["prob"].detach().numpy(), net.blobs["prob"].data, rtol=1e-6)
    np.testing.assert_allclose(out["loss"].item(), float(net.blobs["loss"].data), rtol=1e-6)
    assert "ip_1" in dict(m.named_children())  # layer names made valid attribute names


def test_drop_losses_and_chosen_outputs(net):
    m = net.to_module(drop_losses=True)
    assert m.input_names == ["data"] and m.output_names == ["prob"]
    m2 = to_torch(net, outputs=["ip1", "pool1"], drop_losses=True)
    out = m2(torch.from_numpy(net.blobs["data"].data.copy()))
    np.testing.assert_allclose(out["pool1"].detach().numpy(), net.blobs["pool1"].data, rtol=1e-6)
    with pytest.raises(BlobNotFoundError):
        to_torch(net, outputs=["nope"])


def test_gradients_match_net(net):
    m = to_torch(net, outputs=["loss"])
    x = torch.from_numpy(net.blobs["data"].data.copy()).requires_grad_()
    m(x, torch.from_numpy(net.blobs["label"].data.copy()))["loss"].backward()
    net.backward()
    np.testing.assert_allclose(x.grad.numpy(), net.blobs["data"].diff, rtol=1e-5, atol=1e-7)


def test_shares_weights_and_deepcopies(net):
    m = to_torch(net, drop_losses=True)
    net.params["ip/1"][1].data[...] = 3.0
    assert (m.get_submodule("ip_1").params[1] == 3.0).all()
    independent = copy.deepcopy(m)
    net.params["ip/1"][1].data[...] = 4.0
    assert (independent.get_submodule("ip_1").params[1] == 3.0).all()


def test_double_keeps_params_in_sync(net):
    m = copy.deepcopy(to_torch(net, drop_losses=True)).double()
    out = m(torch.from_numpy(net.blobs["data"].data.copy()).double())
    assert out["prob"].dtype == torch.float64


def test_torch_export(net):
    m = to_torch(net, drop_losses=True)
    x = torch.from_numpy(net.blobs["data"].data.copy())
    program = torch.export.export(m, (x,))
    np.testing.assert_allclose(program.module()(x)["prob"].detach().numpy(), net.blobs["prob"].data,
                               rtol=1e-6)


def test_onnx_export_cli(net, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    pytest.importorskip("onnxscript", reason="torch's ONNX exporter needs onnxscript")
    model = tmp_path / "net.prototxt"
    model.write_text(NET)
    weights = tmp_path / "w.caffemodel"
    net.save(str(weights))
    out = tmp_path / "net.onnx"
    assert cli_main(["export", "-model", str(model), "--weights=" + str(weights), "--onnx", str(out)]) == 0
    session = ort.InferenceSession(str(out))
    assert [i.name for i in session.get_inputs()] == ["data"]
    (prob,) = session.run(["prob"], {"data": net.blobs["data"].data})
    np.testing.assert_allclose(prob, net.blobs["prob"].data, rtol=1e-5, atol=1e-6)
