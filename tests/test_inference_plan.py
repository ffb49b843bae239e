"""The inference plan (plans/inference.py): fused oneDNN kernels for nets nothing
backpropagates through, with every blob as the layer-by-layer interpreter leaves it.

Golden: every TEST-phase net fixture made by real Caffe, forward through the plan.
Elsewhere the reference is the eager interpreter on the same net (float rounding apart).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import caffe_compat as caffe
from caffe_compat.layers.vision import _cpu_kernels
from caffe_compat.plans import EagerPlan, InferencePlan
from caffe_compat.plans import inference as inference_mod
from golden_harness import assert_close, build_net, fixtures, load

pytestmark = pytest.mark.skipif(not inference_mod._ONEDNN, reason="torch without oneDNN")

CONV_NET = """
name: "fused"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 12 dim: 12 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 3 pad: 1 bias_term: false
    weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "sc1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true
  filler { type: "uniform" min: 0.5 max: 1.5 } bias_filler { type: "uniform" min: -1 max: 1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
  convolution_param { num_output: 6 kernel_size: 3 stride: 2 group: 2
    weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "uniform" min: -1 max: 1 } } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" relu_param { negative_slope: 0.1 } }
layer { name: "bn2" type: "BatchNorm" bottom: "conv2" top: "bn2" }
layer { name: "pool" type: "Pooling" bottom: "bn2" top: "pool"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv3" type: "Convolution" bottom: "pool" top: "conv3"
  convolution_param { num_output: 4 kernel_size: 1 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "ave" type: "Pooling" bottom: "conv3" top: "ave"
  pooling_param { pool: AVE global_pooling: true } }
"""

LINEAR_NET = """
name: "fused_ip"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 3 dim: 4 dim: 16 dim: 16 } } }
layer { name: "fc1" type: "InnerProduct" bottom: "data" top: "fc1"
  inner_product_param { num_output: 1024 weight_filler { type: "gaussian" std: 0.05 }
    bias_filler { type: "uniform" min: -1 max: 1 } } }
layer { name: "relu" type: "ReLU" bottom: "fc1" top: "fc1" }
layer { name: "fc2" type: "InnerProduct" bottom: "fc1" top: "fc2" inner_product_param { num_output: 10 } }
layer { name: "prob" type: "Softmax" bottom: "fc2" top: "prob" }
"""


def _net(text: str, tmp_path, **kw) -> caffe.Net:
    path = tmp_path / "net.prototxt"
    path.write_text(text)
    net = caffe.Net(str(path), caffe.TEST, **kw)
    rng = np.random.default_rng(0)
    for name, blobs in net.params.items():
        if name.startswith("bn"):  # statistics: mean, variance, weight sum
            c = blobs[0].data.shape[0]
            blobs[0].data[...] = rng.normal(size=c) * 2
            blobs[1].data[...] = rng.uniform(0.5, 3, size=c) * 2
            blobs[2].data[...] = 2.0
    net.blobs["data"].data[...] = rng.normal(size=net.blobs["data"].shape)
    return net


def _eager(net: caffe.Net, **kw) -> dict[str, np.ndarray]:
    plan, net._plan = net._plan, EagerPlan()
    try:
        net.forward(**kw)
        return {k: v.data.copy() for k, v in net.blobs.items()}
    finally:
        net._plan = plan


def _check(net: caffe.Net, ref: dict[str, np.ndarray], tol: float = 2e-6) -> None:
    for name, blob in net.blobs.items():
        got = blob.data
        assert got.flags.c_contiguous, name  # pycaffe's arrays, whatever layout the kernel chose
        scale = max(1.0, float(np.abs(ref[name]).max()))
        np.testing.assert_allclose(got, ref[name], rtol=0, atol=tol * scale, err_msg=name)


def _fused_layers(net: caffe.Net) -> dict[str, int]:
    fused = net._plan._fused
    return {net._nodes[f.first].name: f.last - f.first for f in fused if f is not None}


def test_deploy_net_starts_with_the_inference_plan(tmp_path):
    net = _net(CONV_NET, tmp_path)
    assert isinstance(net._plan, InferencePlan)
    ref = _eager(net)
    net.forward()
    # conv1 takes in BN, Scale and ReLU; conv2 its leaky ReLU (bn2 writes another blob); conv3 alone
    assert _fused_layers(net) == {"conv1": 3, "conv2": 1, "conv3": 0}
    assert not any(f.broken for f in net._plan._fused if f is not None)
    _check(net, ref)


ELTWISE_NET = """
name: "residual"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 4 dim: 6 dim: 6 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "sum" type: "Eltwise" bottom: "conv" bottom: "data" top: "sum"
  eltwise_param { operation: SUM coeff: 1 coeff: -0.5 } }
layer { name: "relu" type: "ReLU" bottom: "sum" top: "sum" }
layer { name: "max" type: "Eltwise" bottom: "conv" bottom: "data" top: "max"
  eltwise_param { operation: MAX } }
layer { name: "leaky" type: "ReLU" bottom: "max" top: "max" relu_param { negative_slope: 0.2 } }
layer { name: "prod" type: "Eltwise" bottom: "max" bottom: "conv" top: "prod"
  eltwise_param { operation: PROD } }
layer { name: "relu3" type: "ReLU" bottom: "prod" top: "prod" }
layer { name: "plain" type: "Eltwise" bottom: "prod" bottom: "data" top: "plain" }
"""


def test_eltwise_with_relu_in_place(tmp_path):
    """ResNet's sum + ReLU: the ReLU runs in place on the Eltwise's fresh output (the
    out-of-place ReLU re-read 3 MB per block from memory); an Eltwise alone is left be."""
    net = _net(ELTWISE_NET, tmp_path)
    ref = _eager(net)
    net.forward()
    assert _fused_layers(net) == {"conv": 0, "sum": 1, "max": 1, "prod": 1}
    _check(net, ref)
    assert (net.blobs["max"].data < 0).any() and (net.blobs["sum"].data == 0).any()


def test_a_forward_without_grad_keeps_no_records(tmp_path):
    """Nothing backpropagates through a no-grad forward, so the interpreter records
    nothing: a record would keep alive every tensor an in-place layer replaced (168 MB
    of ResNet-50's 986 at batch 8)."""
    net = _net(CONV_NET, tmp_path)
    net.forward()
    assert all(r is None for r in net._records)
    plan, net._plan = net._plan, EagerPlan()
    net.forward()
    assert all(r is None for r in net._records)
    net._plan = plan


def test_inner_product_with_relu(tmp_path):
    net = _net(LINEAR_NET, tmp_path)
    ref = _eager(net)
    net.forward()
    assert _fused_layers(net) == {"fc1": 1}  # fc2 (10k weights) stays torch's: faster there
    _check(net, ref)


def test_a_net_that_backpropagates_keeps_the_eager_plan(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text("force_backward: true\n" + CONV_NET)
    assert type(caffe.Net(str(path), caffe.TRAIN)._plan) is EagerPlan
    # A TEST net gets the inference plan (a solver's test net runs without grad), whose
    # forward with grad is the eager one, so that backward has its graph.
    net = _net("force_backward: true\n" + CONV_NET, tmp_path)
    assert type(net._plan) is InferencePlan
    rng = np.random.default_rng(1)
    for name, blobs in net.params.items():
        if not name.startswith("bn"):
            for b in blobs:
                b.data[...] = rng.normal(size=b.data.shape)
    net.forward()
    assert net._plan._fused is None and net._graph_alive
    net.blobs["ave"].diff[...] = 1
    net.backward()
    ref = net.blobs["data"].diff.copy()
    assert np.abs(ref).sum() > 0
    with torch.no_grad():
        net.forward()
    assert any(f is not None for f in net._plan._fused)
    net.blobs["ave"].diff[...] = 1
    net.backward()  # Caffe's layer-by-layer backward from the blobs
    np.testing.assert_allclose(net.blobs["data"].diff, ref, rtol=1e-5, atol=1e-6)


def test_solver_test_net_runs_the_fused_kernels(tmp_path):
    """solver.test runs its passes without grad: through the fused kernels, with the
    weights the train net has just updated."""
    net_path = tmp_path / "train_test.prototxt"
    net_path.write_text("""
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 4 dim: 3 dim: 8 dim: 8 } shape { dim: 4 }
    data_filler { type: "constant" value: 0.3 } data_filler { type: "constant" value: 1 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 6 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
  inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
""")
    solver_path = tmp_path / "solver.prototxt"
    solver_path.write_text(f'net: "{net_path}"\nbase_lr: 0.1\nlr_policy: "fixed"\n'
                           "test_iter: 1\ntest_interval: 1000\nmax_iter: 10\n")
    solver = caffe.SGDSolver(str(solver_path))
    test_net = solver.test_nets[0]
    assert type(test_net._plan) is InferencePlan and type(solver.net._plan) is EagerPlan
    for _ in range(2):
        solver.step(1)
        solver.test_nets[0].share_with(solver.net)
        with torch.no_grad():
            test_net.forward()
        fused = test_net.blobs["loss"].data.copy()
        plan, test_net._plan = test_net._plan, EagerPlan()
        with torch.no_grad():
            test_net.forward()
        test_net._plan = plan
        np.testing.assert_allclose(fused, test_net.blobs["loss"].data, rtol=1e-5)
    assert _fused_layers(test_net) == {"conv": 1}


@pytest.mark.parametrize("change", ["numpy", "kept_array", "torch", "bn_stats", "copy_from"])
def test_weights_changed_after_a_forward_are_used(tmp_path, change):
    net = _net(CONV_NET, tmp_path)
    net.forward()
    kept = net.params["sc1"][0].data  # alive through the test
    if change == "numpy":
        net.params["conv1"][0].data[...] *= -2
    elif change == "kept_array":
        kept[...] = np.linspace(-1, 1, kept.size)
    elif change == "torch":
        with torch.no_grad():
            net.layer_dict["conv2"].params[0].mul_(0.5)
    elif change == "bn_stats":
        net.params["bn1"][2].data[...] = 4.0  # the weight sum: mean and variance halve
    else:
        other = _net(CONV_NET.replace("std: 0.3", "std: 0.7"), tmp_path)
        saved = tmp_path / "w.caffemodel"
        other.save(str(saved))
        net.copy_from(str(saved))
    ref = _eager(net)
    net.forward()
    _check(net, ref)
    kept[...] += 1  # written again while alive: seen again
    ref = _eager(net)
    net.forward()
    _check(net, ref)


def test_reshaped_batch(tmp_path):
    net = _net(CONV_NET, tmp_path)
    net.forward()
    net.blobs["data"].reshape(5, 3, 14, 14)
    net.reshape()
    net.blobs["data"].data[...] = np.random.default_rng(1).normal(size=(5, 3, 14, 14))
    ref = _eager(net)
    net.forward()
    _check(net, ref)


def test_thread_count_change_packs_the_weights_again(tmp_path):
    """oneDNN packs weights for the thread count too (threads.py's governor changes it):
    a new count gives new packed weights, and the same values."""
    if torch.get_num_threads() < 2:
        pytest.skip("needs two threads")
    net = _net(CONV_NET, tmp_path)
    net.forward()
    conv1 = next(f for f in net._plan._fused if f is not None)
    packed = conv1._w
    net.forward()
    assert conv1._w is packed  # same count: kept
    ref = _eager(net)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net.forward()
        assert conv1._w is not packed
        _check(net, ref)
    finally:
        torch.set_num_threads(n)


@pytest.mark.parametrize("kw", [dict(end="bn1"), dict(end="sc1"), dict(start="conv2"), dict(end="conv2")])
def test_partial_forward_splits_a_fused_run(tmp_path, kw):
    net = _net(CONV_NET, tmp_path)
    net.forward()
    ref = _eager(net, **kw)
    net.forward()  # everything back to the full forward's values first
    net.forward(**kw)
    _check(net, ref)


def test_hooks_see_every_layer(tmp_path):
    net = _net(CONV_NET, tmp_path)
    seen: list[int] = []
    net.after_forward(seen.append)
    ref = _eager(net)
    seen.clear()
    net.forward()
    assert seen == list(range(len(net.layers)))
    _check(net, ref)


def test_kept_blob_array_gets_the_new_values(tmp_path):
    net = _net(CONV_NET, tmp_path)
    net.forward()
    conv1 = net.blobs["conv1"].data  # a channels-last result, handed out C-contiguous
    assert conv1.flags.c_contiguous
    net.blobs["data"].data[...] *= -1
    ref = _eager(net)
    net.forward()
    np.testing.assert_allclose(conv1, ref["conv1"], rtol=0, atol=1e-5)


def test_kernel_refused_falls_back_for_good(tmp_path, monkeypatch):
    net = _net(CONV_NET, tmp_path)
    ref = _eager(net)

    def refuse(*args, **kwargs):
        raise RuntimeError("no such primitive")

    monkeypatch.setattr(torch._C._nn, "mkldnn_reorder_conv2d_weight", refuse)
    net.forward()
    assert all(f.broken for f in net._plan._fused if f is not None and f.first != -1
               and net._nodes[f.first].type == "Convolution")
    _check(net, ref, tol=1e-6)


@pytest.mark.parametrize("is_max", [True, False])
@pytest.mark.parametrize("shape,k,s,p", [((1, 16, 9, 9), 3, 2, 0), ((3, 24, 10, 10), 3, 1, 1),
                                         ((2, 8, 7, 7), 7, 1, 0)])
def test_channels_last_pooling_matches_nchw(shape, k, s, p, is_max):
    x = torch.randn(shape)
    x[:, :, ::2, ::2] = 1.0  # ties: the first maximum wins in both
    xl = torch.cat([x[:, :5], x[:, 5:]], 1).contiguous(memory_format=torch.channels_last)
    if shape[0] == 1:  # the odd batch stride torch.cat can leave on one image
        xl = xl.as_strided(xl.shape, (7, *xl.stride()[1:]))
    got = _cpu_kernels.pool2d(xl, is_max, (k, k), (s, s), (p, p), True)
    want = _cpu_kernels.pool2d(x.contiguous(), is_max, (k, k), (s, s), (p, p), True)
    assert torch.equal(got.contiguous(), want)


TEST_FIXTURES = [p for p in fixtures("net") if load(p).meta.get("phase") == "TEST"]


@pytest.mark.parametrize("path", TEST_FIXTURES, ids=[f"{p.parent.name}/{p.stem}" for p in TEST_FIXTURES])
def test_golden_forward_through_the_plan(path):
    """Real Caffe's forward values, with the plan's kernels on (no_grad: a train_test net's
    loss layers would otherwise ask for a graph)."""
    fx = load(path)
    net = build_net(fx)
    net._plan = InferencePlan()
    tol = float(fx.meta.get("tol", 1e-4))
    for key in fx.keys("param"):
        layer, i = key.split("/", 1)[1].rsplit("/", 1)
        net.params[layer][int(i)].data[...] = fx.arrays[key]
    for key in fx.keys("input"):
        name = key.split("/", 1)[1]
        if net.blobs[name].shape != fx.arrays[key].shape:
            net.blobs[name].reshape(*fx.arrays[key].shape)
            net.reshape()
        net.blobs[name].data[...] = fx.arrays[key]
    with torch.no_grad():
        net.forward()
    for key in fx.keys("blob"):
        name = key.split("/", 1)[1]
        if name not in set(fx.meta.get("skip", ())):
            assert_close(net.blobs[name].data, fx.arrays[key], tol, f"{fx.id}: blob {name}")


def test_golden_fixtures_reach_the_fused_kernels():
    """The golden cases above do exercise fusions (BN/Scale/ReLU folding among them)."""
    kinds = set()
    for path in TEST_FIXTURES:
        net = build_net(load(path))
        for f in inference_mod.fusions(net):
            if f is not None:
                kinds.add((type(f).__name__, f.bn is not None, f.scale is not None, f.post))
    assert ("_FusedConv", True, True, "relu") in kinds
    assert ("_FusedConv", False, False, "relu") in kinds
