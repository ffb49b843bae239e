"""Python layers written in torch (``caffe_compat.TorchLayer``): used from a prototxt
like pycaffe layers, backward from autograd, parameters as Caffe blobs, GPU.

The layer classes live here (``module: "test_python_layer_torch"``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import caffe_compat as caffe
from caffe_compat.python_layer import PythonLayerError
from layer_util import build_layer, gradcheck_layer

M = "test_python_layer_torch"


class ChannelScale(caffe.TorchLayer):
    """Caffe's Scale layer (axis 1, one learnable factor per channel, optional bias)."""

    def setup(self, bottom_shapes):
        self.bias = "bias" in self.param_str
        self.w = self.add_blob(bottom_shapes[0][1], filler="constant", value=1.0)
        if self.bias:
            self.b = self.add_blob(bottom_shapes[0][1])

    def forward(self, x):
        shape = (1, -1) + (1,) * (x.dim() - 2)
        y = x * self.w.view(shape)
        return y + self.b.view(shape) if self.bias else y


class WithSubmodule(caffe.TorchLayer):
    def __init__(self, param=None):
        super().__init__(param)
        self.linear = nn.Linear(3, 2)

    def forward(self, x):
        return torch.tanh(self.linear(x))


class PhaseAware(caffe.TorchLayer):
    def forward(self, x):
        return x * (1.0 if self.training else 2.0)


class Nonzero(caffe.TorchLayer):
    """Output size depends on the data: top shapes come from running it."""

    def forward(self, x):
        return x[x > 0] * 3


class Pair(caffe.TorchLayer):
    def forward(self, a, b):
        return a + b, a * b


class Broken(caffe.TorchLayer):
    def forward(self, x):
        raise FloatingPointError("torch layer failed")


class NoSuper(caffe.TorchLayer):
    def __init__(self, param=None):
        pass


def torch_layer(name, cls, bottoms, tops, param_str=None, extra=""):
    b = " ".join(f'bottom: "{x}"' for x in bottoms)
    t = " ".join(f'top: "{x}"' for x in tops)
    ps = f' param_str: "{param_str}"' if param_str else ""
    return (f'layer {{ name: "{name}" type: "Python" {b} {t} {extra} '
            f'python_param {{ module: "{M}" layer: "{cls}"{ps} }} }}\n')


def inputs(*blobs):
    tops = " ".join(f'top: "{b}"' for b, _ in blobs)
    shapes = " ".join("shape { " + " ".join(f"dim: {d}" for d in s) + " }" for _, s in blobs)
    return f'layer {{ name: "input" type: "Input" {tops} input_param {{ {shapes} }} }}\n'


def scale_net(kind: str, bias: bool) -> caffe.Net:
    if kind == "torch":
        middle = torch_layer("scale", "ChannelScale", ["data"], ["out"], "bias" if bias else None)
    else:
        middle = ('layer { name: "scale" type: "Scale" bottom: "data" top: "out" scale_param { bias_term: %s '
                  'filler { type: "constant" value: 1 } } }\n' % ("true" if bias else "false"))
    return caffe.Net("force_backward: true\n" + inputs(("data", (2, 3, 4))) + middle, caffe.TRAIN)


@pytest.mark.parametrize("bias", [False, True], ids=["scale", "scale+bias"])
def test_equals_the_built_in_scale_layer(bias):
    nets = [scale_net(kind, bias) for kind in ("torch", "builtin")]
    rng = np.random.RandomState(0)
    x, dy = rng.randn(2, 3, 4), rng.randn(2, 3, 4)
    values = [rng.randn(*b.data.shape) for b in nets[1].params["scale"]]
    for net in nets:
        for blob, v in zip(net.params["scale"], values):
            blob.data[...] = v
        net.forward(data=x)
        net.backward(out=dy)
    mine, ref = nets
    np.testing.assert_allclose(mine.blobs["out"].data, ref.blobs["out"].data, rtol=1e-6)
    np.testing.assert_allclose(mine.blobs["data"].diff, ref.blobs["data"].diff, rtol=1e-6)
    for a, b in zip(mine.params["scale"], ref.params["scale"]):
        np.testing.assert_allclose(a.diff, b.diff, rtol=1e-5, atol=1e-6)


def test_float64_gradcheck():
    text = f'type: "Python" python_param {{ module: "{M}" layer: "ChannelScale" param_str: "bias" }}'
    layer = build_layer(text, [(2, 3, 4)])
    with torch.no_grad():
        for p in layer.params:
            p.normal_()
    assert gradcheck_layer(layer, [torch.randn(2, 3, 4)])


def test_float64_gradcheck_with_a_submodule():
    layer = build_layer(f'type: "Python" python_param {{ module: "{M}" layer: "WithSubmodule" }}', [(4, 3)])
    assert len(layer.params) == 2  # nn.Linear's weight and bias are the layer's blobs
    assert gradcheck_layer(layer, [torch.randn(4, 3)])


def test_blobs_are_net_params_saved_and_loaded(tmp_path):
    net = scale_net("torch", bias=True)
    assert [tuple(b.data.shape) for b in net.params["scale"]] == [(3,), (3,)]
    user = net.layers[1]
    assert isinstance(user, ChannelScale) and user.blobs is net.params["scale"]
    net.params["scale"][0].data[...] = [1, 2, 3]
    path = tmp_path / "t.caffemodel"
    net.save(str(path))
    other = scale_net("torch", bias=True)
    other.copy_from(str(path))
    np.testing.assert_array_equal(other.params["scale"][0].data, [1, 2, 3])
    rebuilt = caffe.Net(net.to_proto(), caffe.TRAIN)  # blobs stored in the LayerParameter
    np.testing.assert_array_equal(rebuilt.params["scale"][0].data, [1, 2, 3])


def test_solver_updates_torch_layer_blobs(tmp_path):
    if not hasattr(caffe, "get_solver"):
        pytest.skip("caffe_compat.get_solver (the solver) is not there yet")
    (tmp_path / "net.prototxt").write_text(
        inputs(("data", (2, 3, 4)), ("target", (2, 3, 4)))
        + torch_layer("scale", "ChannelScale", ["data"], ["out"])
        + 'layer { name: "loss" type: "EuclideanLoss" bottom: "out" bottom: "target" top: "loss" }\n')
    (tmp_path / "solver.prototxt").write_text(
        f'net: "{tmp_path / "net.prototxt"}" base_lr: 0.1 lr_policy: "fixed" snapshot_after_train: false\n')
    solver = caffe.get_solver(str(tmp_path / "solver.prototxt"))
    rng = np.random.RandomState(1)
    x = rng.randn(2, 3, 4)
    solver.net.blobs["data"].data[...] = x
    solver.net.blobs["target"].data[...] = 2 * x  # the best scale is 2
    for _ in range(50):
        solver.step(1)
    np.testing.assert_allclose(solver.net.params["scale"][0].data, 2, rtol=1e-3)


@pytest.mark.parametrize("phase, factor", [("TRAIN", 1.0), ("TEST", 2.0)])
def test_phase_sets_training(phase, factor):
    net = caffe.Net(inputs(("x", (2,))) + torch_layer("p", "PhaseAware", ["x"], ["y"]), getattr(caffe, phase))
    net.blobs["x"].data[...] = 1
    assert np.all(net.forward()["y"] == factor)


def test_data_dependent_top_shape():
    net = caffe.Net(inputs(("x", (5,))) + torch_layer("nz", "Nonzero", ["x"], ["y"]), caffe.TEST)
    net.blobs["x"].data[...] = [1, -1, 2, -2, 3]
    np.testing.assert_array_equal(net.forward()["y"], [3, 6, 9])


def test_several_bottoms_and_tops():
    net = caffe.Net("force_backward: true\n" + inputs(("a", (2,)), ("b", (2,)))
                    + torch_layer("pair", "Pair", ["a", "b"], ["s", "p"]), caffe.TRAIN)
    out = net.forward(a=np.array([1, 2]), b=np.array([3, 4]))
    np.testing.assert_array_equal(out["s"], [4, 6])
    np.testing.assert_array_equal(out["p"], [3, 8])
    grads = net.backward(s=np.ones(2), p=np.ones(2))
    np.testing.assert_array_equal(grads["a"], [4, 5])  # 1 + b


def test_registered_in_caffeinit(tmp_path, monkeypatch):
    (tmp_path / "torch_layers_for_caffeinit.py").write_text(
        "import caffe\nclass Double(caffe.TorchLayer):\n    def forward(self, x):\n        return 2 * x\n")
    (tmp_path / ".caffeinit").write_text("python_layer torch_double Double torch_layers_for_caffeinit.py\n")
    monkeypatch.chdir(tmp_path)
    net = caffe.Net(inputs(("x", (2,))) + 'layer { name: "d" type: "torch_double" bottom: "x" top: "y" }\n',
                    caffe.TEST)
    net.blobs["x"].data[...] = 3
    assert np.all(net.forward()["y"] == 6)


def test_check_gradient_accepts_torch_layers():
    report = caffe.check_gradient(ChannelScale, [(2, 3, 2)], param_str="bias")
    assert report.ok and [r.what for r in report.rows] == ["bottom 0", "param 0", "param 1"]


def test_errors_name_the_layer_and_keep_the_type():
    # forward already runs when the net is built (for the top shapes)
    message = 'Python layer "bad" .*forward\\(\\) raised FloatingPointError'
    with pytest.raises(FloatingPointError, match=message):
        caffe.Net(inputs(("x", (2,))) + torch_layer("bad", "Broken", ["x"], ["y"]), caffe.TEST)


def test_init_must_call_super():
    with pytest.raises(PythonLayerError, match="must call super\\(\\).__init__\\(param\\)"):
        caffe.Net(inputs(("x", (2,))) + torch_layer("ns", "NoSuper", ["x"], ["y"]), caffe.TEST)


@pytest.mark.cuda
def test_runs_on_cuda():
    caffe.set_mode_gpu()
    try:
        net = scale_net("torch", bias=True)
        net.forward(data=np.ones((2, 3, 4)))
        assert net.blobs["out"].tensor.device.type == "cuda"
        assert net._nodes[1].layer.params[0].device.type == "cuda"
        net.backward(out=np.ones((2, 3, 4)))
        np.testing.assert_allclose(net.params["scale"][0].diff, 8)
    finally:
        caffe.set_mode_cpu()
