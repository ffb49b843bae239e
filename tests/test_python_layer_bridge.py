"""The autograd bridge for numpy Python layers (caffe_compat's side of ``type: "Python"``).

Python layers mixed with torch layers, their parameters seen by the solver and
weight files, the CUDA host-mirror path (emulated on CPU), the loss-weight
default, and errors. The layer classes live here (``module:
"test_python_layer_bridge"``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import caffe_compat as caffe
from caffe_compat import blob as blob_module
from caffe_compat.proto import caffe_pb2
from caffe_compat.python_layer import PythonLayerError

M = "test_python_layer_bridge"
CALLS: list[tuple] = []


class TimesTen(caffe.Layer):
    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = 10 * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        CALLS.append(("backward", list(propagate_down)))
        bottom[0].diff[...] = 10 * top[0].diff


class LearnableScale(caffe.Layer):
    """y = w * x (w one learnable scalar, initialised from param_str); counts forwards in blob 1."""

    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        self.blobs.add_blob(1)
        self.blobs[0].data[0] = float(self.param_str or 1)

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        self.blobs[1].data[0] += 1  # written in forward: must persist (and reach the device)
        top[0].data[...] = self.blobs[0].data[0] * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[0] += np.sum(top[0].diff * bottom[0].data)
        if propagate_down[0]:
            bottom[0].diff[...] = self.blobs[0].data[0] * top[0].diff


class LateBlob(TimesTen):
    def forward(self, bottom, top):
        self.blobs.add_blob(3)


class PartialWriter(caffe.Layer):
    """Writes only top[0][0] and leaves top[1] alone."""

    def reshape(self, bottom, top):
        top[0].reshape(3)
        top[1].reshape(2)

    def forward(self, bottom, top):
        top[0].data[0] += 1

    def backward(self, top, propagate_down, bottom):
        pass


class LabelAware(caffe.Layer):
    def setup(self, bottom, top):
        top[0].reshape(1)

    def forward(self, bottom, top):
        top[0].data[0] = np.sum(bottom[0].data * bottom[1].data)

    def backward(self, top, propagate_down, bottom):
        CALLS.append(("propagate_down", list(propagate_down)))
        bottom[0].diff[...] = bottom[1].data * top[0].diff[0]


def layer(name, cls, bottoms, tops, param_str=None, extra=""):
    b = " ".join(f'bottom: "{x}"' for x in bottoms)
    t = " ".join(f'top: "{x}"' for x in tops)
    ps = f' param_str: "{param_str}"' if param_str is not None else ""
    return (f'layer {{ name: "{name}" type: "Python" {b} {t} {extra} '
            f'python_param {{ module: "{M}" layer: "{cls}"{ps} }} }}\n')


def inputs(*blobs):
    tops = " ".join(f'top: "{b}"' for b, _ in blobs)
    shapes = " ".join("shape { " + " ".join(f"dim: {d}" for d in s) + " }" for _, s in blobs)
    return f'layer {{ name: "input" type: "Input" {tops} input_param {{ {shapes} }} }}\n'


def classifier(middle: str) -> str:
    """ip1 -> middle (bottom ip1, top mid) -> ip2 -> SoftmaxWithLoss."""
    return inputs(("data", (4, 3)), ("label", (4,))) + """
force_backward: true
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 1 } } }
""" + middle + """
layer { name: "ip2" type: "InnerProduct" bottom: "mid" top: "ip2"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""


def run_pass(net, seed=0):
    rng = np.random.RandomState(seed)
    net.blobs["data"].data[...] = rng.randn(4, 3)
    net.blobs["label"].data[...] = rng.randint(0, 3, size=4)
    net.forward()
    net.backward()
    return net


def copy_params(src, dst, layers=("ip1", "ip2")):
    for name in layers:
        for a, b in zip(src.params[name], dst.params[name]):
            b.data[...] = a.data


def test_mixed_with_torch_layers_equals_the_built_in_equivalent():
    py = caffe.Net(classifier(layer("ten", "TimesTen", ["ip1"], ["mid"])), caffe.TRAIN)
    power = 'layer { name: "ten" type: "Power" bottom: "ip1" top: "mid" power_param { scale: 10 } }'
    ref = caffe.Net(classifier(power), caffe.TRAIN)
    copy_params(py, ref)
    run_pass(py), run_pass(ref)
    for name in ("ip1", "mid", "ip2", "loss"):
        np.testing.assert_allclose(py.blobs[name].data, ref.blobs[name].data, rtol=1e-6)
    np.testing.assert_allclose(py.blobs["data"].diff, ref.blobs["data"].diff, rtol=1e-5, atol=1e-7)
    for name in ("ip1", "ip2"):
        for a, b in zip(py.params[name], ref.params[name]):
            np.testing.assert_allclose(a.diff, b.diff, rtol=1e-5, atol=1e-7)


def scale_net(extra_param=""):
    return caffe.Net(classifier(layer("scale", "LearnableScale", ["ip1"], ["mid"], "2", extra_param)),
                     caffe.TRAIN)


def test_learnable_blobs_are_net_params_and_receive_gradients():
    net = run_pass(scale_net())
    assert list(net.params) == ["ip1", "scale", "ip2"]
    w, count = net.params["scale"]
    assert w.data[0] == 2 and count.data[0] == 1
    expected = np.sum(net.blobs["mid"].diff * net.blobs["ip1"].data)
    assert w.diff[0] == pytest.approx(expected, rel=1e-5)
    assert net.layers[2].blobs[0] is w  # the user's self.blobs are the net's param blobs


def test_solver_updates_python_layer_blobs(tmp_path):
    if not hasattr(caffe, "get_solver"):
        pytest.skip("caffe_compat.get_solver (the solver) is not there yet")
    net_path = tmp_path / "net.prototxt"
    net_path.write_text(classifier(layer("scale", "LearnableScale", ["ip1"], ["mid"], "2")))
    (tmp_path / "solver.prototxt").write_text(
        f'net: "{net_path}" base_lr: 0.1 lr_policy: "fixed" max_iter: 1 snapshot_after_train: false\n')
    solver = caffe.get_solver(str(tmp_path / "solver.prototxt"))
    net = solver.net
    rng = np.random.RandomState(0)
    net.blobs["data"].data[...] = rng.randn(4, 3)
    net.blobs["label"].data[...] = rng.randint(0, 3, size=4)
    probe = caffe.Net(str(net_path), caffe.TRAIN)
    for name in ("ip1", "scale", "ip2"):
        for a, b in zip(net.params[name], probe.params[name]):
            b.data[...] = a.data
    probe.forward(data=net.blobs["data"].data, label=net.blobs["label"].data)
    probe.backward()
    g = probe.params["scale"][0].diff[0]
    solver.step(1)
    assert net.params["scale"][0].data[0] == pytest.approx(2 - 0.1 * g, rel=1e-5)


def test_caffemodel_stores_and_restores_python_blobs(tmp_path):
    net = run_pass(scale_net())
    net.params["scale"][0].data[0] = 0.75
    path = tmp_path / "m.caffemodel"
    net.save(str(path))
    saved = caffe_pb2.NetParameter()
    saved.ParseFromString(path.read_bytes())
    lp = next(lp for lp in saved.layer if lp.name == "scale")
    assert lp.type == "Python" and len(lp.blobs) == 2 and lp.blobs[0].data[0] == 0.75
    other = scale_net()
    other.copy_from(str(path))
    assert other.params["scale"][0].data[0] == 0.75
    assert other.layers[2].blobs[0].data[0] == 0.75  # what the layer's own code reads


def test_blobs_stored_in_the_layer_parameter_fill_add_blob():
    net = run_pass(scale_net())
    net.params["scale"][0].data[0] = -3
    rebuilt = caffe.Net(net.to_proto(), caffe.TRAIN)
    assert rebuilt.params["scale"][0].data[0] == -3


def test_add_blob_after_setup_is_an_error():
    net = caffe.Net(inputs(("data", (2,))) + layer("late", "LateBlob", ["data"], ["out"]), caffe.TEST)
    with pytest.raises(PythonLayerError, match='Python layer "late".*add_blob\\(\\) called after the net'):
        net.forward()


def test_partial_writes_persist_and_unwritten_tops_are_zero():
    net = caffe.Net(inputs(("data", (2,))) + layer("pw", "PartialWriter", ["data"], ["a", "b"]), caffe.TEST)
    first = net.forward()
    assert list(first["a"]) == [1, 0, 0] and list(first["b"]) == [0, 0]
    assert list(net.forward()["a"]) == [2, 0, 0]  # top memory kept across passes, as in Caffe


def test_share_in_parallel_is_accepted():
    layer = ('layer { name: "t" type: "Python" bottom: "data" top: "out" '
             f'python_param {{ module: "{M}" layer: "TimesTen" share_in_parallel: true }} }}')
    net = caffe.Net(inputs(("data", (2,))) + layer, caffe.TEST)
    net.blobs["data"].data[...] = 1
    assert np.all(net.forward()["out"] == 10)


def test_label_bottom_gets_propagate_down_false():
    net = caffe.Net(inputs(("x", (3,)), ("label", (3,))) + "force_backward: true\n"
                    + layer("l", "LabelAware", ["x", "label"], ["loss"], extra="loss_weight: 1"), caffe.TRAIN)
    del CALLS[:]
    net.forward()
    net.backward()
    assert CALLS == [("propagate_down", [True, True])]  # force_backward reaches both bottoms
    net2 = caffe.Net(inputs(("x", (3, 2)), ("label", (3, 3)))
                     + 'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "p" '
                       'inner_product_param { num_output: 3 } }\n'
                     + layer("l", "LabelAware", ["p", "label"], ["loss"], extra="loss_weight: 1"),
                     caffe.TRAIN)
    del CALLS[:]
    net2.forward()
    net2.backward()
    assert CALLS == [("propagate_down", [True, False])]  # labels need no gradient


def test_backward_twice_reuses_the_graph():
    net = caffe.Net("force_backward: true\n" + inputs(("data", (2, 3)))
                    + layer("ten", "TimesTen", ["data"], ["out"]), caffe.TRAIN)
    net.forward()
    net.blobs["out"].diff[...] = 1
    net.backward()
    net.blobs["out"].diff[...] = 2
    net.backward()
    assert np.all(net.blobs["data"].diff == 20)


def test_deploy_net_builds_no_graph():
    net = caffe.Net(inputs(("data", (2, 3))) + layer("ten", "TimesTen", ["data"], ["out"]), caffe.TEST)
    net.forward()
    assert not net.blobs["out"].tensor.requires_grad


def test_forward_with_start_and_end():
    net = caffe.Net(inputs(("data", (2,))) + layer("a", "TimesTen", ["data"], ["a"])
                    + layer("b", "TimesTen", ["a"], ["b"]), caffe.TEST)
    net.blobs["data"].data[...] = 1
    net.forward(end="a")
    assert np.all(net.blobs["a"].data == 10) and np.all(net.blobs["b"].data == 0)
    net.forward(start="b")
    assert np.all(net.blobs["b"].data == 100)


# ------------------------------------------------------------ CUDA host mirrors
@pytest.fixture
def mirrored(monkeypatch):
    """Run Blob's CUDA host-mirror code on CPU tensors."""
    monkeypatch.setattr(blob_module, "_MIRROR_CPU", True)
    yield
    blob_module.flush_host_writes()


def test_host_mirror_path_gives_the_same_numbers(mirrored):
    net = run_pass(scale_net(), seed=3)
    blob_module._MIRROR_CPU = False
    ref = scale_net()
    copy_params(net, ref)
    ref.params["scale"][0].data[0] = 2
    run_pass(ref, seed=3)
    blob_module._MIRROR_CPU = True
    np.testing.assert_allclose(net.blobs["loss"].data, ref.blobs["loss"].data, rtol=1e-6)
    np.testing.assert_allclose(net.blobs["data"].diff, ref.blobs["data"].diff, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(net.params["scale"][0].diff, ref.params["scale"][0].diff, rtol=1e-5)


def test_host_mirror_writes_reach_the_tensors(mirrored):
    net = scale_net()
    for k in (1, 2, 3):
        run_pass(net)
        impl = net._nodes[2].layer._impl
        mine = set(impl.bottoms) | set(impl.tops) | set(impl.user.blobs)
        assert not mine & blob_module._pending_uploads  # the layer left nothing half-synced
        assert float(net._nodes[2].layer.params[1].detach()[0]) == k  # the forward counter, on the "device"


@pytest.mark.cuda
def test_python_layers_on_cuda():
    caffe.set_mode_gpu()
    net = run_pass(scale_net(), seed=2)
    assert net._nodes[2].layer.params[0].device.type == "cuda"
    caffe.set_mode_cpu()
    ref = scale_net()
    copy_params(net, ref)
    ref.params["scale"][0].data[0] = 2
    run_pass(ref, seed=2)
    np.testing.assert_allclose(net.params["scale"][0].diff, ref.params["scale"][0].diff, rtol=1e-4)
    np.testing.assert_allclose(net.blobs["data"].diff, ref.blobs["data"].diff, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------- loss weights
LOSS_CASES = [
    # layer name, top, later consumer, loss_weight field -> expected weight of the top
    ("my_loss", "out", False, "", 1.0),
    ("layer", "loss", False, "", 1.0),
    ("Layer", "LossTop", False, "", 1.0),
    ("layer", "out", False, "", 0.0),
    ("my_loss", "loss", False, "loss_weight: 0", 0.0),
    ("my_loss", "loss", False, "loss_weight: 3", 3.0),
    ("loss_prep", "loss_input", True, "", 0.0),
]


@pytest.mark.parametrize("name, top, consumed, field, expected", LOSS_CASES,
                         ids=["layer-name", "top-name", "case-insensitive", "not-a-loss", "opt-out",
                              "explicit", "feeds-another-layer"])
def test_default_loss_weight(name, top, consumed, field, expected):
    text = inputs(("x", (3,)), ("label", (3,)))
    text += layer(name, "LabelAware", ["x", "label"], [top], extra=field)
    if consumed:
        text += f'layer {{ name: "after" type: "Power" bottom: "{top}" top: "after" }}\n'
    net = caffe.Net(text, caffe.TRAIN)
    assert net.blob_loss_weights[top] == expected


def test_loss_weight_default_covers_only_the_first_top():
    net = caffe.Net(inputs(("data", (2,))) + layer("two_losses", "PartialWriter", ["data"], ["a", "b"]),
                    caffe.TRAIN)
    assert (net.blob_loss_weights["a"], net.blob_loss_weights["b"]) == (1.0, 0.0)


# ------------------------------------------------------------------- errors
def test_misuse_of_add_blob_names_the_layer():
    net = caffe.Net(inputs(("data", (2,))) + layer("bad", "LateBlob", ["data"], ["out"]), caffe.TEST)
    with pytest.raises(PythonLayerError, match='Python layer "bad"'):
        net.forward()


def test_error_in_user_code_keeps_its_type_names_the_layer_and_chains():
    text = inputs(("data", (2,))) + layer("y", "LabelAware", ["data"], ["z"], extra="loss_weight: 0")
    net = caffe.Net(text, caffe.TEST)
    with pytest.raises(IndexError) as info:
        net.forward()  # LabelAware reads bottom[1], which this net does not give it
    assert isinstance(info.value, PythonLayerError)
    where = 'Python layer "y" (test_python_layer_bridge.LabelAware)'
    assert f"{where}: forward() raised IndexError" in str(info.value)
    assert isinstance(info.value.__cause__, IndexError) and info.value.__cause__.__traceback__ is not None


def test_torch_autograd_sees_one_node_per_python_layer():
    text = "force_backward: true\n" + inputs(("data", (2,))) + layer("a", "TimesTen", ["data"], ["a"])
    net = caffe.Net(text, caffe.TRAIN)
    net.forward()
    out = net.blobs["a"].tensor
    assert out.requires_grad and type(out.grad_fn).__name__ == "_BridgeBackward"
    assert isinstance(out, torch.Tensor)
