"""Common layers beyond the golden fixtures (tests/golden/cases/common.py):

* float64 gradchecks (BatchNorm, Scale, Bias, Eltwise, Concat, Slice, Flatten,
  Reshape, Crop, Softmax, InnerProduct, Split);
* invariants: BatchNorm's statistics updates and phases, views that share
  memory, Eltwise MAX's tie routing, Silence, DummyData's refill rules;
* errors: bad parameters, mismatched shapes, in-place use Caffe refuses —
  each asserting the exception type and that the message names the layer.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from layer_util import build_layer, gradcheck_layer, run_layer

import caffe_compat as caffe
from caffe_compat.errors import LayerError, NetError, ShapeError
from caffe_compat.proto import caffe_pb2

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.tensor(np.random.RandomState(seed).randn(*shape))


def _distinct(*shape: int, seed: int = 0) -> torch.Tensor:
    n = int(np.prod(shape))
    return torch.tensor(np.random.RandomState(seed).permutation(n).reshape(shape) / n * 4 - 2)


def _nonzero(*shape: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.RandomState(seed)
    return torch.tensor(rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1, 1], size=shape))


def _net(layers: str, *inputs: tuple[str, tuple[int, ...]], phase: int = caffe.TRAIN,
         force_backward: bool = True) -> "caffe.Net":
    tops = " ".join(f'top: "{n}"' for n, _ in inputs)
    shapes = " ".join("shape { " + " ".join(f"dim: {d}" for d in s) + " }" for _, s in inputs)
    head = "force_backward: true\n" if force_backward else ""
    text = head + (f'layer {{ name: "in" type: "Input" {tops} input_param {{ {shapes} }} }}\n'
                   if inputs else "") + layers
    return caffe.Net(text, phase)


# ===================================================================== gradcheck
GRAD_CASES = [
    # (id, layer text, bottoms maker, phase, bottoms to check)
    ("bn_train_4d", 'type: "BatchNorm"', lambda: [_randn(3, 2, 2, 3)], TRAIN, None),
    ("bn_train_2d_eps", 'type: "BatchNorm" batch_norm_param { eps: 0.1 }', lambda: [_randn(5, 3)], TRAIN,
     None),
    ("bn_global", 'type: "BatchNorm"', lambda: [_randn(2, 3, 4)], TEST, None),
    ("scale", 'type: "Scale" scale_param { bias_term: true filler { type: "gaussian" } }',
     lambda: [_randn(2, 3, 2)], TRAIN, None),
    ("scale_axis_num_axes", 'type: "Scale" scale_param { axis: 1 num_axes: -1 filler { type: "gaussian" } }',
     lambda: [_randn(2, 3, 2)], TRAIN, None),
    ("scale_scalar", 'type: "Scale" scale_param { num_axes: 0 filler { type: "gaussian" } }',
     lambda: [_randn(2, 3)], TRAIN, None),
    ("scale_two_bottoms", 'type: "Scale" scale_param { axis: 0 bias_term: true }',
     lambda: [_randn(2, 3, 2), _randn(2, 3, seed=1)], TRAIN, None),
    ("bias", 'type: "Bias" bias_param { filler { type: "gaussian" } }', lambda: [_randn(2, 3, 2)], TRAIN,
     None),
    ("bias_two_bottoms", 'type: "Bias" bias_param { axis: -1 }',
     lambda: [_randn(2, 3, 4), _randn(4, seed=1)], TRAIN, None),
    ("eltwise_sum_coeff", 'type: "Eltwise" eltwise_param { coeff: 2 coeff: -0.5 coeff: 1 }',
     lambda: [_randn(2, 3, seed=i) for i in range(3)], TRAIN, None),
    ("eltwise_prod", 'type: "Eltwise" eltwise_param { operation: PROD }',
     lambda: [_randn(2, 3, seed=i) for i in range(3)], TRAIN, None),
    ("eltwise_prod_unstable", 'type: "Eltwise" eltwise_param { operation: PROD stable_prod_grad: false }',
     lambda: [_nonzero(2, 3, seed=i) for i in range(3)], TRAIN, None),
    ("eltwise_max", 'type: "Eltwise" eltwise_param { operation: MAX }',
     lambda: [_distinct(2, 3, seed=i) + i * 0.01 for i in range(3)], TRAIN, None),
    ("concat", 'type: "Concat" concat_param { axis: -1 }',
     lambda: [_randn(2, 2, 1), _randn(2, 2, 3, seed=1)], TRAIN, None),
    ("slice", 'type: "Slice" slice_param { slice_point: 1 slice_point: 3 }', lambda: [_randn(2, 4, 2)],
     TRAIN, None),
    ("flatten", 'type: "Flatten" flatten_param { axis: 1 end_axis: 2 }', lambda: [_randn(2, 3, 2, 2)],
     TRAIN, None),
    ("reshape", 'type: "Reshape" reshape_param { shape { dim: 0 dim: -1 } }', lambda: [_randn(2, 3, 2)],
     TRAIN, None),
    ("crop", 'type: "Crop" crop_param { axis: 1 offset: 1 offset: 0 }',
     lambda: [_randn(2, 4, 3), _randn(2, 2, 2, seed=1)], TRAIN, [0]),
    ("softmax_axis", 'type: "Softmax" softmax_param { axis: 2 }', lambda: [_randn(2, 3, 4)], TRAIN, None),
    ("ip_transpose_axis", 'type: "InnerProduct" inner_product_param { num_output: 3 axis: 2 transpose: true '
     'weight_filler { type: "gaussian" } bias_filler { type: "gaussian" } }', lambda: [_randn(2, 2, 2, 3)],
     TRAIN, None),
    ("ip_no_bias", 'type: "InnerProduct" inner_product_param { num_output: 2 bias_term: false '
     'weight_filler { type: "gaussian" } }', lambda: [_randn(3, 4)], TRAIN, None),
]


@pytest.mark.parametrize("text,make,phase,check", [c[1:] for c in GRAD_CASES], ids=[c[0] for c in GRAD_CASES])
def test_gradcheck(text, make, phase, check):
    xs = make()
    n_top = 3 if "slice_point: 3" in text else 1
    layer = build_layer(text, [tuple(x.shape) for x in xs], phase=phase, n_top=n_top)
    assert gradcheck_layer(layer, xs, check=check)


def test_gradcheck_split():
    layer = build_layer('type: "Split"', [(2, 3)], n_top=3)
    assert gradcheck_layer(layer, [_randn(2, 3)])


# ===================================================================== BatchNorm
BN = 'layer { name: "bn" type: "BatchNorm" bottom: "x" top: "y" %s }\n'


def test_bn_train_updates_statistics_each_forward():
    net = _net(BN % "batch_norm_param { moving_average_fraction: 0.9 }", ("x", (4, 2, 3)))
    x = np.random.RandomState(0).randn(4, 2, 3).astype(np.float32)
    net.blobs["x"].data[...] = x
    mean = x.mean(axis=(0, 2))
    var = x.var(axis=(0, 2)) * 12 / 11  # unbiased, m = N*spatial = 12
    b0, b1, s = (net.params["bn"][i].data for i in range(3))
    net.forward()
    np.testing.assert_allclose([s[0]], [1.0])
    np.testing.assert_allclose(b0, mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b1, var, rtol=1e-5)
    net.forward()
    np.testing.assert_allclose([s[0]], [1.9], rtol=1e-6)
    np.testing.assert_allclose(b0, 1.9 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b1, 1.9 * var, rtol=1e-5)
    # the output used the biased batch variance
    y = (x - mean[None, :, None]) / np.sqrt(x.var(axis=(0, 2))[None, :, None] + 1e-5)
    np.testing.assert_allclose(net.blobs["y"].data, y, rtol=1e-4, atol=1e-5)


def test_bn_building_and_reshaping_do_not_update():
    net = _net(BN % "", ("x", (2, 3, 2)))
    net.blobs["x"].reshape(4, 3, 2)
    net.reshape()
    assert not any(b.data.any() for b in net.params["bn"])


def test_bn_single_value_per_channel_has_no_bias_correction():
    net = _net(BN % "", ("x", (1, 2)))
    net.blobs["x"].data[...] = [[3.0, -1.0]]
    net.forward()
    assert net.params["bn"][1].data.tolist() == [0.0, 0.0]
    assert net.params["bn"][0].data.tolist() == [3.0, -1.0]


def test_bn_test_phase_uses_global_stats_zero_weight_sum():
    net = _net(BN % "", ("x", (2, 3)), phase=caffe.TEST)
    net.blobs["x"].data[...] = np.arange(6).reshape(2, 3)
    net.params["bn"][0].data[...] = 5  # ignored: s == 0 means factor 0
    net.forward()
    np.testing.assert_allclose(net.blobs["y"].data, np.arange(6).reshape(2, 3) / np.sqrt(1e-5), rtol=1e-5)
    assert net.params["bn"][2].data[0] == 0  # no update in TEST


@pytest.mark.parametrize("phase,param,use_global", [
    (TRAIN, "", False), (TEST, "", True),
    (TRAIN, "batch_norm_param { use_global_stats: true }", True),
    (TEST, "batch_norm_param { use_global_stats: false }", False),
])
def test_bn_use_global_stats_default_is_phase(phase, param, use_global):
    assert build_layer(f'type: "BatchNorm" {param}', [(2, 3)], phase=phase).use_global_stats is use_global


def test_bn_blobs_are_not_learnable():
    net = _net(BN % "", ("x", (2, 3)))
    layer = net.layer_dict["bn"]
    assert [tuple(b.data.shape) for b in layer.blobs] == [(3,), (3,), (1,)]
    assert not any(p.requires_grad for p in layer.params)
    assert net.params_lr[-3:] == [0.0, 0.0, 0.0]


# ===================================================================== Scale / Bias
@pytest.mark.parametrize("text,bottoms,shapes,values", [
    ('type: "Scale"', [(2, 3, 4)], [(3,)], [1.0]),
    ('type: "Scale" scale_param { bias_term: true axis: 1 num_axes: -1 }', [(2, 3, 4)], [(3, 4), (3, 4)],
     [1.0, 0.0]),
    ('type: "Scale" scale_param { num_axes: 0 }', [(2, 3, 4)], [()], [1.0]),
    ('type: "Scale" scale_param { bias_term: true }', [(2, 3, 4), (3, 4)], [(3, 4)], [0.0]),
    ('type: "Scale"', [(2, 3, 4), (3,)], [], []),
    ('type: "Bias" bias_param { axis: -1 }', [(2, 3, 4)], [(4,)], [0.0]),
    ('type: "Bias"', [(2, 3, 4), (3,)], [], []),
], ids=["scale", "scale_bias_to_end", "scale_scalar", "scale_2bottoms_bias", "scale_2bottoms", "bias",
        "bias_2bottoms"])
def test_scale_bias_blobs(text, bottoms, shapes, values):
    layer = build_layer(text, bottoms)
    assert [tuple(p.shape) for p in layer.params] == shapes
    assert [float(p.detach().flatten()[0]) for p in layer.params] == values


# ===================================================================== Eltwise
def test_eltwise_max_ties_follow_caffe():
    net = _net('layer { name: "e" type: "Eltwise" bottom: "a" bottom: "b" bottom: "c" top: "y" '
               'eltwise_param { operation: MAX } }', ("a", (4,)), ("b", (4,)), ("c", (4,)))
    net.blobs["a"].data[...] = [1, 1, 0, 2]
    net.blobs["b"].data[...] = [1, 0, 1, 2]
    net.blobs["c"].data[...] = [0, 1, 1, 2]
    net.forward()
    net.blobs["y"].diff[...] = 1
    net.backward()
    # measured on real Caffe: a tie of bottoms 0/1 goes to 1, later bottoms must be strictly greater
    assert [net.blobs[n].diff.tolist() for n in "abc"] == [[0, 1, 0, 0], [1, 0, 1, 1], [0, 0, 0, 0]]


# ===================================================================== views
@pytest.mark.parametrize("layer", [
    'type: "Flatten"', 'type: "Reshape" reshape_param { shape { dim: -1 } }',
    'type: "Concat"', 'type: "Slice"',
], ids=["flatten", "reshape", "concat_single", "slice_single"])
def test_top_shares_bottom_memory(layer):
    net = _net(f'layer {{ name: "l" {layer} bottom: "x" top: "y" }}', ("x", (2, 3, 2)), force_backward=False)
    net.forward()
    net.blobs["x"].data[0, 0, 0] = 42
    assert net.blobs["y"].data.reshape(-1)[0] == 42


# ===================================================================== Silence / Crop
def test_silence_consumes_and_zeroes_gradient():
    net = _net('layer { name: "s" type: "Silence" bottom: "x" bottom: "z" }', ("x", (2, 3)), ("z", (1,)))
    assert net.outputs == []
    net.blobs["x"].diff[...] = 5
    net.forward()
    net.backward()
    assert not net.blobs["x"].diff.any()


def test_crop_gradient_zero_outside_window():
    net = _net('layer { name: "c" type: "Crop" bottom: "x" bottom: "r" top: "y" crop_param { offset: 1 } }',
               ("x", (1, 1, 4, 4)), ("r", (1, 1, 2, 2)))
    net.blobs["x"].data[...] = np.arange(16).reshape(1, 1, 4, 4)
    net.forward()
    assert net.blobs["y"].data[0, 0].tolist() == [[5, 6], [9, 10]]
    net.blobs["y"].diff[...] = 1
    net.backward()
    expected = np.zeros((4, 4))
    expected[1:3, 1:3] = 1
    np.testing.assert_array_equal(net.blobs["x"].diff[0, 0], expected)
    assert not net.blobs["r"].diff.any()


# ===================================================================== Input
def test_input_shapes_once_per_top_or_none():
    net = _net("", ("a", (2, 3)), ("b", (4,)), force_backward=False)
    assert net.blobs["a"].shape == (2, 3) and net.blobs["b"].shape == (4,)
    net = caffe.Net('layer { name: "in" type: "Input" top: "a" top: "b" }', caffe.TEST)
    assert net.inputs == ["a", "b"]


# ===================================================================== DummyData
def _dummy(params: str, tops: str = 'top: "a"', phase: int = caffe.TRAIN, extra: str = "") -> "caffe.Net":
    return caffe.Net(f'layer {{ name: "d" type: "DummyData" {tops} dummy_data_param {{ {params} }} }}\n'
                     + extra, phase)


def test_dummy_constant_filled_once_and_keeps_writes():
    net = _dummy('shape { dim: 2 dim: 3 } data_filler { type: "constant" value: 2 }')
    net.forward()
    assert (net.blobs["a"].data == 2).all()
    net.blobs["a"].data[...] = 7
    net.forward()
    assert (net.blobs["a"].data == 7).all()


def test_dummy_writes_before_first_forward_are_kept():
    net = _dummy("shape { dim: 2 dim: 3 }")
    net.blobs["a"].data[...] = 5
    assert (net.forward()["a"] == 5).all()


def test_dummy_constant_seen_through_numpy_view_before_forward():
    net = _dummy('shape { dim: 2 } data_filler { type: "constant" value: 3 }')
    view = net.blobs["a"].data  # allocated by the blob, zeros
    net.forward()
    assert view.tolist() == [3.0, 3.0] and net.blobs["a"].data.tolist() == [3.0, 3.0]


def test_dummy_inplace_layer_compounds_like_caffe():
    net = _dummy('shape { dim: 3 } data_filler { type: "constant" value: 1 }',
                 extra='layer { name: "p" type: "Power" bottom: "a" top: "a" power_param { scale: 2 } }')
    for _ in range(3):
        net.forward()
    assert net.blobs["a"].data.tolist() == [8.0, 8.0, 8.0]  # measured on real Caffe


def test_dummy_random_refilled_each_forward_and_seeded():
    def run(seed):
        caffe.set_random_seed(seed)
        net = _dummy('shape { dim: 50 } data_filler { type: "uniform" min: -1 max: 1 }')
        return [net.forward()["a"].copy() for _ in range(2)]
    a, b, c = run(1), run(1), run(2)
    assert not np.array_equal(a[0], a[1])
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert a[0].min() >= -1 and a[0].max() <= 1


def test_dummy_shapes_and_fillers_per_top():
    net = _dummy('num: 2 num: 1 channels: 3 height: 1 width: 4 data_filler { type: "constant" value: 1 } '
                 'data_filler { type: "constant" value: 2 }', tops='top: "a" top: "b"')
    net.forward()
    assert net.blobs["a"].shape == (2, 3, 1, 4) and net.blobs["b"].shape == (1, 3, 1, 4)
    assert net.blobs["a"].data.max() == 1 and net.blobs["b"].data.min() == 2
    assert net.inputs == []


def test_dummy_tops_are_no_inputs():
    net = _dummy("shape { dim: 2 }")
    with pytest.raises(KeyError, match="not an input blob"):
        net.forward(a=np.zeros(2))


# ===================================================================== errors
def _l(type_: str, params: str = "", bottoms: str = "x", tops: str = "y") -> str:
    """A layer named "l" with space-separated bottom and top names."""
    b = " ".join(f'bottom: "{n}"' for n in bottoms.split())
    t = " ".join(f'top: "{n}"' for n in tops.split())
    return f'layer {{ name: "l" type: "{type_}" {b} {t} {params} }}'


X4 = ("x", (2, 3, 4, 5))
Z4 = ("z", (2, 3, 4, 5))
R4 = ("r", (2, 3, 2, 3))
W3 = ("w", (2, 3, 4))
ERRORS = [
    # (id, layers, inputs, exception, message fragment)
    ("bn_lr_mult", BN % "param { lr_mult: 1 }", [X4], LayerError, "lr_mult 1"),
    ("bn_too_many_params", BN % ("param { lr_mult: 0 } " * 4), [X4], NetError, "4 param specs"),
    ("bn_1d", BN % "", [("x", (4,))], ShapeError, "at least 2 axes"),
    ("scale_num_axes", _l("Scale", "scale_param { num_axes: -2 }"), [X4], LayerError,
     "num_axes must be >= 0"),
    ("scale_past_end", _l("Scale", "scale_param { axis: 3 num_axes: 2 }"), [X4], ShapeError, "extends past"),
    ("scale_axis_range", _l("Scale", "scale_param { axis: 4 }"), [X4], ShapeError, "axis 4 out of range"),
    ("scale_bottom_mismatch", _l("Scale", bottoms="x s"), [X4, ("s", (3, 5))], ShapeError,
     "scale shape \\[3, 5\\]"),
    ("bias_bottom_mismatch", _l("Bias", "bias_param { axis: 0 }", bottoms="x s"),
     [X4, ("s", (2, 3, 4, 5, 1))], ShapeError, "bias shape"),
    ("eltwise_shape", _l("Eltwise", bottoms="x w"), [X4, W3], ShapeError, "bottom\\[1\\] \\[2, 3, 4\\]"),
    ("eltwise_one_bottom", _l("Eltwise"), [X4], LayerError, "at least 2 bottom"),
    ("eltwise_coeff_count", _l("Eltwise", "eltwise_param { coeff: 1 }", bottoms="x z"), [X4, Z4], LayerError,
     "one coefficient per bottom"),
    ("eltwise_prod_coeff", _l("Eltwise", "eltwise_param { operation: PROD coeff: 1 coeff: 2 }",
                              bottoms="x z"), [X4, Z4], LayerError, "summation"),
    ("eltwise_inplace", _l("Eltwise", bottoms="x z", tops="x"), [X4, Z4], LayerError, "in place"),
    ("concat_axes", _l("Concat", bottoms="x w"), [X4, W3], ShapeError, "same number of axes"),
    ("concat_shape", _l("Concat", bottoms="x w"), [X4, ("w", (2, 3, 4, 6))], ShapeError,
     "except at concat axis 1"),
    ("concat_axis_range", _l("Concat", "concat_param { axis: 4 }"), [X4], ShapeError, "axis 4 out of range"),
    ("concat_both_axes", _l("Concat", "concat_param { axis: 1 concat_dim: 1 }"), [X4], LayerError,
     "not both"),
    ("concat_dim_range", _l("Concat", "concat_param { concat_dim: 4 }"), [X4], ShapeError,
     "concat_dim 4 out of range"),
    ("slice_point_count", _l("Slice", "slice_param { slice_point: 1 slice_point: 2 }", tops="a b"), [X4],
     LayerError, "2 slice_point"),
    ("slice_point_zero", _l("Slice", "slice_param { slice_point: 0 }", tops="a b"), [X4], ShapeError,
     "strictly increasing"),
    ("slice_point_order", _l("Slice", "slice_param { slice_point: 2 slice_point: 1 }", tops="a b c"), [X4],
     ShapeError, "strictly increasing"),
    ("slice_point_at_end", _l("Slice", "slice_param { slice_point: 3 }", tops="a b"), [X4], ShapeError,
     "inside \\(0, 3\\)"),
    ("slice_uneven", _l("Slice", tops="a b"), [X4], ShapeError, "evenly divide"),
    ("slice_both_axes", _l("Slice", "slice_param { axis: 1 slice_dim: 1 }", tops="a b"), [X4], LayerError,
     "not both"),
    ("flatten_inplace", _l("Flatten", tops="x"), [X4], LayerError, "in-place"),
    ("flatten_end_axis", _l("Flatten", "flatten_param { axis: 2 end_axis: 0 }"), [X4], ShapeError,
     "comes before"),
    ("reshape_inplace", _l("Reshape", "reshape_param { shape { dim: -1 } }", tops="x"), [X4], LayerError,
     "in-place"),
    ("reshape_two_infer", _l("Reshape", "reshape_param { shape { dim: -1 dim: -1 } }"), [X4], ShapeError,
     "multiple -1"),
    ("reshape_negative_dim", _l("Reshape", "reshape_param { shape { dim: -2 dim: -60 } }"), [X4], ShapeError,
     "negative dimension"),
    ("reshape_indivisible", _l("Reshape", "reshape_param { shape { dim: 7 dim: -1 } }"), [X4], ShapeError,
     "divisible"),
    ("reshape_count", _l("Reshape", "reshape_param { shape { dim: 6 dim: 21 } }"), [X4], ShapeError,
     "output count must match"),
    ("reshape_no_axis_to_copy",
     _l("Reshape", "reshape_param { shape { dim: 0 dim: 0 dim: 0 dim: 0 dim: 0 } }"), [X4], ShapeError,
     "no axis 4 to copy"),
    ("reshape_axis_range", _l("Reshape", "reshape_param { shape { dim: 1 } axis: 5 num_axes: 0 }"), [X4],
     ShapeError, "axis 5 out of range"),
    ("reshape_num_axes_past", _l("Reshape", "reshape_param { shape { dim: 2 } axis: 1 num_axes: 4 }"), [X4],
     ShapeError, "past the last axis"),
    ("reshape_num_axes_neg", _l("Reshape", "reshape_param { shape { dim: -1 } num_axes: -2 }"), [X4],
     LayerError, "num_axes must be >= 0"),
    ("crop_offset_count", _l("Crop", "crop_param { offset: 1 offset: 2 offset: 3 }", bottoms="x r"), [X4, R4],
     LayerError, "3 offsets"),
    ("crop_out_of_bounds", _l("Crop", "crop_param { offset: 3 }", bottoms="x r"), [X4, R4], ShapeError,
     "out of bounds"),
    ("crop_ref_bigger", _l("Crop", bottoms="r x"), [X4, R4], ShapeError, "out of bounds"),
    ("crop_ref_fewer_axes", _l("Crop", "crop_param { axis: 1 }", bottoms="x w"), [X4, W3], ShapeError,
     "fewer axes"),
    ("crop_axis_range", _l("Crop", "crop_param { axis: 4 }", bottoms="x r"), [X4, R4], ShapeError,
     "axis 4 out of range"),
    ("crop_inplace", _l("Crop", bottoms="x r", tops="x"), [X4, R4], LayerError, "in place"),
    ("silence_top", _l("Silence"), [X4], LayerError, "0 top"),
    ("softmax_axis", _l("Softmax", "softmax_param { axis: -5 }"), [X4], ShapeError, "axis -5 out of range"),
    ("input_shape_count", _l("Input", "input_param { shape { dim: 1 } shape { dim: 2 } shape { dim: 3 } }",
                             bottoms="", tops="a b"), [], LayerError, "give input_param.shape once"),
    ("input_negative_dim", _l("Input", "input_param { shape { dim: 2 dim: -1 } }", bottoms="", tops="a"), [],
     ShapeError, "negative dimension"),
    ("input_with_bottom", _l("Input", "input_param { shape { dim: 2 } }", bottoms="x", tops="a"), [X4],
     LayerError, "expected 0 bottom"),
    ("dummy_filler_count",
     _l("DummyData", "dummy_data_param { shape { dim: 2 } data_filler {} data_filler {} }", bottoms="",
        tops="a b c"), [], LayerError, "number of data fillers"),
    ("dummy_shape_count",
     _l("DummyData", "dummy_data_param { shape { dim: 2 } shape { dim: 3 } }", bottoms="", tops="a b c"),
     [], LayerError, "'shape' once, or once per top blob \\(3\\)"),
    ("dummy_no_shape", _l("DummyData", "dummy_data_param { }", bottoms="", tops="a"), [], LayerError,
     "specified 0"),
    ("dummy_shape_and_legacy", _l("DummyData", "dummy_data_param { num: 2 channels: 1 height: 1 width: 4 "
                                  "shape { dim: 2 } }", bottoms="", tops="a"), [], LayerError,
     "both shape and legacy"),
    ("dummy_legacy_missing", _l("DummyData", "dummy_data_param { num: 2 channels: 1 height: 1 }", bottoms="",
                                tops="a"), [], LayerError, "'width' once"),
    ("dummy_bad_random_filler", _l("DummyData", 'dummy_data_param { shape { dim: 2 } data_filler { '
                                   'type: "gaussian" std: 0 } }', bottoms="", tops="a"), [], LayerError,
     "std > 0"),
    ("dummy_bad_bilinear", _l("DummyData", 'dummy_data_param { shape { dim: 2 } data_filler { '
                              'type: "bilinear" } }', bottoms="", tops="a"), [], LayerError, "4-axis"),
    ("dummy_negative_dim", _l("DummyData", "dummy_data_param { shape { dim: 2 dim: -1 } }", bottoms="",
                              tops="a"), [], ShapeError, "negative dimension"),
]


@pytest.mark.parametrize("layers,inputs,exc,fragment", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_bad_net_raises(layers, inputs, exc, fragment):
    with pytest.raises(exc, match=fragment) as info:
        net = _net(layers, *inputs)
        if "DummyData" not in layers:  # DummyData checks everything when built
            net.forward()
    assert 'layer "l"' in str(info.value) or 'layer "bn"' in str(info.value)


def test_bn_channel_change_at_reshape():
    net = _net(BN % "", ("x", (2, 3)))
    net.blobs["x"].reshape(2, 4)
    with pytest.raises(ShapeError, match='BatchNorm layer "bn".*3 channels'):
        net.reshape()


def test_reshape_error_at_forward_names_layer():
    layer = build_layer('type: "Reshape" reshape_param { shape { dim: 5 dim: -1 } }', [(2, 5)])
    with pytest.raises(ShapeError, match='Reshape layer "l"'):
        run_layer(layer, torch.zeros(3, 3))
