"""Python layers as pycaffe runs them (modelled on pycaffe's test_python_layer.py and
test_python_layer_with_param_str.py; written fresh).

This file runs on caffe_compat and, unchanged, on a real pycaffe
(``/path/to/caffe-venv/bin/python -m pytest tests/test_python_layer.py``): the
expectations are Caffe's, except where ``REAL`` marks a documented difference.
The layer classes live in this module; the prototxts name it
(``module: "test_python_layer"``), as pycaffe's own test does.
Python 3.9 syntax, numpy only.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

try:
    import caffe  # a real pycaffe (or caffe_compat's alias, once installed)
except ImportError:
    import caffe_compat as caffe

REAL = caffe.__name__ == "caffe"  # caffe_compat (also under the alias) is named caffe_compat
CALLS = []  # what the layers below were asked to do


class TimesTen(caffe.Layer):
    """Multiplies by ten."""

    def setup(self, bottom, top):
        CALLS.append(("setup", self.param_str, self.phase, len(bottom), len(top)))

    def reshape(self, bottom, top):
        CALLS.append(("reshape",))
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        CALLS.append(("forward",))
        top[0].data[...] = 10 * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        CALLS.append(("backward", list(propagate_down)))
        bottom[0].diff[...] = 10 * top[0].diff


class ParamStrScale(caffe.Layer):
    """Multiplies by the number in its param_str."""

    def setup(self, bottom, top):
        try:
            self.value = float(self.param_str)
        except ValueError:
            raise ValueError("param_str must be a number, got %r" % self.param_str)

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.value * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = self.value * top[0].diff


class FailsInSetup(caffe.Layer):
    def setup(self, bottom, top):
        raise RuntimeError("setup went wrong")


class FailsInForward(TimesTen):
    def forward(self, bottom, top):
        raise KeyError("forward went wrong")


class FailsInBackward(TimesTen):
    def backward(self, top, propagate_down, bottom):
        raise ZeroDivisionError("backward went wrong")


class OneParameter(caffe.Layer):
    """A learnable scalar that backward sets the gradient of to 1."""

    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        self.blobs[0].data[0] = 0

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data

    def backward(self, top, propagate_down, bottom):
        CALLS.append(("param diff seen", float(self.blobs[0].diff[0])))
        self.blobs[0].diff[0] += 1


class Phase(caffe.Layer):
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape()

    def forward(self, bottom, top):
        top[0].data[()] = self.phase

    def backward(self, top, propagate_down, bottom):
        pass


class Counter(caffe.Layer):
    """A data layer: no bottoms; the top grows by one row per forward."""

    def setup(self, bottom, top):
        self.count = 0

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        self.count += 1
        top[0].reshape(self.count, 2)
        top[0].data[...] = self.count

    def backward(self, top, propagate_down, bottom):
        pass


class FirstRowMinusOne(caffe.Layer):
    """Writes only its top's first row: in place, the rest is the bottom."""

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        CALLS.append(("shares data", bool(np.shares_memory(bottom[0].data, top[0].data))))
        top[0].data[0] = -1

    def backward(self, top, propagate_down, bottom):
        CALLS.append(("shares diff", bool(np.shares_memory(bottom[0].diff, top[0].diff))))
        bottom[0].diff[0] *= 5


class SumOfSquares(caffe.Layer):
    """A loss: sum(x^2)."""

    def setup(self, bottom, top):
        top[0].reshape(1)

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        top[0].data[...] = np.sum(bottom[0].data ** 2)

    def backward(self, top, propagate_down, bottom):
        CALLS.append(("top diff", float(top[0].diff[0])))
        bottom[0].diff[...] = 2 * bottom[0].data * top[0].diff


def python_layer(name, cls, bottom, top, extra="", param_str=None):
    bottoms = " ".join("bottom: '%s'" % b for b in bottom)
    tops = " ".join("top: '%s'" % t for t in top)
    ps = "" if param_str is None else "param_str: '%s'" % param_str
    return ("layer { type: 'Python' name: '%s' %s %s %s python_param { module: 'test_python_layer' "
            "layer: '%s' %s } }\n" % (name, bottoms, tops, extra, cls, ps))


INPUT = "input: 'data' input_shape { dim: 10 dim: 9 dim: 8 }\n"


@pytest.fixture
def make_net(tmp_path):
    def make(text, phase=caffe.TRAIN):
        path = tmp_path / ("net%d.prototxt" % len(list(tmp_path.iterdir())))
        path.write_text(text)
        del CALLS[:]
        return caffe.Net(str(path), phase)
    return make


def three_times_ten(make_net):
    return make_net("name: 'pythonnet' force_backward: true\n" + INPUT
                    + python_layer("one", "TimesTen", ["data"], ["one"])
                    + python_layer("two", "TimesTen", ["one"], ["two"])
                    + python_layer("three", "TimesTen", ["two"], ["three"]))


def test_forward(make_net):
    net = three_times_ten(make_net)
    net.blobs["data"].data[...] = 8
    net.forward()
    assert (net.blobs["three"].data == 10 ** 3 * 8).all()


def test_backward(make_net):
    net = three_times_ten(make_net)
    net.forward()  # (Caffe also runs backward without a forward; caffe_compat needs one)
    net.blobs["three"].diff[...] = 7
    net.backward()
    assert (net.blobs["data"].diff == 10 ** 3 * 7).all()


def test_reshape(make_net):
    net = three_times_ten(make_net)
    net.blobs["data"].reshape(4, 4, 4, 4)
    net.forward()
    for blob in net.blobs.values():
        assert blob.data.shape == (4, 4, 4, 4)


def test_setup_once_reshape_before_every_forward(make_net):
    net = make_net(INPUT + python_layer("one", "TimesTen", ["data"], ["one"], param_str="hello"))
    assert CALLS == [("setup", "hello", caffe.TRAIN, 1, 1), ("reshape",)]
    del CALLS[:]
    net.forward()
    net.forward()
    assert CALLS == [("reshape",), ("forward",)] * 2


def test_net_reshape_calls_reshape(make_net):
    net = three_times_ten(make_net)
    del CALLS[:]
    net.reshape()
    assert CALLS == [("reshape",)] * 3


def test_propagate_down_and_top_diff(make_net):
    net = three_times_ten(make_net)
    net.forward()
    del CALLS[:]
    net.blobs["three"].diff[...] = 1
    net.backward()
    assert CALLS == [("backward", [True])] * 3


@pytest.mark.parametrize("scale", [10.0, 2.0, -0.5])
def test_param_str_forward_backward(make_net, scale):
    net = make_net("name: 'pythonnet' force_backward: true\n" + INPUT
                   + python_layer("mul", "ParamStrScale", ["data"], ["mul"], param_str="%g" % scale)
                   + python_layer("mul2", "ParamStrScale", ["mul"], ["mul2"], param_str="2"))
    net.blobs["data"].data[...] = 8
    net.forward()
    assert np.allclose(net.blobs["mul2"].data, 2 * scale * 8)
    net.blobs["mul2"].diff[...] = 7
    net.backward()
    assert np.allclose(net.blobs["data"].diff, 2 * scale * 7)


def test_bad_param_str_raises_the_layers_exception(make_net):
    with pytest.raises(ValueError, match="must be a number"):
        make_net(INPUT + python_layer("mul", "ParamStrScale", ["data"], ["mul"], param_str="ten"))


@pytest.mark.parametrize("cls, when, exc_type", [
    ("FailsInSetup", "setup", RuntimeError),
    ("FailsInForward", "forward", KeyError),
    ("FailsInBackward", "backward", ZeroDivisionError),
], ids=["setup", "forward", "backward"])
def test_exceptions_keep_their_type(make_net, cls, when, exc_type):
    text = "force_backward: true\n" + INPUT + python_layer("bad", cls, ["data"], ["bad"])
    with pytest.raises(exc_type) as info:
        net = make_net(text)
        net.forward()
        net.blobs["bad"].diff[...] = 1
        net.backward()
    if not REAL:
        assert 'layer "bad"' in str(info.value) and when in str(info.value)


def test_parameter(make_net, tmp_path):
    text = ("name: 'pythonnet' force_backward: true\n" + INPUT
            + python_layer("layer", "OneParameter", ["data"], ["top"]))
    net = make_net(text)
    assert list(net.params) == ["layer"]
    net.forward()
    net.backward()
    layer = net.layers[list(net._layer_names).index("layer")]
    assert layer.blobs[0].data[0] == 0
    assert layer.blobs[0].diff[0] == 1
    layer.blobs[0].data[0] += layer.blobs[0].diff[0]
    assert net.params["layer"][0].data[0] == 1
    # the layer's backward sees the accumulated diff, as in Caffe
    net.backward()
    assert CALLS[-2:] == [("param diff seen", 0.0), ("param diff seen", 1.0)]
    assert net.params["layer"][0].diff[0] == 2

    path = str(tmp_path / "p.caffemodel")
    net.save(path)
    layer.blobs[0].data[0] = -1
    net.copy_from(path)
    assert layer.blobs[0].data[0] == 1

    net2 = make_net(text)
    net2.share_with(net)
    layer2 = net2.layers[list(net2._layer_names).index("layer")]
    assert layer2.blobs[0].data[0] == 1


@pytest.mark.parametrize("phase", ["TRAIN", "TEST"])
def test_phase(make_net, phase):
    net = make_net("layer { type: 'Python' name: 'layer' top: 'phase' python_param { "
                   "module: 'test_python_layer' layer: 'Phase' } }\n", getattr(caffe, phase))
    assert net.forward()["phase"] == getattr(caffe, phase)


def test_data_layer_reshapes_in_forward(make_net):
    net = make_net("layer { type: 'Python' name: 'count' top: 'count' python_param { "
                   "module: 'test_python_layer' layer: 'Counter' } }\n")
    for n in (1, 2, 3):
        out = net.forward()["count"]
        assert out.shape == (n, 2) and (out == n).all()


def test_in_place_layer_shares_the_blob(make_net):
    net = make_net("force_backward: true\n" + INPUT
                   + python_layer("a", "FirstRowMinusOne", ["data"], ["a"])
                   + python_layer("b", "FirstRowMinusOne", ["a"], ["a"]))
    net.blobs["data"].data[...] = 3
    del CALLS[:]
    net.forward()
    assert CALLS == [("shares data", False), ("shares data", True)]
    a = net.blobs["a"].data
    assert (a[0] == -1).all() and (a[1:] == 0).all()  # a fresh top: rows 1.. never written
    del CALLS[:]
    net.blobs["a"].diff[...] = 2
    net.backward()
    assert CALLS == [("shares diff", True), ("shares diff", False)]


def test_net_layers_shows_the_python_object(make_net):
    net = three_times_ten(make_net)
    layer = net.layers[1]
    assert isinstance(layer, TimesTen)
    assert layer.type == "Python"


@pytest.mark.parametrize("weight", [2.0, 0.5])
def test_loss_weight_scales_top_diff(make_net, weight):
    net = make_net("force_backward: true\n" + INPUT + python_layer(
        "sq", "SumOfSquares", ["data"], ["sq"], "loss_weight: %g" % weight))
    net.blobs["data"].data[...] = 1
    assert net.forward()["sq"][0] == 10 * 9 * 8
    net.backward()
    assert CALLS[-1] == ("top diff", weight)
    assert np.allclose(net.blobs["data"].diff, 2 * weight)


def test_loss_named_layer_without_loss_weight(make_net):
    """Caffe: weight 0 (trains nothing). caffe_compat: weight 1 (documented difference)."""
    net = make_net("force_backward: true\n" + INPUT
                   + python_layer("my_loss", "SumOfSquares", ["data"], ["loss"]))
    expected = 0.0 if REAL else 1.0
    assert net.blob_loss_weights["loss"] == expected


def test_loss_weight_zero_opts_out(make_net):
    net = make_net("force_backward: true\n" + INPUT + python_layer(
        "my_loss", "SumOfSquares", ["data"], ["loss"], "loss_weight: 0"))
    assert net.blob_loss_weights["loss"] == 0.0


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("GLOG_minloglevel", "2")
    raise SystemExit(pytest.main([__file__, "-q"]))
