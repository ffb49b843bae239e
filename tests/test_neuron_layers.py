"""Neuron layers beyond the golden fixtures (tests/golden/cases/neuron.py):

* float64 gradchecks of every differentiable neuron layer, away from kinks;
* Caffe's hand-written backward quirks that autograd would not give
  (Power's NaN at 0, the in-place formulas);
* Dropout: phase semantics, scaling, seeded reproducibility;
* Threshold's missing backward, and error messages for bad parameters.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from layer_util import build_layer, gradcheck_layer, run_layer

import caffe_compat as caffe
from caffe_compat.errors import LayerError, ShapeError, UnsupportedError
from caffe_compat.proto import caffe_pb2

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST
SHAPE = (2, 3, 2, 2)


def _away(*shape: int, seed: int = 0, low: float | None = None, high: float | None = None,
          margin: float = 0.1) -> torch.Tensor:
    """float64 values at least ``margin`` away from 0 (or uniform in [low, high])."""
    rng = np.random.RandomState(seed)
    if low is not None:
        x = rng.uniform(low, high, size=shape)
    else:
        x = rng.randn(*shape)
        x = np.where(np.abs(x) < margin, np.sign(x + 1e-12) * margin * 1.5, x)
    return torch.tensor(x, dtype=torch.float64)


# ===================================================================== gradcheck
GRAD_CASES = [
    # (id, layer text, bottom maker)
    ("relu", 'type: "ReLU"', lambda: _away(*SHAPE)),
    ("relu_leaky", 'type: "ReLU" relu_param { negative_slope: 0.1 }', lambda: _away(*SHAPE)),
    ("relu_negative_slope", 'type: "ReLU" relu_param { negative_slope: -0.4 }', lambda: _away(*SHAPE)),
    ("prelu", 'type: "PReLU"', lambda: _away(*SHAPE)),
    ("prelu_shared", 'type: "PReLU" prelu_param { channel_shared: true }', lambda: _away(*SHAPE)),
    ("prelu_2d", 'type: "PReLU" prelu_param { filler { type: "uniform" } }', lambda: _away(4, 3)),
    ("elu", 'type: "ELU" elu_param { alpha: 0.7 }', lambda: _away(*SHAPE)),
    ("sigmoid", 'type: "Sigmoid"', lambda: _away(*SHAPE)),
    ("tanh", 'type: "TanH"', lambda: _away(*SHAPE)),
    ("absval", 'type: "AbsVal"', lambda: _away(*SHAPE)),
    ("bnll", 'type: "BNLL"', lambda: _away(*SHAPE) * 3),
    ("power_square", 'type: "Power" power_param { power: 2 scale: 0.5 shift: -0.3 }', lambda: _away(*SHAPE)),
    ("power_cube_no_shift", 'type: "Power" power_param { power: 3 scale: 1.5 }', lambda: _away(*SHAPE)),
    ("power_general", 'type: "Power" power_param { power: 0.5 scale: 2 shift: 1 }',
     lambda: _away(*SHAPE, low=-0.4, high=2.0)),
    ("power_negative", 'type: "Power" power_param { power: -1.5 shift: 3 }', lambda: _away(*SHAPE)),
    ("power_linear", 'type: "Power" power_param { scale: -2 shift: 1 }', lambda: _away(*SHAPE)),
    ("exp", 'type: "Exp"', lambda: _away(*SHAPE)),
    ("exp_base", 'type: "Exp" exp_param { base: 3 scale: 0.5 shift: -1 }', lambda: _away(*SHAPE)),
    ("log", 'type: "Log"', lambda: _away(*SHAPE, low=0.2, high=3.0)),
    ("log_base", 'type: "Log" log_param { base: 10 scale: 2 shift: 5 }',
     lambda: _away(*SHAPE, low=-2, high=3)),
    ("dropout_test", 'type: "Dropout"', lambda: _away(*SHAPE)),
]


@pytest.mark.parametrize("text,make", [c[1:] for c in GRAD_CASES], ids=[c[0] for c in GRAD_CASES])
def test_gradcheck(text, make):
    x = make()
    phase = TEST if "Dropout" in text else TRAIN
    layer = build_layer(text, [tuple(x.shape)], phase=phase)
    assert gradcheck_layer(layer, [x])


# ============================================================ Caffe's backward quirks
def _grad(text: str, x: torch.Tensor, top_diff: torch.Tensor | None = None, inplace: bool = False,
          phase: int = TRAIN) -> tuple[torch.Tensor, torch.Tensor]:
    names = ' bottom: "x" top: "x"' if inplace else ""
    layer = build_layer(text + names, [tuple(x.shape)], phase=phase)
    x = x.clone().float().requires_grad_(True)
    (y,) = run_layer(layer, x)
    y.backward(torch.ones_like(y) if top_diff is None else top_diff)
    return y.detach(), x.grad


def test_power_gradient_at_zero_is_nan_like_caffe():
    _, g = _grad('type: "Power" power_param { power: 3 }', torch.tensor([0.0, 2.0]))
    assert torch.isnan(g[0]) and g[1] == pytest.approx(12.0)


def test_power_square_gradient_at_zero_is_finite():
    _, g = _grad('type: "Power" power_param { power: 2 }', torch.tensor([0.0, 2.0]))
    assert g.tolist() == [0.0, 4.0]


@pytest.mark.parametrize("power,scale,shift", [(0, 3, 2), (2, 0, 1.5)], ids=["power0", "scale0"])
def test_power_constant_output(power, scale, shift):
    y, g = _grad(f'type: "Power" power_param {{ power: {power} scale: {scale} shift: {shift} }}',
                 torch.tensor([-1.0, 0.0, 5.0]))
    expected = 1.0 if power == 0 else shift ** power
    assert y.tolist() == [expected] * 3 and g.tolist() == [0.0] * 3


@pytest.mark.parametrize("text", [
    'type: "Power" power_param { power: 3 scale: 0.5 shift: 0.25 }',
    'type: "Power" power_param { scale: 0.5 }',
    'type: "Log" log_param { scale: 2 shift: 5 }',
], ids=["power", "power_linear", "log"])
def test_inplace_power_log_ignore_the_top_diff(text):
    """Caffe overwrites the shared top/bottom diff before reading it."""
    x = torch.tensor([0.5, 1.0, 2.0])
    _, g1 = _grad(text, x, torch.tensor([1.0, 1.0, 1.0]), inplace=True)
    _, g2 = _grad(text, x, torch.tensor([3.0, -2.0, 0.5]), inplace=True)
    torch.testing.assert_close(g1, g2)


def test_inplace_relu_negative_slope_uses_output_sign():
    x = torch.tensor([-2.0, 3.0])
    _, normal = _grad('type: "ReLU" relu_param { negative_slope: -0.5 }', x)
    _, inplace = _grad('type: "ReLU" relu_param { negative_slope: -0.5 }', x, inplace=True)
    assert normal.tolist() == [-0.5, 1.0] and inplace.tolist() == [1.0, 1.0]


def test_inplace_bnll_uses_output():
    x = torch.tensor([-1.0, 0.0, 2.0])
    y, g = _grad('type: "BNLL"', x, inplace=True)
    torch.testing.assert_close(g, torch.sigmoid(y))


def test_bnll_large_inputs_finite():
    y, g = _grad('type: "BNLL"', torch.tensor([-200.0, 200.0]))
    assert torch.isfinite(y).all() and g.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("text", ['type: "ReLU"', 'type: "Sigmoid"', 'type: "ELU"', 'type: "Exp"',
                                  'type: "TanH"', 'type: "PReLU"'])
def test_inplace_same_as_normal_where_caffe_agrees(text):
    x = _away(5, 3).float()
    d = torch.linspace(-1, 1, 15).reshape(5, 3)
    y1, g1 = _grad(text, x, d)
    y2, g2 = _grad(text, x, d, inplace=True)
    torch.testing.assert_close((y1, g1), (y2, g2))


def test_prelu_blob_shapes():
    assert build_layer('type: "PReLU"', [(2, 5, 3)]).params[0].shape == (5,)
    shared = build_layer('type: "PReLU" prelu_param { channel_shared: true }', [(2, 5, 3)])
    assert shared.params[0].shape == () and shared.params[0].item() == 0.25


# ===================================================================== Dropout
DROP = 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 64 dim: 100 } } }\n' \
       'layer { name: "drop" type: "Dropout" bottom: "x" top: "y" dropout_param { dropout_ratio: 0.3 } }\n'


def _dropout_net(phase: int) -> "caffe.Net":
    net = caffe.Net("force_backward: true\n" + DROP, phase)
    net.blobs["x"].data[...] = np.random.RandomState(0).uniform(1, 2, size=(64, 100))
    return net


def test_dropout_train_scales_kept_values():
    net = _dropout_net(caffe.TRAIN)
    net.forward()
    x, y = net.blobs["x"].data, net.blobs["y"].data
    kept = y != 0
    assert kept.mean() == pytest.approx(0.7, abs=0.02)
    np.testing.assert_allclose(y[kept], x[kept] * np.float32(1 / 0.7), rtol=1e-6)
    net.blobs["y"].diff[...] = 1
    net.backward()
    np.testing.assert_allclose(net.blobs["x"].diff, kept / np.float32(0.7), rtol=1e-6)


def test_dropout_test_phase_is_identity():
    net = _dropout_net(caffe.TEST)
    net.forward()
    np.testing.assert_array_equal(net.blobs["y"].data, net.blobs["x"].data)


def test_dropout_new_mask_each_forward_and_seeded():
    def masks(seed):
        caffe.set_random_seed(seed)
        net = _dropout_net(caffe.TRAIN)
        out = []
        for _ in range(2):
            net.forward()
            out.append(net.blobs["y"].data != 0)
        return out
    a, b, c = masks(7), masks(7), masks(8)
    assert not np.array_equal(a[0], a[1])
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_dropout_ratio_edges(ratio):
    layer = build_layer(f'type: "Dropout" dropout_param {{ dropout_ratio: {ratio} }}', [(3, 4)])
    x = torch.ones(3, 4)
    (y,) = run_layer(layer, x)
    if ratio == 0:
        assert torch.equal(y, x)
    else:  # Caffe: mask 0 times scale inf
        assert torch.isnan(y).all()


def test_dropout_bad_ratio():
    with pytest.raises(LayerError, match=r'Dropout layer "l".*\[0, 1\]'):
        build_layer('type: "Dropout" dropout_param { dropout_ratio: -0.5 }', [(3, 4)])
    build_layer('type: "Dropout" dropout_param { dropout_ratio: 1.5 }', [(3, 4)], phase=TEST)


# ===================================================================== Threshold
THRESH = 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n' \
         'layer { name: "th" type: "Threshold" bottom: "x" top: "y" threshold_param { threshold: 0.5 } }\n'


def test_threshold_forward_without_gradient():
    net = caffe.Net(THRESH, caffe.TEST)
    net.blobs["x"].data[...] = [[0.4, 0.5, 0.6], [-1, 2, 0.5001]]
    net.forward()
    assert net.blobs["y"].data.tolist() == [[0, 0, 1], [0, 1, 1]]
    net.backward()  # nothing needs the gradient: no error, as in Caffe


def test_threshold_backward_raises():
    net = caffe.Net("force_backward: true\n" + THRESH, caffe.TRAIN)
    net.forward()
    net.blobs["y"].diff[...] = 1
    with pytest.raises(UnsupportedError, match='Threshold layer "th": has no backward'):
        net.backward()


# ===================================================================== errors
ERRORS = [
    # (id, layer text, bottom shapes, exception, message fragment)
    ("absval_inplace", 'type: "AbsVal" bottom: "x" top: "x"', [(2, 3)], LayerError, "in-place"),
    ("prelu_1d", 'type: "PReLU"', [(4,)], ShapeError, "at least 2 axes"),
    ("exp_base_negative", 'type: "Exp" exp_param { base: -2 }', [(2,)], LayerError, "strictly positive"),
    ("exp_base_zero", 'type: "Exp" exp_param { base: 0 }', [(2,)], LayerError, "strictly positive"),
    ("log_base_negative", 'type: "Log" log_param { base: -3 }', [(2,)], LayerError, "strictly positive"),
    ("log_base_one", 'type: "Log" log_param { base: 1 }', [(2,)], LayerError, "base 1"),
    ("prelu_bad_filler", 'type: "PReLU" prelu_param { filler { type: "xavier" } channel_shared: true }',
     [(2, 3)], LayerError, "xavier filler"),
]


@pytest.mark.parametrize("text,shapes,exc,fragment", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_bad_layer_raises(text, shapes, exc, fragment):
    with pytest.raises(exc, match=fragment) as info:
        build_layer(text, shapes, name="bad")
    assert 'layer "bad"' in str(info.value)


def test_prelu_channel_mismatch_at_forward():
    layer = build_layer('type: "PReLU"', [(2, 3)])
    with pytest.raises(ShapeError, match='PReLU layer "l".*3 channels'):
        run_layer(layer, torch.zeros(2, 4))


@pytest.mark.parametrize("type_", ["ReLU", "Sigmoid", "Power", "Dropout"])
def test_neuron_bottom_count_checked(type_):
    text = ('layer { name: "in" type: "Input" top: "a" top: "b" input_param { shape { dim: 2 } } }\n'
            f'layer {{ name: "n" type: "{type_}" bottom: "a" bottom: "b" top: "y" }}')
    with pytest.raises(LayerError, match=f'{type_} layer "n": expected 1 bottom'):
        caffe.Net(text, caffe.TEST)


def test_inplace_absval_in_a_net_names_the_file():
    text = ('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 } } }\n'
            'layer { name: "abs" type: "AbsVal" bottom: "x" top: "x" }')
    with pytest.raises(LayerError, match='AbsVal layer "abs"'):
        caffe.Net(text, caffe.TEST)
