"""Vision layers: Convolution, Deconvolution, Pooling, LRN (and the fillers conv layers use).

Net cases pin forward values, input diffs and parameter diffs against a real
Caffe. ``init`` cases (see :func:`generate`) record the parameter blobs as
Caffe's fillers leave them: deterministic fillers (constant, bilinear) are
compared value by value, random ones by their moments and bounds.

STOCHASTIC pooling has no fixture: the CPU Caffe aborts with "Not Implemented
Yet" (it exists only as CUDA kernels); its tests are invariants in
``tests/test_vision_layers.py``.
"""

import numpy as np

from ._spec import away_from, input_layer, net_case


def _net(name, shape, layers, inputs=None, grad=True, tol=1e-4, note="", extra_inputs=()):
    """A net with one Input ``data`` of ``shape`` (plus ``extra_inputs``) and ``layers``."""
    text = input_layer(("data", shape), *extra_inputs) + '\nname: "vision" force_backward: true\n'
    return net_case(name, text + layers, inputs=inputs, grad=grad, tol=tol, note=note)


def _conv(params, bottom="data", top="out", type_="Convolution", name="conv", extra=""):
    return ('layer { name: "%s" type: "%s" bottom: "%s" top: "%s" %s convolution_param { %s } }\n'
            % (name, type_, bottom, top, extra, params))


def _pool(params, bottom="data", tops=("out",), name="pool"):
    top = " ".join('top: "%s"' % t for t in tops)
    return ('layer { name: "%s" type: "Pooling" bottom: "%s" %s pooling_param { %s } }\n'
            % (name, bottom, top, params))


def _lrn(params, bottom="data", top="out", name="lrn"):
    return ('layer { name: "%s" type: "LRN" bottom: "%s" top: "%s" lrn_param { %s } }\n'
            % (name, bottom, top, params))


def _ties(*shape, levels=3):
    """Small integers: many equal values in each pooling window."""
    return lambda rng: rng.randint(0, levels, size=shape).astype(np.float32)


def _distinct(*shape):
    """A random permutation of distinct values: no ties for MAX (gradients are unique)."""
    n = int(np.prod(shape))
    return lambda rng: (rng.permutation(n).reshape(shape) / float(n) * 4 - 2).astype(np.float32)


CONV = [
    _net("conv_basic", (2, 3, 5, 5), _conv("num_output: 4 kernel_size: 3"),
         note="default stride 1, pad 0, with bias"),
    _net("conv_pad_stride", (2, 2, 7, 6), _conv("num_output: 3 kernel_size: 3 pad: 1 stride: 2")),
    _net("conv_hw_fields", (1, 2, 7, 8),
         _conv("num_output: 3 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0"),
         note="kernel_h/kernel_w, stride_h/stride_w, pad_h/pad_w"),
    _net("conv_per_axis_lists", (1, 2, 6, 7),
         _conv("num_output: 2 kernel_size: 3 kernel_size: 2 stride: 1 stride: 2 pad: 0 pad: 1 "
               "dilation: 1 dilation: 2"),
         note="kernel_size/stride/pad/dilation given once per spatial axis"),
    _net("conv_group", (2, 4, 5, 5), _conv("num_output: 6 kernel_size: 3 group: 2 pad: 1")),
    _net("conv_depthwise", (2, 3, 4, 4), _conv("num_output: 3 kernel_size: 3 group: 3 pad: 1")),
    _net("conv_dilation", (1, 2, 8, 8), _conv("num_output: 2 kernel_size: 3 dilation: 2 pad: 2")),
    _net("conv_dilation_zero", (1, 2, 4, 5), _conv("num_output: 2 kernel_size: 3 dilation: 0"),
         note="Caffe accepts dilation 0: every tap reads the same pixel (kernel extent 1)"),
    _net("conv_no_bias", (2, 2, 4, 4), _conv("num_output: 3 kernel_size: 2 bias_term: false")),
    # One input channel: the CPU weight gradient is im2col + GEMM (_cpu_kernels.py).
    _net("conv_one_channel", (4, 1, 9, 9), _conv("num_output: 5 kernel_size: 5"),
         note="LeNet's conv1 shape class: one grey-scale channel"),
    _net("conv_one_channel_pad_stride", (2, 1, 8, 7),
         _conv("num_output: 3 kernel_h: 3 kernel_w: 2 stride: 2 pad: 1")),
    _net("conv_one_channel_no_bias", (2, 1, 6, 6), _conv("num_output: 2 kernel_size: 3 bias_term: false")),
    _net("conv_1x1", (2, 3, 3, 4), _conv("num_output: 5 kernel_size: 1"),
         note="Caffe's is_1x1 path (no im2col)"),
    _net("conv_stride_gt_kernel", (1, 2, 7, 7), _conv("num_output: 2 kernel_size: 2 stride: 3"),
         note="trailing rows/columns not covered by any window"),
    _net("conv_kernel_overhang", (1, 2, 2, 3), _conv("num_output: 2 kernel_size: 3 stride: 2"),
         note="(2 - 3)/2 truncates to 0 in C, so Caffe gives 1 output row, reading zeros past "
              "the edge"),
    _net("conv_axis2", (2, 2, 3, 4, 4), _conv("num_output: 2 kernel_size: 3 axis: 2"),
         note="channel axis 2: the first two axes are batch-like"),
    _net("conv_axis_negative", (2, 3, 4, 4), _conv("num_output: 2 kernel_size: 2 axis: -3")),
    _net("conv_1d", (2, 3, 9), _conv("num_output: 2 kernel_size: 3 stride: 2 pad: 1")),
    _net("conv_3d", (1, 2, 4, 5, 4),
         _conv("num_output: 2 kernel_size: 2 kernel_size: 3 kernel_size: 2 stride: 1 stride: 2 "
               "stride: 1 pad: 1 pad: 0 pad: 0")),
    _net("conv_3d_group_dilation", (1, 4, 5, 4, 5),
         _conv("num_output: 2 kernel_size: 2 group: 2 dilation: 2 pad: 1")),
    _net("conv_4d", (1, 2, 3, 4, 3, 4),
         _conv("num_output: 2 kernel_size: 2 pad: 0 pad: 1 pad: 0 pad: 1 "
               "stride: 1 stride: 2 stride: 1 stride: 1"),
         note="4 spatial axes (Caffe's N-d im2col)"),
    _net("conv_force_nd_im2col", (1, 2, 5, 5),
         _conv("num_output: 2 kernel_size: 3 pad: 1 force_nd_im2col: true")),
    _net("conv_two_bottoms", (2, 2, 4, 4),
         _conv("num_output: 3 kernel_size: 3 pad: 1", bottom='data" bottom: "data2',
               top='out" top: "out2'),
         extra_inputs=[("data2", (2, 2, 4, 4))],
         note="several bottoms share the weights; one top each; param diffs summed"),
]

DECONV = [
    _net("deconv_basic", (2, 3, 3, 3),
         _conv("num_output: 4 kernel_size: 3 stride: 2 pad: 1", type_="Deconvolution"),
         note="out = s(in-1) + d(k-1) + 1 - 2p = 5"),
    _net("deconv_default", (1, 2, 3, 4), _conv("num_output: 2 kernel_size: 2", type_="Deconvolution")),
    _net("deconv_hw_fields", (1, 2, 3, 4),
         _conv("num_output: 2 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 0",
               type_="Deconvolution")),
    _net("deconv_group_dilation", (1, 4, 3, 3),
         _conv("num_output: 6 kernel_size: 3 group: 2 dilation: 2 stride: 2 pad: 1",
               type_="Deconvolution")),
    _net("deconv_no_bias", (2, 2, 3, 3),
         _conv("num_output: 3 kernel_size: 4 stride: 2 pad: 1 bias_term: false",
               type_="Deconvolution")),
    _net("deconv_1d", (2, 2, 4), _conv("num_output: 3 kernel_size: 3 stride: 2", type_="Deconvolution")),
    _net("deconv_3d", (1, 2, 2, 3, 2),
         _conv("num_output: 2 kernel_size: 2 stride: 2 pad: 0 pad: 1 pad: 0", type_="Deconvolution")),
    _net("deconv_4d", (1, 2, 2, 2, 3, 2),
         _conv("num_output: 2 kernel_size: 2 stride: 2 stride: 1 stride: 2 stride: 1 "
               "pad: 1 pad: 0 pad: 0 pad: 0",
               type_="Deconvolution")),
    _net("deconv_axis2", (2, 2, 3, 3, 3),
         _conv("num_output: 2 kernel_size: 2 stride: 2 axis: 2", type_="Deconvolution")),
    _net("deconv_two_bottoms", (1, 2, 3, 3),
         _conv("num_output: 2 kernel_size: 3 stride: 2", type_="Deconvolution",
               bottom='data" bottom: "data2', top='out" top: "out2'),
         extra_inputs=[("data2", (1, 2, 3, 3))]),
    _net("deconv_dilation_zero", (1, 2, 3, 3),
         _conv("num_output: 2 kernel_size: 2 stride: 2 dilation: 0", type_="Deconvolution"),
         note="dilation 0: every tap writes the same pixel"),
]

_P = (1, 2, 6, 7)
POOL = [
    _net("max_ceil_default", (2, 2, 7, 7), _pool("pool: MAX kernel_size: 3 stride: 2"),
         inputs={"data": _distinct(2, 2, 7, 7)}),
    _net("max_floor", (2, 2, 7, 8), _pool("pool: MAX kernel_size: 2 stride: 2 round_mode: FLOOR"),
         inputs={"data": _distinct(2, 2, 7, 8)}),
    _net("max_ceil_partial_window", (1, 2, 5, 5), _pool("pool: MAX kernel_size: 2 stride: 2"),
         inputs={"data": _distinct(1, 2, 5, 5)}, note="last window overhangs by one row (torch agrees)"),
    _net("max_pad", _P, _pool("pool: MAX kernel_size: 3 stride: 2 pad: 1"), inputs={"data": _distinct(*_P)}),
    _net("max_pad_clip_rule", (1, 2, 4, 4), _pool("pool: MAX kernel_size: 3 stride: 3 pad: 2"),
         inputs={"data": _distinct(1, 2, 4, 4)},
         note="ceil gives 3; the last window would start at 6 >= H + p, so Caffe drops it; pad > k/2"),
    _net("max_pad_gt_half_kernel", (1, 2, 5, 6), _pool("pool: MAX kernel_size: 3 stride: 1 pad: 2"),
         inputs={"data": _distinct(1, 2, 5, 6)}, note="torch refuses pad > kernel/2"),
    _net("max_pad_floor", (1, 2, 6, 7), _pool("pool: MAX kernel_size: 3 stride: 2 pad: 1 round_mode: FLOOR"),
         inputs={"data": _distinct(1, 2, 6, 7)}),
    _net("max_rect", (1, 2, 7, 9),
         _pool("pool: MAX kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 1"),
         inputs={"data": _distinct(1, 2, 7, 9)}),
    _net("max_mask_top", (2, 2, 5, 5),
         _pool("pool: MAX kernel_size: 3 stride: 2 pad: 1", tops=("out", "mask")),
         inputs={"data": _distinct(2, 2, 5, 5)},
         note="second top: flat index h*W + w of each maximum, as floats"),
    _net("max_mask_top_pad_gt_half", (1, 1, 4, 5),
         _pool("pool: MAX kernel_size: 3 stride: 2 pad: 2", tops=("out", "mask")),
         inputs={"data": _distinct(1, 1, 4, 5)}),
    _net("max_ties", (1, 2, 6, 6), _pool("pool: MAX kernel_size: 3 stride: 2 pad: 1", tops=("out", "mask")),
         inputs={"data": _ties(1, 2, 6, 6)},
         note="equal values: Caffe keeps the first maximum in row-major order (strict >)"),
    _net("max_ties_native", (1, 2, 6, 6), _pool("pool: MAX kernel_size: 2 stride: 2"),
         inputs={"data": _ties(1, 2, 6, 6)}),
    # 8 or more channels: the CPU forward runs torch's channels-last kernel
    # (caffe_compat/layers/vision/_cpu_kernels.py).
    _net("max_wide_channels_ties", (2, 8, 9, 9), _pool("pool: MAX kernel_size: 3 stride: 2"),
         inputs={"data": _ties(2, 8, 9, 9)}, note="8 channels, ceil rounding, equal values"),
    _net("max_wide_channels_lenet", (3, 8, 8, 8), _pool("pool: MAX kernel_size: 2 stride: 2"),
         inputs={"data": _distinct(3, 8, 8, 8)}, note="LeNet's 2/2 pooling with 8 channels"),
    _net("max_global", (2, 3, 3, 5), _pool("pool: MAX global_pooling: true"),
         inputs={"data": _distinct(2, 3, 3, 5)}),
    _net("max_kernel_gt_input", (1, 2, 2, 2), _pool("pool: MAX kernel_size: 3 stride: 2"),
         inputs={"data": _distinct(1, 2, 2, 2)},
         note="ceil((2 - 3)/2) + 1 = 1: one window larger than the input"),
    _net("max_overhang_window_mask", (1, 1, 6, 6),
         _pool("pool: MAX kernel_size: 2 stride: 3", tops=("out", "mask")), grad=False,
         inputs={"data": _distinct(1, 1, 6, 6)},
         note="the third window starts at H: value -FLT_MAX, mask -1 (Caffe's backward would "
              "write out of bounds, so forward only)"),
    _net("ave_ceil_default", (2, 2, 7, 7), _pool("pool: AVE kernel_size: 3 stride: 2")),
    _net("ave_floor", (2, 2, 7, 8), _pool("pool: AVE kernel_size: 2 stride: 2 round_mode: FLOOR")),
    _net("ave_ceil_partial_window", (1, 2, 5, 5), _pool("pool: AVE kernel_size: 2 stride: 2"),
         note="divisor of the overhanging window is clipped at H + p = 5"),
    _net("ave_pad", _P, _pool("pool: AVE kernel_size: 3 stride: 2 pad: 1"),
         note="padding counts in the divisor"),
    _net("ave_pad_clip_rule", (1, 2, 4, 4), _pool("pool: AVE kernel_size: 3 stride: 3 pad: 2")),
    _net("ave_pad_gt_half_kernel", (1, 2, 5, 6), _pool("pool: AVE kernel_size: 3 stride: 1 pad: 2")),
    _net("ave_pad_floor", (1, 2, 6, 7), _pool("pool: AVE kernel_size: 3 stride: 2 pad: 1 round_mode: FLOOR")),
    _net("ave_rect", (1, 2, 7, 9),
         _pool("pool: AVE kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 1")),
    _net("ave_wide_channels_pad", (2, 9, 9, 8), _pool("pool: AVE kernel_size: 3 stride: 2 pad: 1"),
         note="9 channels (channels-last CPU forward), padding counted in the divisor"),
    _net("ave_global", (2, 3, 3, 5), _pool("pool: AVE global_pooling: true")),
    _net("ave_kernel_gt_input", (1, 2, 2, 2), _pool("pool: AVE kernel_size: 3 stride: 2")),
    _net("ave_overhang_window", (1, 2, 6, 6), _pool("pool: AVE kernel_size: 2 stride: 3"),
         note="the third window starts at H with no padding: Caffe divides 0 by a pool size of 0 "
              "(NaN); its backward skips the empty window, so gradients stay finite"),
    _net("max_overhang_no_mask_then_ave", (1, 1, 7, 7),
         _pool("pool: AVE kernel_size: 3 stride: 3", name="ave") +
         _pool("pool: MAX kernel_size: 2 stride: 2", name="max", tops=("out2",)), grad=False,
         note="7x7, k3, s3: ceil(4/3) + 1 = 3 windows, the last one [6, 9) partial (torch agrees)"),
]

LRN = [
    _net("lrn_across_defaults", (2, 7, 3, 3), _lrn(""),
         note="local_size 5, alpha 1, beta 0.75, k 1: y = x (k + alpha/n sum x^2)^-beta"),
    _net("lrn_across_params", (2, 6, 3, 2), _lrn("local_size: 3 alpha: 0.5 beta: 0.6 k: 2"),
         inputs={"data": away_from(2, 6, 3, 2, scale=2.0)}),
    _net("lrn_across_size_gt_channels", (1, 3, 2, 3), _lrn("local_size: 7 alpha: 2 beta: 1.5"),
         note="window wider than the channel axis: zero padding on both sides"),
    _net("lrn_across_size1", (1, 4, 2, 2), _lrn("local_size: 1 alpha: 3 beta: 0.5 k: 0.5")),
    _net("lrn_across_caffenet", (2, 8, 3, 3), _lrn("local_size: 5 alpha: 0.0001 beta: 0.75"),
         inputs={"data": away_from(2, 8, 3, 3, scale=30.0)}, note="CaffeNet's norm1/norm2 settings"),
    _net("lrn_within_defaults", (2, 3, 4, 5), _lrn("norm_region: WITHIN_CHANNEL"),
         note="y = x (1 + alpha avgpool_nxn(x^2))^-beta with pad (n-1)/2 counted in the divisor"),
    _net("lrn_within_params", (2, 2, 5, 4),
         _lrn("norm_region: WITHIN_CHANNEL local_size: 3 alpha: 2 beta: 0.5 k: 7"),
         note="k is ignored by WITHIN_CHANNEL"),
    _net("lrn_within_size_gt_input", (1, 2, 3, 2),
         _lrn("norm_region: WITHIN_CHANNEL local_size: 7 alpha: 3 beta: 1.25")),
    _net("lrn_after_conv_inplace_relu", (2, 3, 5, 5),
         _conv("num_output: 5 kernel_size: 3 pad: 1", top="conv") +
         'layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }\n' +
         _lrn("local_size: 3 alpha: 0.3 beta: 0.75", bottom="conv"),
         note="Conv -> in-place ReLU -> LRN, as in CaffeNet"),
]


def _init_case(name, layers, shape=(1, 3, 8, 8), note=""):
    text = input_layer(("data", shape)) + '\nname: "init"\n' + layers
    return {"kind": "init", "name": name, "prototxt": text.strip() + "\n", "seed": 0, "note": note}


def _filled(name, filler, type_="Convolution", params="num_output: 64 kernel_size: 5"):
    return _conv("%s weight_filler { %s } bias_filler { type: \"constant\" value: 0.25 }" % (params, filler),
                 type_=type_, name=name, top=name)


INIT = [
    _init_case("init_conv_fillers",
               _conv("num_output: 3 kernel_size: 2", name="defaults", top="defaults") +
               _filled("constant", 'type: "constant" value: 1.5') +
               _filled("gaussian", 'type: "gaussian" std: 0.1') +
               _filled("uniform", 'type: "uniform" min: -0.3 max: 0.2') +
               _filled("xavier", 'type: "xavier"') +
               _filled("xavier_avg", 'type: "xavier" variance_norm: AVERAGE') +
               _filled("msra", 'type: "msra"') +
               _filled("msra_fan_out", 'type: "msra" variance_norm: FAN_OUT') +
               _filled("xavier_group", 'type: "xavier"',
                       params="num_output: 63 kernel_size: 5 group: 3 pad: 2"),
               note="default fillers: weight constant 0, bias constant 0; fan_in = count/shape[0]"),
    _init_case("init_deconv_fillers",
               _filled("d_xavier", 'type: "xavier"', type_="Deconvolution") +
               _filled("d_msra", 'type: "msra"', type_="Deconvolution") +
               _filled("d_bilinear4", 'type: "bilinear"', type_="Deconvolution",
                       params="num_output: 3 kernel_size: 4 stride: 2 group: 3") +
               _filled("d_bilinear3", 'type: "bilinear"', type_="Deconvolution",
                       params="num_output: 3 kernel_size: 3 stride: 2 group: 3") +
               _filled("d_bilinear5", 'type: "bilinear"', type_="Deconvolution",
                       params="num_output: 6 kernel_size: 5 stride: 3 group: 3"),
               note="Deconvolution weights are (C_in, C_out/g, k, k): xavier's fan_in is C_out/g*k*k; "
                    "bilinear upsampling kernels"),
]

CASES = CONV + DECONV + POOL + LRN + INIT

_FULL_LIMIT = 512  # blobs up to this many values are stored whole


def generate(case, caffe, rng):
    """``init`` cases: the parameter blobs as Caffe's fillers made them."""
    import os
    import tempfile

    assert case["kind"] == "init"
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(case["prototxt"])
        path = f.name
    try:
        caffe.set_random_seed(int(case["seed"]))
        net = caffe.Net(path, caffe.TEST)
    finally:
        os.unlink(path)
    arrays = {}
    for lname, blobs in net.params.items():
        for i, blob in enumerate(blobs):
            v = blob.data.astype(np.float64)
            key = "%s/%d" % (lname, i)
            arrays["shape/" + key] = np.array(blob.data.shape, dtype=np.int64)
            arrays["stats/" + key] = np.array([v.mean(), v.std(), v.min(), v.max()])
            if v.size <= _FULL_LIMIT:
                arrays["value/" + key] = blob.data.copy()
    meta = {"kind": "init", "name": case["name"], "prototxt": case["prototxt"], "note": case["note"]}
    return meta, arrays
