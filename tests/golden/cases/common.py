"""Common layers: BatchNorm, Scale, Bias, Eltwise, Concat, Slice, Flatten, Reshape,
Crop, Silence, Softmax, Split, InnerProduct, Input, and DummyData's
deterministic tops.

BatchNorm's TRAIN-phase batch statistics are pinned by the upstream fixtures
in ``data/bvlc/`` (this pip Caffe lacks that branch); the cases here cover
the global-statistics path, which the pip Caffe shares with upstream.
"""

import numpy as np

from ._spec import input_layer, net_case


def _net(name, blobs, layers, phase="TRAIN", inputs=None, params=None, grad=True, tol=1e-4,
         skip=(), note=""):
    text = input_layer(*blobs) + '\nname: "common" force_backward: true\n' + layers
    return net_case(name, text, phase=phase, inputs=inputs, params=params, grad=grad, tol=tol,
                    skip=skip, note=note)


def _layer(type_, bottoms, tops, params="", name="l"):
    b = " ".join('bottom: "%s"' % x for x in bottoms)
    t = " ".join('top: "%s"' % x for x in tops)
    return 'layer { name: "%s" type: "%s" %s %s %s }\n' % (name, type_, b, t, params)


def _positive(rng, shape):
    return rng.uniform(0.5, 2.0, size=shape).astype(np.float32)


def _value(v):
    return lambda rng, shape: np.full(shape, v, dtype=np.float32)


def _bn_stats(weight_sum):
    """BatchNorm blobs: Σmean ~ N(0,1)·s, Σvar > 0, and the weight sum s."""
    return [lambda rng, shape: (rng.randn(*shape) * max(weight_sum, 1)).astype(np.float32),
            lambda rng, shape: (rng.uniform(0.2, 3.0, size=shape) * max(weight_sum, 1)).astype(np.float32),
            _value(weight_sum)]


X4 = ("x", (2, 3, 4, 5))

BATCH_NORM = [
    _net("bn_test_global", [("x", (3, 4, 2, 3))], _layer("BatchNorm", ["x"], ["y"]), phase="TEST",
         params={"l": _bn_stats(7.5)}, note="TEST: mean = b0/s, var = b1/s"),
    _net("bn_test_zero_weight_sum", [("x", (2, 3, 2, 2))], _layer("BatchNorm", ["x"], ["y"]),
         phase="TEST", params={"l": [None, _positive, _value(0.0)]},
         note="s == 0 gives factor 0: y = x / sqrt(eps)"),
    _net("bn_test_2d_eps", [("x", (5, 4))],
         _layer("BatchNorm", ["x"], ["y"], "batch_norm_param { eps: 0.01 }"), phase="TEST",
         params={"l": _bn_stats(1.0)}),
    _net("bn_test_3d", [("x", (2, 3, 5))], _layer("BatchNorm", ["x"], ["y"]), phase="TEST",
         params={"l": _bn_stats(0.5)}),
    _net("bn_train_use_global_stats", [("x", (2, 3, 2, 2))],
         _layer("BatchNorm", ["x"], ["y"], "batch_norm_param { use_global_stats: true }"),
         params={"l": _bn_stats(3.0)}, note="TRAIN with global stats: no update, gradient 1/std"),
    _net("bn_scale_inplace_test", [("x", (2, 3, 3, 2))],
         _layer("BatchNorm", ["x"], ["x"], name="bn") +
         _layer("Scale", ["x"], ["x"], "scale_param { bias_term: true }", name="sc"),
         phase="TEST", params={"bn": _bn_stats(2.0)},
         note="the deploy-time ResNet pattern: BN and Scale in place"),
    _net("bn_param_lr0", [("x", (2, 2, 3))],
         _layer("BatchNorm", ["x"], ["y"], "param { lr_mult: 0 } param { lr_mult: 0 } "
                "param { lr_mult: 0 decay_mult: 0 }"), phase="TEST", params={"l": _bn_stats(4.0)},
         note="old prototxts pin the statistics with lr_mult 0 by hand"),
]

SCALE_BIAS = [
    _net("scale_default", [X4], _layer("Scale", ["x"], ["y"]), note="axis 1, num_axes 1, no bias"),
    _net("scale_bias", [X4], _layer("Scale", ["x"], ["y"], "scale_param { bias_term: true }")),
    _net("scale_axis2_to_end", [X4],
         _layer("Scale", ["x"], ["y"], "scale_param { axis: 2 num_axes: -1 bias_term: true }")),
    _net("scale_scalar", [X4], _layer("Scale", ["x"], ["y"], "scale_param { num_axes: 0 }"),
         note="num_axes 0: a 0-axis scale"),
    _net("scale_axis0_two", [X4], _layer("Scale", ["x"], ["y"], "scale_param { axis: 0 num_axes: 2 }")),
    _net("scale_axis_neg", [X4],
         _layer("Scale", ["x"], ["y"], "scale_param { axis: -1 bias_term: true }")),
    _net("scale_two_bottoms", [X4, ("s", (3, 4))], _layer("Scale", ["x", "s"], ["y"]),
         note="the scale is bottom 1 and gets a gradient"),
    _net("scale_two_bottoms_bias", [X4, ("s", (2, 3))],
         _layer("Scale", ["x", "s"], ["y"], "scale_param { axis: 0 bias_term: true }")),
    _net("scale_two_bottoms_scalar", [X4, ("s", ())],
         _layer("Scale", ["x", "s"], ["y"], "scale_param { axis: 3 }"),
         inputs={"s": lambda rng: np.asarray(rng.randn() + 2, dtype=np.float32)},
         note="a 0-axis scale bottom is applied from axis 0 whatever axis says"),
    _net("scale_2d", [("x", (4, 3))], _layer("Scale", ["x"], ["y"], "scale_param { bias_term: true }")),
    _net("scale_inplace_two_bottoms", [X4, ("s", (3,))], _layer("Scale", ["x", "s"], ["x"])),
    _net("bias_default", [X4], _layer("Bias", ["x"], ["y"])),
    _net("bias_axis_num_axes", [X4], _layer("Bias", ["x"], ["y"], "bias_param { axis: 1 num_axes: 2 }")),
    _net("bias_two_bottoms", [X4, ("b", (4, 5))],
         _layer("Bias", ["x", "b"], ["y"], "bias_param { axis: -2 }")),
    _net("bias_inplace", [X4], _layer("Bias", ["x"], ["x"], "bias_param { num_axes: 0 }")),
]

EQ3 = [("a", (2, 3, 2)), ("b", (2, 3, 2)), ("c", (2, 3, 2))]


def _ties(rng):
    return rng.randint(-2, 3, size=(2, 3, 2)).astype(np.float32)


def _with_zero(rng):
    x = rng.uniform(0.3, 1.5, size=(2, 3, 2)) * rng.choice([-1, 1], size=(2, 3, 2))
    x.reshape(-1)[3] = 0.0
    return x.astype(np.float32)


def _nonzero(rng):
    return (rng.uniform(0.3, 1.5, size=(2, 3, 2)) * rng.choice([-1, 1], size=(2, 3, 2))).astype(np.float32)


ELTWISE = [
    _net("eltwise_sum", EQ3[:2], _layer("Eltwise", ["a", "b"], ["y"])),
    _net("eltwise_sum_coeff", EQ3, _layer("Eltwise", ["a", "b", "c"], ["y"],
                                          "eltwise_param { coeff: 1 coeff: -0.5 coeff: 2 }")),
    _net("eltwise_prod", EQ3, _layer("Eltwise", ["a", "b", "c"], ["y"], "eltwise_param { operation: PROD }"),
         inputs={"b": _with_zero}, note="stable gradient: product of the other bottoms"),
    _net("eltwise_prod_unstable", EQ3[:2],
         _layer("Eltwise", ["a", "b"], ["y"], "eltwise_param { operation: PROD stable_prod_grad: false }"),
         inputs={"a": _nonzero, "b": _nonzero}, note="gradient top_diff * y / x_i"),
    _net("eltwise_prod_unstable_zero", EQ3,
         _layer("Eltwise", ["a", "b", "c"], ["y"],
                "eltwise_param { operation: PROD stable_prod_grad: false }"),
         inputs={"a": _nonzero, "b": _with_zero, "c": _nonzero},
         note="y / x_i: NaN for the zero, 0 for the others at that position"),
    _net("eltwise_max", EQ3, _layer("Eltwise", ["a", "b", "c"], ["y"], "eltwise_param { operation: MAX }")),
    _net("eltwise_max_ties", EQ3,
         _layer("Eltwise", ["a", "b", "c"], ["y"], "eltwise_param { operation: MAX }"),
         inputs={"a": _ties, "b": _ties, "c": _ties},
         note="ties: bottom 1 beats bottom 0, later bottoms need to be strictly greater"),
    _net("eltwise_max_coeff_ignored", EQ3[:2],
         _layer("Eltwise", ["a", "b"], ["y"], "eltwise_param { operation: MAX coeff: 3 coeff: 4 }"),
         inputs={"a": _ties, "b": _ties}),
    _net("eltwise_same_bottom_twice", EQ3[:1],
         _layer("Eltwise", ["a", "a"], ["y"], "eltwise_param { operation: PROD }"),
         note="one blob as both bottoms: a split, gradients summed"),
]

CONCAT_SLICE = [
    _net("concat_channels", [("a", (2, 1, 3)), ("b", (2, 3, 3)), ("c", (2, 2, 3))],
         _layer("Concat", ["a", "b", "c"], ["y"])),
    _net("concat_axis0", [("a", (1, 3)), ("b", (2, 3))],
         _layer("Concat", ["a", "b"], ["y"], "concat_param { axis: 0 }")),
    _net("concat_axis_neg", [("a", (2, 2, 1)), ("b", (2, 2, 4))],
         _layer("Concat", ["a", "b"], ["y"], "concat_param { axis: -1 }")),
    _net("concat_legacy_dim", [("a", (2, 2, 3, 1)), ("b", (2, 2, 3, 2))],
         _layer("Concat", ["a", "b"], ["y"], "concat_param { concat_dim: 3 }")),
    _net("concat_single", [("a", (2, 3))], _layer("Concat", ["a"], ["y"])),
    _net("slice_points", [("x", (2, 6, 2))],
         _layer("Slice", ["x"], ["y0", "y1", "y2"], "slice_param { slice_point: 1 slice_point: 4 }")),
    _net("slice_even", [("x", (2, 6, 2))], _layer("Slice", ["x"], ["y0", "y1", "y2"])),
    _net("slice_axis_neg", [("x", (2, 3, 4))],
         _layer("Slice", ["x"], ["y0", "y1"], "slice_param { axis: -1 slice_point: 3 }")),
    _net("slice_legacy_dim", [("x", (4, 2, 3))],
         _layer("Slice", ["x"], ["y0", "y1"], "slice_param { slice_dim: 0 }")),
    _net("slice_single_top", [("x", (2, 3))], _layer("Slice", ["x"], ["y"])),
    _net("slice_partly_unused", [("x", (2, 5))],
         _layer("Slice", ["x"], ["y0", "y1"], "slice_param { slice_point: 2 }") +
         _layer("Silence", ["y1"], [], name="silence"),
         note="a silenced piece gets no gradient"),
    _net("slice_concat_roundtrip", [("x", (2, 5, 2))],
         _layer("Slice", ["x"], ["p", "q"], "slice_param { slice_point: 2 }", name="slice") +
         _layer("Concat", ["q", "p"], ["y"], name="concat")),
]

RESHAPE = [
    _net("flatten_default", [X4], _layer("Flatten", ["x"], ["y"])),
    _net("flatten_axis_end", [X4], _layer("Flatten", ["x"], ["y"], "flatten_param { axis: 1 end_axis: 2 }")),
    _net("flatten_axis_neg", [X4], _layer("Flatten", ["x"], ["y"], "flatten_param { axis: -2 }")),
    _net("flatten_end_before_axis", [X4],
         _layer("Flatten", ["x"], ["y"], "flatten_param { axis: 2 end_axis: 1 }"),
         note="end_axis = axis - 1 inserts an axis of 1"),
    _net("reshape_copy_infer", [X4],
         _layer("Reshape", ["x"], ["y"], "reshape_param { shape { dim: 0 dim: -1 dim: 2 } }")),
    _net("reshape_axis_num_axes", [X4],
         _layer("Reshape", ["x"], ["y"],
                "reshape_param { shape { dim: 1 dim: 0 dim: -1 } axis: 1 num_axes: 2 }")),
    _net("reshape_append_axes", [X4],
         _layer("Reshape", ["x"], ["y"], "reshape_param { shape { dim: 1 dim: 1 } axis: -1 num_axes: 0 }")),
    _net("reshape_insert_at_front", [X4],
         _layer("Reshape", ["x"], ["y"], "reshape_param { shape { dim: 1 } axis: 0 num_axes: 0 }")),
    _net("reshape_plain", [X4],
         _layer("Reshape", ["x"], ["y"], "reshape_param { shape { dim: 6 dim: 20 } }")),
    _net("reshape_axis2_identity", [X4],
         _layer("Reshape", ["x"], ["y"], "reshape_param { shape { dim: 0 dim: -1 } axis: 2 }")),
]

CROP = [
    _net("crop_default", [X4, ("r", (2, 3, 2, 3))], _layer("Crop", ["x", "r"], ["y"]),
         note="axis 2, offsets 0; the reference gets no gradient"),
    _net("crop_one_offset", [X4, ("r", (2, 3, 2, 3))],
         _layer("Crop", ["x", "r"], ["y"], "crop_param { offset: 1 }")),
    _net("crop_offsets", [X4, ("r", (2, 3, 2, 3))], _layer("Crop", ["x", "r"], ["y"],
                                                           "crop_param { offset: 2 offset: 1 }")),
    _net("crop_axis1", [X4, ("r", (9, 1, 3, 2))],
         _layer("Crop", ["x", "r"], ["y"], "crop_param { axis: 1 offset: 2 offset: 0 offset: 3 }")),
    _net("crop_axis0", [X4, ("r", (1, 2, 2, 4))],
         _layer("Crop", ["x", "r"], ["y"], "crop_param { axis: 0 offset: 1 }")),
    _net("crop_axis_neg", [X4, ("r", (2, 3, 4, 2))],
         _layer("Crop", ["x", "r"], ["y"], "crop_param { axis: -1 offset: 3 }")),
]

WIRING = [
    _net("silence_and_sigmoid", [("x", (2, 3))],
         _layer("Silence", ["x"], [], name="silence") + _layer("Sigmoid", ["x"], ["y"], name="sig"),
         note="Silence adds a zero gradient to a split blob"),
    _net("silence_two_bottoms", [("x", (2, 3)), ("z", (3,))], _layer("Silence", ["x", "z"], []),
         note="no tops: the net has no outputs, input diffs are zero"),
    _net("split_explicit", [("x", (2, 3))],
         _layer("Split", ["x"], ["s0", "s1", "s2"], name="split") +
         _layer("TanH", ["s0"], ["t"], name="tanh") + _layer("Sigmoid", ["s1"], ["u"], name="sig"),
         note="an explicit Split: each top its own diff, the bottom's diff their sum"),
    _net("softmax_axis2", [("x", (2, 3, 4))], _layer("Softmax", ["x"], ["y"], "softmax_param { axis: 2 }")),
    _net("softmax_axis_neg", [("x", (2, 3, 2, 4))],
         _layer("Softmax", ["x"], ["y"], "softmax_param { axis: -1 }")),
    _net("softmax_axis0", [("x", (4, 3))], _layer("Softmax", ["x"], ["y"], "softmax_param { axis: 0 }")),
    _net("softmax_inplace", [("x", (2, 5))], _layer("Softmax", ["x"], ["x"])),
    _net("ip_axis2", [("x", (2, 3, 2, 2))],
         _layer("InnerProduct", ["x"], ["y"], "inner_product_param { num_output: 3 axis: 2 }")),
    _net("ip_axis_neg", [("x", (2, 3, 4))],
         _layer("InnerProduct", ["x"], ["y"], "inner_product_param { num_output: 2 axis: -1 }")),
    _net("ip_transpose", [("x", (3, 2, 2))],
         _layer("InnerProduct", ["x"], ["y"], "inner_product_param { num_output: 5 transpose: true }")),
    _net("ip_no_bias", [("x", (4, 3))],
         _layer("InnerProduct", ["x"], ["y"], "inner_product_param { num_output: 2 bias_term: false }")),
    net_case("input_shape_once", 'name: "common" force_backward: true\n'
             'layer { name: "in" type: "Input" top: "a" top: "b" input_param { shape { dim: 2 dim: 3 } } }\n'
             + _layer("Eltwise", ["a", "b"], ["y"]),
             note="one input_param.shape for several tops"),
]

DUMMY = [
    net_case("dummy_constant_legacy_dims",
             'name: "common" force_backward: true\n'
             'layer { name: "d" type: "DummyData" top: "a" top: "b" dummy_data_param { '
             'num: 2 num: 1 channels: 3 height: 1 width: 2 width: 4 '
             'data_filler { type: "constant" value: 1.5 } } }\n'
             + _layer("InnerProduct", ["a"], ["y"], "inner_product_param { num_output: 2 }", name="ip")
             + _layer("Power", ["b"], ["z"], "power_param { scale: 2 }", name="pow"),
             note="legacy dims once or per top; DummyData tops get no gradient"),
    net_case("dummy_default_zero_and_bilinear",
             'name: "common"\n'
             'layer { name: "d" type: "DummyData" top: "a" top: "b" dummy_data_param { '
             'shape { dim: 2 dim: 3 } shape { dim: 1 dim: 2 dim: 4 dim: 4 } '
             'data_filler { type: "constant" } data_filler { type: "bilinear" } } }\n',
             grad=False, note="per-top fillers; bilinear is deterministic (and refilled each forward)"),
    net_case("dummy_random_skipped",
             'name: "common"\n'
             'layer { name: "d" type: "DummyData" top: "a" top: "b" dummy_data_param { '
             'shape { dim: 3 dim: 2 } data_filler { type: "gaussian" std: 0.1 } '
             'data_filler { type: "constant" value: -2 } } }\n',
             grad=False, skip=("a",), note="random tops are not compared, constant ones are"),
]

CASES = BATCH_NORM + SCALE_BIAS + ELTWISE + CONCAT_SLICE + RESHAPE + CROP + WIRING + DUMMY
