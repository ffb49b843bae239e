"""The rest of upstream Caffe's catalog: ArgMax, BatchReindex, Embed, Filter, Im2col,
MVN, Parameter, Reduction, SPP, Swish, Tile (Clip: ``data/bvlc/clip_range.npz``,
made by an upstream build; this pip Caffe has no Clip layer).

Layers whose backward aborts under ``force_backward`` (Embed's input,
BatchReindex's and Filter's index bottoms) run without it: their data comes
from a Parameter layer, whose parameter diff is then the layer's bottom diff,
and a 0.5·Σy² loss on their tops makes backward run with gradient y.
ArgMax has no backward at all (forward only).
"""

import numpy as np

from ._spec import const, input_layer, net_case, randn


def _net(name, blobs, layers, force_backward=True, **kw):
    head = '\nname: "catalog"%s\n' % (" force_backward: true" if force_backward else "")
    return net_case(name, (input_layer(*blobs) if blobs else "") + head + layers, **kw)


def _layer(type_, bottoms, tops, params="", name="l"):
    b = " ".join('bottom: "%s"' % x for x in bottoms)
    t = " ".join('top: "%s"' % x for x in tops)
    return 'layer { name: "%s" type: "%s" %s %s %s }\n' % (name, type_, b, t, params)


def _param_layer(top, shape, name=None):
    dims = " ".join("dim: %d" % d for d in shape)
    return _layer("Parameter", [], [top], "parameter_param { shape { %s } }" % dims, name=name or top)


def _sumsq_loss(*blobs):
    """0.5·Σy² as a loss on each blob: its gradient is y (random), and backward runs."""
    return "".join(_layer("Reduction", [b], [b + "_loss"], "reduction_param { operation: SUMSQ coeff: 0.5 } "
                          "loss_weight: 1", name=b + "_loss") for b in blobs)


def _ints(*shape, low=0, high=3):
    """Small integers: many ties."""
    return lambda rng: rng.randint(low, high, size=shape).astype(np.float32)


def _distinct(*shape):
    n = int(np.prod(shape))
    return lambda rng: (rng.permutation(n).reshape(shape) / float(n) * 4 - 2).astype(np.float32)


def _with_zeros(*shape, zeros=3):
    def make(rng):
        x = rng.randn(*shape)
        x.reshape(-1)[:zeros] = 0.0
        return x.astype(np.float32)
    return make


ARGMAX = [
    _net("argmax_default", [("x", (3, 2, 2, 2))], _layer("ArgMax", ["x"], ["y"]),
         inputs={"x": _ints(3, 2, 2, 2)}, grad=False,
         note="no axis: (N, 1, 1, 1); ties go to the larger index"),
    _net("argmax_topk_max_val", [("x", (3, 6))],
         _layer("ArgMax", ["x"], ["y"], "argmax_param { top_k: 3 out_max_val: true }"),
         inputs={"x": _ints(3, 6)}, grad=False, note="(N, 2, top_k): indices, then values"),
    _net("argmax_axis", [("x", (2, 4, 3))],
         _layer("ArgMax", ["x"], ["y"], "argmax_param { axis: 1 top_k: 2 }"),
         inputs={"x": _ints(2, 4, 3)}, grad=False),
    _net("argmax_axis_neg_max_val", [("x", (2, 3, 5))],
         _layer("ArgMax", ["x"], ["y"], "argmax_param { axis: -1 top_k: 4 out_max_val: true }"),
         inputs={"x": _ints(2, 3, 5)}, grad=False, note="with axis, out_max_val gives values only"),
    _net("argmax_1d", [("x", (5,))], _layer("ArgMax", ["x"], ["y"]), grad=False,
         note="a 1-axis bottom: each item has one value; top (5, 1, 1)"),
    _net("argmax_5d", [("x", (2, 2, 1, 2, 2))], _layer("ArgMax", ["x"], ["y"], "argmax_param { top_k: 2 }"),
         inputs={"x": _ints(2, 2, 1, 2, 2)}, grad=False, note="(N, 1, top_k, 1, 1)"),
]

BATCH_REINDEX = [
    _net("batch_reindex_repeats", [("i", (6,))],
         _param_layer("p", (4, 2, 3)) + _layer("BatchReindex", ["p", "i"], ["y"]) + _sumsq_loss("y"),
         inputs={"i": const([3, 0, 3.9, 1.2, 3, 0])}, force_backward=False,
         note="float indices truncate; the gradient of repeated items accumulates (pdiff of p)"),
    _net("batch_reindex_forward", [("x", (3, 4)), ("i", (2,))],
         _layer("BatchReindex", ["x", "i"], ["y"]), inputs={"i": const([2, 2])}, grad=False),
]

EMBED = [
    _net("embed_bias", [("x", (2, 3))],
         _layer("Embed", ["x"], ["y"], "embed_param { input_dim: 5 num_output: 4 }") + _sumsq_loss("y"),
         inputs={"x": const([[0, 4, 1.7], [4, 2, 4]])}, force_backward=False,
         note="rows used twice accumulate; 1.7 reads row 1; bias added"),
    _net("embed_no_bias", [("x", (4,))],
         _layer("Embed", ["x"], ["y"], "embed_param { input_dim: 3 num_output: 2 bias_term: false }")
         + _sumsq_loss("y"),
         inputs={"x": const([2, 2, 0, 2])}, force_backward=False),
    _net("embed_then_loss", [("x", (3,)), ("label", (3,))],
         _layer("Embed", ["x"], ["y"], "embed_param { input_dim: 4 num_output: 3 }")
         + _layer("SoftmaxWithLoss", ["y", "label"], ["loss"], name="loss"),
         inputs={"x": const([3, 0, 3]), "label": const([1, 2, 0])}, force_backward=False),
]

FILTER = [
    _net("filter_two_blobs", [("s", (5, 1))],
         _param_layer("a", (5, 3)) + _param_layer("b", (5, 2, 2))
         + _layer("Filter", ["a", "b", "s"], ["ya", "yb"]) + _sumsq_loss("ya", "yb"),
         inputs={"s": const([[0], [1], [-2], [0], [0.5]])}, force_backward=False,
         note="non-zero selects; unselected items get zero gradient"),
    _net("filter_none_selected", [("s", (3, 1, 1))],
         _param_layer("a", (3, 2)) + _layer("Filter", ["a", "s"], ["y"]) + _sumsq_loss("y"),
         inputs={"s": const(np.zeros((3, 1, 1)))}, force_backward=False, grad=False,
         note="top (0, 2); Caffe's backward then divides by zero (SIGFPE): forward only"),
    _net("filter_1d_selector", [("x", (4, 3)), ("s", (4,))], _layer("Filter", ["x", "s"], ["y"]),
         inputs={"s": const([1, 0, 0, 1])}, grad=False),
]

IM2COL = [
    _net("im2col_basic", [("x", (2, 3, 5, 5))],
         _layer("Im2col", ["x"], ["y"], "convolution_param { kernel_size: 3 }")),
    _net("im2col_pad_stride", [("x", (1, 2, 6, 7))],
         _layer("Im2col", ["x"], ["y"], "convolution_param { kernel_size: 3 pad: 1 stride: 2 }")),
    _net("im2col_hw_fields", [("x", (1, 2, 6, 7))],
         _layer("Im2col", ["x"], ["y"], "convolution_param { kernel_h: 3 kernel_w: 2 stride_h: 2 "
                "stride_w: 1 pad_h: 1 pad_w: 0 }")),
    _net("im2col_dilation", [("x", (1, 2, 7, 7))],
         _layer("Im2col", ["x"], ["y"], "convolution_param { kernel_size: 3 dilation: 2 pad: 1 }")),
    _net("im2col_overhang", [("x", (1, 1, 2, 2))],
         _layer("Im2col", ["x"], ["y"], "convolution_param { kernel_size: 3 stride: 2 }"),
         note="(2 - 3) / 2 truncates to 0: one output reading zeros past the edge"),
    _net("im2col_3d", [("x", (1, 2, 3, 4, 3))],
         _layer("Im2col", ["x"], ["y"], "convolution_param { kernel_size: 2 pad: 0 pad: 1 pad: 0 }")),
    _net("im2col_1d", [("x", (2, 3, 6))],
         _layer("Im2col", ["x"], ["y"], "convolution_param { kernel_size: 3 stride: 2 pad: 1 }")),
    _net("im2col_force_nd", [("x", (1, 2, 4, 5))],
         _layer("Im2col", ["x"], ["y"], "convolution_param { kernel_size: 3 pad: 1 force_nd_im2col: true }")),
    _net("im2col_axis2", [("x", (2, 2, 3, 4))],
         _layer("Im2col", ["x"], ["y"], "convolution_param { kernel_size: 2 axis: 2 }"),
         note="axes before the channel axis act as the batch"),
]

MVN = [
    _net("mvn_default", [("x", (2, 3, 2, 3))], _layer("MVN", ["x"], ["y"])),
    _net("mvn_across_channels", [("x", (2, 3, 2, 2))],
         _layer("MVN", ["x"], ["y"], "mvn_param { across_channels: true }")),
    _net("mvn_mean_only", [("x", (2, 3, 3, 2))],
         _layer("MVN", ["x"], ["y"], "mvn_param { normalize_variance: false }")),
    _net("mvn_across_mean_only", [("x", (2, 2, 2, 3))],
         _layer("MVN", ["x"], ["y"], "mvn_param { normalize_variance: false across_channels: true }")),
    _net("mvn_large_eps", [("x", (2, 3, 2, 2))], _layer("MVN", ["x"], ["y"], "mvn_param { eps: 0.5 }"),
         note="eps after the sqrt; Caffe's backward treats sigma + eps as sigma"),
    _net("mvn_2d_across", [("x", (4, 5))],
         _layer("MVN", ["x"], ["y"], "mvn_param { across_channels: true }"), note="top (4, 5, 1, 1)"),
    _net("mvn_3d", [("x", (2, 3, 4))], _layer("MVN", ["x"], ["y"]), note="top (2, 3, 4, 1)"),
    _net("mvn_inplace", [("x", (2, 3, 2, 2))], _layer("MVN", ["x"], ["x"], "mvn_param { eps: 0.1 }")),
]

PARAMETER = [
    _net("parameter_output", [], _param_layer("p", (2, 3)),
         note="the top is the blob: its diff becomes the parameter diff"),
    _net("parameter_consumed", [("x", (2, 3))],
         _param_layer("p", (2, 3))
         + _layer("Eltwise", ["x", "p"], ["y"], "eltwise_param { operation: PROD }")),
]

REDUCTION = [
    _net("reduction_sum_all", [("x", (2, 3, 4))], _layer("Reduction", ["x"], ["y"]),
         note="axis 0: a 0-axis top"),
    _net("reduction_asum_coeff", [("x", (2, 3, 4))],
         _layer("Reduction", ["x"], ["y"], "reduction_param { operation: ASUM axis: 1 coeff: 2 }"),
         inputs={"x": _with_zeros(2, 3, 4)}, note="the gradient at 0 is 0"),
    _net("reduction_sumsq_axis_neg", [("x", (2, 3, 4))],
         _layer("Reduction", ["x"], ["y"], "reduction_param { operation: SUMSQ axis: -1 coeff: -0.5 }")),
    _net("reduction_mean", [("x", (2, 3, 4, 2))],
         _layer("Reduction", ["x"], ["y"], "reduction_param { operation: MEAN axis: 2 coeff: 3 }")),
    _net("reduction_as_loss", [("x", (3, 4))],
         _layer("Reduction", ["x"], ["y"], "reduction_param { operation: SUMSQ } loss_weight: 0.5")),
]

SPP = [
    _net("spp_max_height3", [("x", (2, 2, 6, 6))],
         _layer("SPP", ["x"], ["y"], "spp_param { pyramid_height: 3 }"), inputs={"x": _distinct(2, 2, 6, 6)}),
    _net("spp_ave_odd", [("x", (1, 2, 7, 5))],
         _layer("SPP", ["x"], ["y"], "spp_param { pyramid_height: 2 pool: AVE }"),
         note="levels with padding: the AVE divisor counts it"),
    _net("spp_height1", [("x", (2, 3, 5, 4))],
         _layer("SPP", ["x"], ["y"], "spp_param { pyramid_height: 1 }"), inputs={"x": _distinct(2, 3, 5, 4)},
         note="one level: the (N, C, 1, 1) pooled blob itself"),
    _net("spp_max_nonsquare", [("x", (1, 1, 9, 6))],
         _layer("SPP", ["x"], ["y"], "spp_param { pyramid_height: 3 pool: MAX }"),
         inputs={"x": _distinct(1, 1, 9, 6)}),
]

SWISH = [
    _net("swish_default", [("x", (2, 3, 4))], _layer("Swish", ["x"], ["y"]),
         inputs={"x": randn(2, 3, 4, scale=2.0)}),
    _net("swish_beta", [("x", (2, 3, 4))], _layer("Swish", ["x"], ["y"], "swish_param { beta: 2.5 }"),
         inputs={"x": randn(2, 3, 4, scale=2.0)}),
    _net("swish_inplace", [("x", (2, 5))], _layer("Swish", ["x"], ["x"], "swish_param { beta: 0.7 }"),
         inputs={"x": randn(2, 5, scale=2.0)}),
]

TILE = [
    _net("tile_axis1", [("x", (2, 3, 2))], _layer("Tile", ["x"], ["y"], "tile_param { tiles: 3 }")),
    _net("tile_axis0", [("x", (2, 3))], _layer("Tile", ["x"], ["y"], "tile_param { axis: 0 tiles: 2 }")),
    _net("tile_axis_neg", [("x", (2, 3, 2))],
         _layer("Tile", ["x"], ["y"], "tile_param { axis: -1 tiles: 4 }")),
]

CASES = ARGMAX + BATCH_REINDEX + EMBED + FILTER + IM2COL + MVN + PARAMETER + REDUCTION + SPP + SWISH + TILE
