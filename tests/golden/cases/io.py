"""pycaffe's Python modules run by real pycaffe: caffe.io, NetSpec, coord_map, draw,
Classifier, Detector, and Caffe's tools/extra/parse_log.py.

Python 3.9 + numpy only at import time: the NetSpec / coord_map builders below take the
``caffe`` module as an argument, so the same function builds the net with real pycaffe
(in ``generate``) and with caffe_compat (in the tests). Fixture kinds:

``io_resize`` / ``io_oversample`` / ``io_transformer`` / ``io_blob`` / ``io_datum`` /
``io_load_image``: caffe.io inputs and outputs; ``net_spec``: the NetParameter (text
and bytes) a builder makes, and what real Caffe's Net built from it; ``coord_map``:
maps and crops; ``draw``: the DOT source of ``get_pydot_graph``; ``classifier`` /
``detector``: predictions from a tiny net with stored weights; ``parse_log``: a log
and the CSV files Caffe's parse_log.py writes for it.

Shims that make pycaffe run on the reference stack (recorded in each fixture's note):
``skimage.io.imread`` gets back its old ``as_grey`` keyword (scikit-image renamed it to
``as_gray``); Detector's float slice bounds are truncated to int, as NumPy < 1.12 did;
the year that newer glog writes into each log line (``I20261128``) is dropped to give
the classic ``I1128`` form that Caffe's parse_log.py reads. Caffe's parse_log.py and
extract_seconds.py are not part of pycaffe: point ``CAFFE_PARSE_LOG`` at a copy of
``tools/extra/parse_log.py`` (default /work/caffe_ref/tools_extra/parse_log.py).
"""

import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

# ================================================================= case helpers


def _case(kind, name, note="", **fields):
    d = {"kind": kind, "name": name, "note": note, "seed": sum(map(ord, name)) * 7919}
    d.update(fields)
    return d


def resize(name, shape, new_dims, order=1, dtype="float32", low=0.0, high=1.0, const=None,
           note=""):
    return _case("io_resize", name, note, shape=list(shape), new_dims=list(new_dims), order=order,
                 dtype=dtype, low=low, high=high, const=const)


def transformer(name, blob_shape, data_shapes, note="", **settings):
    return _case("io_transformer", name, note, blob_shape=list(blob_shape),
                 data_shapes=[list(s) for s in data_shapes], settings=settings)


# ============================================================ NetSpec builders
# Each takes the caffe module (real pycaffe or caffe_compat) and returns a NetParameter.


def ns_lenet(caffe):
    L, P = caffe.layers, caffe.params
    n = caffe.NetSpec()
    n.data, n.label = L.DummyData(shape=[dict(dim=[4, 1, 28, 28]), dict(dim=[4, 1, 1, 1])],
                                  transform_param=dict(scale=1. / 255), ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20,
                            weight_filler=dict(type='xavier'))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.conv2 = L.Convolution(n.pool1, kernel_size=5, num_output=50,
                            weight_filler=dict(type='xavier'))
    n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.ip1 = L.InnerProduct(n.pool2, num_output=500, weight_filler=dict(type='xavier'))
    n.relu1 = L.ReLU(n.ip1, in_place=True)
    n.ip2 = L.InnerProduct(n.relu1, num_output=10, weight_filler=dict(type='xavier'))
    n.loss = L.SoftmaxWithLoss(n.ip2, n.label)
    return n.to_proto()


def ns_anon_lenet(caffe):
    L, P = caffe.layers, caffe.params
    data, label = L.DummyData(shape=[dict(dim=[4, 1, 28, 28]), dict(dim=[4, 1, 1, 1])],
                              transform_param=dict(scale=1. / 255), ntop=2)
    conv1 = L.Convolution(data, kernel_size=5, num_output=20, weight_filler=dict(type='xavier'))
    pool1 = L.Pooling(conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    conv2 = L.Convolution(pool1, kernel_size=5, num_output=50, weight_filler=dict(type='xavier'))
    pool2 = L.Pooling(conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    ip1 = L.InnerProduct(pool2, num_output=500, weight_filler=dict(type='xavier'))
    relu1 = L.ReLU(ip1, in_place=True)
    ip2 = L.InnerProduct(relu1, num_output=10, weight_filler=dict(type='xavier'))
    loss = L.SoftmaxWithLoss(ip2, label)
    return loss.to_proto()


def ns_silent(caffe):
    L = caffe.layers
    n = caffe.NetSpec()
    n.data, n.data2 = L.DummyData(shape=dict(dim=3), ntop=2)
    n.silence_data = L.Silence(n.data, ntop=0)
    n.silence_data2 = L.Silence(n.data2, ntop=0)
    return n.to_proto()


def ns_input_convnet(caffe):
    """Input layers, param dicts, repeated fields given as scalars and lists, enums from P."""
    L, P = caffe.layers, caffe.params
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 3, 9, 9]))
    n.label = L.Input(shape=dict(dim=[2]))
    n.conv = L.Convolution(n.data, num_output=4, kernel_size=[3, 3], stride=2, pad=1,
                           param=[dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)],
                           weight_filler=dict(type='gaussian', std=0.01),
                           bias_filler=dict(type='constant', value=0.1))
    n.relu = L.ReLU(n.conv, in_place=True)
    n.pool = L.Pooling(n.relu, pool=P.Pooling.AVE, kernel_size=3, stride=2)
    n.ip = L.InnerProduct(n.pool, num_output=5, param=dict(lr_mult=1))
    n.prob = L.Softmax(n.ip)
    n.loss = L.SoftmaxWithLoss(n.ip, n.label, loss_weight=0.5,
                               loss_param=dict(ignore_label=-1, normalization=P.Loss.VALID))
    n.acc = L.Accuracy(n.ip, n.label, include=dict(phase=caffe.TEST), accuracy_param=dict(top_k=2))
    return n.to_proto()


def ns_autonames(caffe):
    """Unnamed tops get <Type><k> names in the order names are needed; in-place layers
    are named after an assigned top when there is one."""
    L = caffe.layers
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 2, 4, 4]))
    a = L.ReLU(n.data)
    b = L.ReLU(a, in_place=True)
    c = L.Pooling(b, kernel_size=2, stride=2)
    n.out = L.Eltwise(c, L.Pooling(a, kernel_size=2, stride=2))
    n.tanh = L.TanH(n.out, in_place=True)
    n.sig = L.Sigmoid(n.tanh)
    return n.to_proto()


def ns_multi_top(caffe):
    """ntop > 1 (Slice) with some tops named, some not; a layer-level field (propagate_down)
    and a top given twice to the spec (the last name wins)."""
    L = caffe.layers
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 6, 3]))
    n.s0, s1, n.s2 = L.Slice(n.data, slice_param=dict(axis=1, slice_point=[1, 3]), ntop=3)
    n.cat = L.Concat(n.s2, s1, n.s0, axis=1, propagate_down=[True, False, True])
    n.cat_again = n.cat
    n.flat = L.Flatten(n.cat_again)
    return n.to_proto()


def ns_python_and_deconv(caffe):
    """A Python layer's python_param keys; Deconvolution with convolution_param; a Data
    layer with several *_param dicts and include/exclude rules."""
    L = caffe.layers
    n = caffe.NetSpec()
    n.data, n.label = L.Data(source='train_lmdb', backend=caffe.params.Data.LMDB, batch_size=8,
                             transform_param=dict(mirror=True, crop_size=5, mean_value=[104, 117]),
                             include=[dict(phase=caffe.TRAIN, stage=['a', 'b'])], ntop=2)
    n.py = L.Python(n.data, module='my_layers', layer='MyLayer', param_str='{"k": 3}',
                    exclude=dict(phase=caffe.TEST))
    n.up = L.Deconvolution(n.py, convolution_param=dict(num_output=3, kernel_size=4, stride=2,
                                                        bias_term=False),
                           param=[dict(lr_mult=0)])
    n.crop = L.Crop(n.up, n.data, axis=2, offset=[1, 1])
    return n.to_proto()


def ns_loss_weights(caffe):
    """Several loss tops, a named layer via name=, top-less layers among named ones."""
    L = caffe.layers
    n = caffe.NetSpec()
    n.a, n.b = L.Input(shape=[dict(dim=[3, 4]), dict(dim=[3, 4])], ntop=2)
    n.euc = L.EuclideanLoss(n.a, n.b, loss_weight=2)
    n.diff = L.Eltwise(n.a, n.b, operation=caffe.params.Eltwise.SUM, coeff=[1, -1], name='minus')
    n.abs = L.AbsVal(n.diff)
    L.Silence(n.abs, ntop=0)  # not reachable from a named top: left out
    n.sil = L.Silence(n.abs, ntop=0)
    return n.to_proto()


NET_SPEC_BUILDERS = {f.__name__: f for f in (
    ns_lenet, ns_anon_lenet, ns_silent, ns_input_convnet, ns_autonames, ns_multi_top,
    ns_python_and_deconv, ns_loss_weights)}


# ========================================================== coord_map builders


def cm_net(caffe, ks=3, stride=1, pad=0, pool=2, dstride=2, dpad=0, dilation=None):
    """pycaffe's conv → pool → deconv test net."""
    L, P = caffe.layers, caffe.params
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 1, 100, 100]))
    n.aux = L.Input(shape=dict(dim=[2, 1, 20, 20]))
    conv = dict(num_output=10, kernel_size=ks, stride=stride, pad=pad)
    if dilation is not None:
        conv["dilation"] = dilation
    n.conv = L.Convolution(n.data, **conv)
    n.pool = L.Pooling(n.conv, pool=P.Pooling.MAX, kernel_size=pool, stride=pool, pad=0)
    deconv_ks = [s * 2 for s in dstride] if isinstance(dstride, list) else dstride * 2
    n.deconv = L.Deconvolution(n.pool, num_output=10, kernel_size=deconv_ks, stride=dstride,
                               pad=dpad)
    return n


def cm_fcn(caffe):
    """An FCN-style head: score → upsample → crop to the input (FCN's crop(n.upscore, n.data))."""
    L, P = caffe.layers, caffe.params
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 64, 64]))
    n.conv1 = L.Convolution(n.data, num_output=8, kernel_size=3, pad=100)
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.pool1 = L.Pooling(n.relu1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.conv2 = L.Convolution(n.pool1, num_output=8, kernel_size=3, pad=1)
    n.pool2 = L.Pooling(n.conv2, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.score = L.Convolution(n.pool2, num_output=2, kernel_size=1)
    n.upscore = L.Deconvolution(n.score, convolution_param=dict(num_output=2, kernel_size=8,
                                                                stride=4, bias_term=False))
    n.score_pool1 = L.Convolution(n.pool1, num_output=2, kernel_size=1)
    n.drop = L.Dropout(n.score_pool1, dropout_ratio=0.5)
    return n


def _coord_map_module(caffe):
    import importlib
    return importlib.import_module(caffe.__name__ + ".coord_map")


def cm_pairs(caffe):
    """[(label, from top, to top)] covering conv/pool/deconv, pass-through, multi-bottom,
    anisotropic and N-d parameters, dilation and Crop."""
    L = caffe.layers
    pairs = []
    for kw in (dict(), dict(pool=4, dstride=4), dict(pad=3), dict(dpad=2), dict(pad=2, dpad=2),
               dict(ks=5, stride=2, pad=10), dict(ks=[3, 5], stride=[1, 2], pad=[0, 10]),
               dict(dilation=2), dict(pool=3, dstride=2), dict(dpad=10)):
        n = cm_net(caffe, **kw)
        label = "deconv->data " + ",".join("%s=%s" % kv for kv in sorted(kw.items()))
        pairs.append((label, n.deconv, n.data))
    n = cm_net(caffe)
    n.relu = L.ReLU(n.deconv)
    n.conv1x1 = L.Convolution(n.relu, num_output=10, kernel_size=1, stride=1, pad=0)
    pairs.append(("relu->data", n.relu, n.data))
    pairs.append(("conv1x1->data", n.conv1x1, n.data))
    pairs.append(("data->deconv (inverse direction)", n.data, n.deconv))
    n.conv_data, n.conv_aux = L.Convolution(n.data, n.aux, ntop=2, num_output=10, kernel_size=5,
                                            stride=2, pad=0)
    pairs.append(("multi bottom: conv_data->data", n.conv_data, n.data))
    pairs.append(("multi bottom: conv_aux->aux", n.conv_aux, n.aux))
    n.crop = L.Crop(n.deconv, n.data, axis=2, offset=7)
    pairs.append(("crop of crop", n.crop, n.data))
    n3 = caffe.NetSpec()
    n3.data = L.Input(shape=dict(dim=[2, 3, 100, 100, 100]))
    n3.conv = L.Convolution(n3.data, num_output=10, kernel_size=[3, 3, 3], stride=[1, 1, 1],
                            pad=[0, 1, 2])
    n3.pool = L.Pooling(n3.conv, pool=caffe.params.Pooling.MAX, kernel_size=2, stride=2, pad=0)
    n3.deconv = L.Deconvolution(n3.pool, num_output=10, kernel_size=4, stride=2, pad=0)
    pairs.append(("nd conv", n3.deconv, n3.data))
    f = cm_fcn(caffe)
    pairs.append(("fcn upscore->data", f.upscore, f.data))
    pairs.append(("fcn score_pool1 (dropout)->data", f.drop, f.data))
    pairs.append(("fcn upscore->score_pool1", f.upscore, f.drop))
    ip = cm_net(caffe)
    ip.ip = L.InnerProduct(ip.deconv, num_output=10)
    pairs.append(("unconnected: ip->data", ip.ip, ip.data))
    return pairs


def cm_crops(caffe):
    """[(label, NetSpec, from, to)] for crop(): the FCN crops and the failing ones."""
    out = []
    f = cm_fcn(caffe)
    out.append(("fcn upscore to data", f, "upscore", "data"))
    f2 = cm_fcn(caffe)
    out.append(("fcn score_pool1 to data", f2, "drop", "data"))
    out.append(("identity conv-pool-deconv", cm_net(caffe), "deconv", "data"))
    out.append(("scale mismatch", cm_net(caffe, pool=3, dstride=2), "deconv", "data"))
    out.append(("negative offset", cm_net(caffe, dpad=10), "deconv", "data"))
    return out


# ======================================================================= cases

_LENET_PROTOTXT = """
name: "LeNet"
layer { name: "mnist" type: "Data" top: "data" top: "label" include { phase: TRAIN }
  transform_param { scale: 0.00390625 } data_param { source: "train_lmdb" batch_size: 64 backend: LMDB } }
layer { name: "mnist" type: "Data" top: "data" top: "label" include { phase: TEST }
  transform_param { scale: 0.00390625 } data_param { source: "test_lmdb" batch_size: 100 backend: LMDB } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 20 kernel_size: 5 stride: 1 weight_filler { type: "xavier" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1"
  param { lr_mult: 0.5 } param { lr_mult: 0 } inner_product_param { num_output: 500 } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "up" type: "Deconvolution" bottom: "pool1" top: "up"
  convolution_param { num_output: 3 kernel_size: 4 stride: 2 pad: 1 } }
layer { name: "apool" type: "Pooling" bottom: "up" top: "apool"
  pooling_param { pool: AVE kernel_size: 3 stride: 1 pad: 1 } }
layer { name: "accuracy" type: "Accuracy" bottom: "ip1" bottom: "label" top: "accuracy"
  include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss"
  exclude { phase: TEST } }
layer { name: "stage_only" type: "Silence" bottom: "apool" include { stage: "deploy" } }
"""

# raw_scale 255 with weights of std 0.5 gave logits of ~700, where float32 rounding of the
# conv/IP sums moves the softmax by 1.2e-5 (Caffe's own result is 4e-6 from float64 there, and
# ours 8e-6 on an AVX-512 CPU): a test of rounding, not of the Detector's preprocessing.
_WELL_CONDITIONED = "weights of std 0.06 so that raw_scale 255 keeps the logits near 10"

_TINY_CLASSIFIER = """
name: "tiny_classifier"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip" inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""

_TINY_SOLVER_NET = """
name: "tiny"
layer { name: "data" type: "DummyData" top: "data" top: "label" include { phase: TRAIN }
  dummy_data_param { shape { dim: 8 dim: 4 } shape { dim: 8 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "uniform" min: 0 max: 2.99 } } }
layer { name: "data" type: "DummyData" top: "data" top: "label" include { phase: TEST }
  dummy_data_param { shape { dim: 8 dim: 4 } shape { dim: 8 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "uniform" min: 0 max: 2.99 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "accuracy" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy" }
"""

_TINY_SOLVER = """
net: "net.prototxt"
test_iter: 2
test_interval: 20
base_lr: 0.05
lr_policy: "step"
gamma: 0.5
stepsize: 25
momentum: 0.9
display: 10
max_iter: 60
random_seed: 3
solver_mode: CPU
snapshot_prefix: "tiny"
"""

_SYNTHETIC_LOG = """\
Log file created at: 2015/12/31 23:59:50
I1231 23:59:50.000100  1234 caffe.cpp:185] Using GPUs 0
I1231 23:59:51.250000  1234 solver.cpp:280] Solving synthetic
I1231 23:59:51.250010  1234 solver.cpp:281] Learning Rate Policy: inv
I1231 23:59:51.300000  1234 solver.cpp:338] Iteration 0, Testing net (#0)
I1231 23:59:52.000001  1234 solver.cpp:406]     Test net output #0: accuracy = 0.1
I1231 23:59:52.000002  1234 solver.cpp:406]     Test net output #1: loss = 2.30259 (* 1 = 2.30259 loss)
I1231 23:59:52.100000  1234 solver.cpp:229] Iteration 0, loss = 2.30001
I1231 23:59:52.100100  1234 solver.cpp:245]     Train net output #0: loss = 2.30001 (* 1 = 2.30001 loss)
I1231 23:59:52.100200  1234 sgd_solver.cpp:106] Iteration 0, lr = 0.01
I1231 23:59:59.900000  1234 solver.cpp:229] Iteration 100, loss = 0.25
I1231 23:59:59.900100  1234 solver.cpp:245]     Train net output #0: loss = 0.25 (* 1 = 0.25 loss)
I1231 23:59:59.900200  1234 sgd_solver.cpp:106] Iteration 100, lr = 9.92565e-03
resuming from a snapshot: this line has no time stamp
I0101 00:00:07.500000  1234 solver.cpp:229] Iteration 200, loss = 1.5e-01
I0101 00:00:07.500100  1234 solver.cpp:245]     Train net output #0: loss = 1.5e-01 (* 1 = 0.15 loss)
I0101 00:00:07.500200  1234 sgd_solver.cpp:106] Iteration 200, lr = 0.00985258
I0101 00:00:08.000000  1234 solver.cpp:338] Iteration 200, Testing net (#0)
I0101 00:00:09.000000  1234 solver.cpp:406]     Test net output #0: accuracy = 0.9
I0101 00:00:09.000001  1234 solver.cpp:406]     Test net output #1: loss = 0.3 (* 1 = 0.3 loss)
I0101 00:00:09.100000  1234 solver.cpp:338] Iteration 300, Testing net (#0)
I0101 00:00:09.200000  1234 solver.cpp:406]     Test net output #0: accuracy = 0.95
I0101 00:00:10.000000  1234 solver.cpp:229] Iteration 300, loss = 0.125
I0101 00:00:10.000100  1234 solver.cpp:245]     Train net output #0: loss = 0.125 (* 1 = 0.125 loss)
I0101 00:00:10.000200  1234 sgd_solver.cpp:106] Iteration 300, lr = +1.5E-3
I0101 00:00:11.000000  1234 solver.cpp:229] Iteration 400, loss = 0.1
I0101 00:00:11.000100  1234 solver.cpp:245]     Train net output #0: loss = 0.1 (* 1 = 0.1 loss)
I0101 00:00:11.500000  1234 solver.cpp:338] Iteration 400, Testing net (#0)
I0101 00:00:11.600000  1234 solver.cpp:406]     Test net output #0: accuracy = 0.97
I0101 00:00:11.600001  1234 solver.cpp:406]     Test net output #1: loss = 0.09 (* 1 = 0.09 loss)
I0101 00:00:12.000000  1234 solver.cpp:454] Snapshotting to binary proto file x_iter_400.caffemodel
I0101 00:00:12.100000  1234 solver.cpp:317] Iteration 400, loss = 0.1
I0101 00:00:12.200000  1234 solver.cpp:322] Optimization Done.
"""

CASES = [
    # ------------------------------------------------------------ resize_image
    resize("resize_down_rgb", (11, 9, 3), (5, 4), note="shrink: Gaussian anti-aliasing + bilinear"),
    resize("resize_up_rgb", (5, 4, 3), (11, 9), note="enlarge: zeros outside the image at edges"),
    resize("resize_mixed_gray", (6, 10, 1), (9, 4), note="one axis up, one down"),
    resize("resize_big_shrink", (64, 48, 3), (8, 12), note="strong blur (sigma 3.5 and 1.5)"),
    resize("resize_range_255", (7, 7, 3), (10, 5), low=-20.0, high=255.0,
           note="values outside [0, 1] are normalised and mapped back"),
    resize("resize_float64", (9, 6, 3), (4, 13), dtype="float64"),
    resize("resize_uint8", (9, 6, 3), (4, 4), dtype="uint8", low=0, high=255),
    resize("resize_order0", (7, 9, 3), (12, 4), order=0),
    resize("resize_order3", (7, 9, 3), (12, 4), order=3, note="spline: SciPy on our side"),
    resize("resize_constant", (5, 5, 3), (8, 3), const=0.25, note="constant image: filled"),
    resize("resize_identity", (6, 7, 3), (6, 7)),
    resize("resize_2ch", (22, 14, 2), (20, 23), note="not 1/3 channels: ndimage.zoom, corner "
           "aligned; 22->20 rounds the last sample outside the image and SciPy zeroes it"),
    resize("resize_5ch_order0", (9, 6, 5), (4, 10), order=0),
    resize("resize_4ch_order3", (9, 6, 4), (5, 10), order=3),
    # ------------------------------------------------------------- oversample
    _case("io_oversample", "oversample_odd", shapes=[[9, 11, 3], [9, 11, 3]], crop=[5, 6]),
    _case("io_oversample", "oversample_even", shapes=[[8, 8, 1]], crop=[3, 5]),
    _case("io_oversample", "oversample_full", shapes=[[4, 5, 3]], crop=[4, 5]),
    # ------------------------------------------------------------ Transformer
    transformer("transformer_imagenet_style", (1, 3, 6, 6), [(6, 6, 3), (9, 5, 3)],
                transpose=[2, 0, 1], channel_swap=[2, 1, 0], raw_scale=255.0,
                mean={"kind": "vector"}, note="the classify.py settings; a second input is resized"),
    transformer("transformer_mean_image", (2, 3, 5, 4), [(5, 4, 3)], transpose=[2, 0, 1],
                mean={"kind": "image", "shape": [3, 5, 4]}, input_scale=0.5),
    transformer("transformer_mean_resized", (1, 3, 5, 4), [(5, 4, 3)], transpose=[2, 0, 1],
                mean={"kind": "image", "shape": [3, 8, 7]}, raw_scale=2.0,
                note="a mean image of another size is resized (normalised to [0, 1] first)"),
    transformer("transformer_gray_2d_mean", (1, 1, 4, 6), [(4, 6, 1)], transpose=[2, 0, 1],
                mean={"kind": "image", "shape": [4, 6]}, input_scale=3.0),
    transformer("transformer_no_transpose", (1, 3, 4, 5), [(6, 7, 3), (4, 5, 3)],
                raw_scale=2.0, input_scale=0.5,
                note="no transpose: the result stays H x W x K; resized only when needed"),
    # --------------------------------------------------------- proto helpers
    _case("io_blob", "blobproto_roundtrip",
          shapes=[[2, 3, 4], [5], [1, 1, 3, 2], [2, 0, 3], []],
          note="float64/int arrays -> BlobProto bytes; legacy 4-d blobs; BlobProtoVector"),
    _case("io_datum", "datum_roundtrip",
          note="uint8 -> data bytes, other dtypes -> float_data; with and without label"),
    # ------------------------------------------------------------ load_image
    _case("io_load_image", "load_image_formats",
          note="PNG (L, RGB, RGBA, P, LA, 1-bit, 16-bit), JPEG (RGB, L), BMP; color True/False"),
    # ------------------------------------------------------------------ NetSpec
    _case("net_spec_names", "net_spec_param_names", note="layer type -> *_param field map"),
] + [
    _case("net_spec", "net_spec_" + name[3:], builder=name,
          load=name not in ("ns_python_and_deconv",),
          note=(NET_SPEC_BUILDERS[name].__doc__ or "").strip())
    for name in NET_SPEC_BUILDERS
] + [
    _case("coord_map", "coord_map_pairs", note="coord_map_from_to on pycaffe's test nets and FCN"),
    _case("coord_map_crop", "coord_map_crops", note="crop(): Crop layers FCN scripts build"),
    # --------------------------------------------------------------------- draw
    _case("draw", "draw_lenet_lr", prototxt=_LENET_PROTOTXT, rankdir="LR"),
    _case("draw", "draw_lenet_tb_train", prototxt=_LENET_PROTOTXT, rankdir="TB", phase="TRAIN",
          display_lrm=True),
    _case("draw", "draw_lenet_bt_test_nolabels", prototxt=_LENET_PROTOTXT, rankdir="BT",
          phase="TEST", label_edges=False),
    # --------------------------------------------------------------- Classifier
    _case("classifier", "classifier_oversample", prototxt=_TINY_CLASSIFIER,
          images=[[12, 10, 3], [8, 8, 3], [20, 15, 3]], options={},
          note="default image_dims (the input size); oversample and centre crop"),
    _case("classifier", "classifier_imagenet_style", prototxt=_TINY_CLASSIFIER,
          images=[[12, 10, 3], [9, 14, 3], [7, 7, 3]],
          options={"image_dims": [11, 10], "mean": "vector", "raw_scale": 255.0,
                   "channel_swap": [2, 1, 0], "input_scale": 0.017}),
    _case("classifier", "classifier_mean_image", prototxt=_TINY_CLASSIFIER,
          images=[[16, 16, 3]], options={"image_dims": [10, 12], "mean": "image"}),
    # ----------------------------------------------------------------- Detector
    _case("detector", "detector_windows", prototxt=_TINY_CLASSIFIER,
          images=[[20, 24], [16, 16]], windows=[[[0, 0, 10, 12], [5, 6, 19, 23], [2, 3, 6, 9]],
                                                [[4, 4, 12, 12]]],
          options={"mean": "vector", "raw_scale": 255.0, "channel_swap": [2, 1, 0]},
          weight_std=0.06, note=_WELL_CONDITIONED),
    _case("detector", "detector_context_pad", prototxt=_TINY_CLASSIFIER,
          images=[[20, 24]], windows=[[[0, 0, 10, 12], [5, 6, 19, 23], [8, 8, 12, 12]]],
          options={"mean": "vector", "raw_scale": 255.0, "channel_swap": [2, 1, 0],
                   "context_pad": 2},
          weight_std=0.06, note="R-CNN context padding (mean-filled outside the image); "
          + _WELL_CONDITIONED),
    _case("detector", "detector_context_pad_mean_image", prototxt=_TINY_CLASSIFIER,
          images=[[18, 18]], windows=[[[3, 2, 15, 14], [0, 0, 17, 17]]],
          options={"mean": "image", "context_pad": 1}),
    # ---------------------------------------------------------------- parse_log
    _case("parse_log", "parse_log_real_training", net=_TINY_SOLVER_NET, solver=_TINY_SOLVER,
          delimiter=",", note="a log from a real pycaffe training run"),
    _case("parse_log", "parse_log_synthetic", log=_SYNTHETIC_LOG, delimiter=";",
          note="year roll-over, a line without time stamp, lr in e-notation, an unfinished test "
               "row, rows before any lr line"),
]


# ================================================================== generation


def generate(case, caffe, rng):
    return _GENERATORS[case["kind"]](case, caffe, rng)


def _meta(case, **extra):
    meta = {"kind": case["kind"], "name": case["name"], "note": case["note"]}
    meta.update(extra)
    return meta


def _bytes(b):
    return np.frombuffer(b, dtype=np.uint8).copy()


def _gen_resize(case, caffe, rng):
    shape, dtype = tuple(case["shape"]), np.dtype(case["dtype"])
    if case["const"] is not None:
        im = np.full(shape, case["const"], dtype=dtype)
    else:
        im = rng.uniform(case["low"], case["high"], size=shape).astype(dtype)
    out = caffe.io.resize_image(im, tuple(case["new_dims"]), interp_order=case["order"])
    return _meta(case, new_dims=case["new_dims"], order=case["order"]), {"input": im, "output": out}


def _gen_oversample(case, caffe, rng):
    images = [rng.rand(*s).astype(np.float32) for s in case["shapes"]]
    arrays = {"image/%d" % i: im for i, im in enumerate(images)}
    arrays["output"] = caffe.io.oversample(images, tuple(case["crop"]))
    return _meta(case, crop=case["crop"], count=len(images)), arrays


def _gen_transformer(case, caffe, rng):
    shape = tuple(case["blob_shape"])
    st = case["settings"]
    t = caffe.io.Transformer({"data": shape})
    arrays, errors = {}, {}
    if "transpose" in st:
        t.set_transpose("data", tuple(st["transpose"]))
    if "channel_swap" in st:
        t.set_channel_swap("data", tuple(st["channel_swap"]))
    if "raw_scale" in st:
        t.set_raw_scale("data", st["raw_scale"])
    if "mean" in st:
        m = st["mean"]
        if m["kind"] == "vector":
            mean = rng.uniform(50, 150, size=shape[1])
        else:
            mean = rng.uniform(-1, 2, size=m["shape"])
        arrays["mean"] = mean
        t.set_mean("data", mean)
        arrays["mean_set"] = np.asarray(t.mean["data"])
    if "input_scale" in st:
        t.set_input_scale("data", st["input_scale"])
    for i, ds in enumerate(case["data_shapes"]):
        data = rng.rand(*ds).astype(np.float32)
        arrays["data/%d" % i] = data.copy()
        pre = t.preprocess("data", data)
        arrays["pre/%d" % i] = pre.copy()
        try:
            arrays["post/%d" % i] = t.deprocess("data", pre)
        except Exception as exc:  # pycaffe squeezes a single channel away, then fails
            errors["post/%d" % i] = type(exc).__name__
    return _meta(case, blob_shape=case["blob_shape"], settings=st, errors=errors,
                 count=len(case["data_shapes"])), arrays


def _gen_blob(case, caffe, rng):
    io, pb = caffe.io, caffe.proto.caffe_pb2
    arrays = {}
    arrs = []
    for i, s in enumerate(case["shapes"]):
        a = np.asarray(rng.randn(*s) * 100 if i % 2 == 0 else rng.randint(-1000, 1000, size=s))
        arrs.append(a)
        arrays["arr/%d" % i] = a
        blob = io.array_to_blobproto(a, diff=(a * 0.5 if i == 0 else None))
        arrays["blob/%d" % i] = _bytes(blob.SerializeToString())
        back = pb.BlobProto.FromString(blob.SerializeToString())
        arrays["back/%d" % i] = io.blobproto_to_array(back)
        if i == 0:
            arrays["back_diff/%d" % i] = io.blobproto_to_array(back, return_diff=True)
    legacy = pb.BlobProto()
    legacy.num, legacy.channels, legacy.height, legacy.width = 1, 2, 3, 2
    legacy.data.extend(list(rng.randn(12)))
    arrays["legacy_blob"] = _bytes(legacy.SerializeToString())
    arrays["legacy_back"] = io.blobproto_to_array(legacy)
    vec = io.arraylist_to_blobprotovector_str(arrs[:3])
    arrays["vector"] = _bytes(vec)
    for i, a in enumerate(io.blobprotovector_str_to_arraylist(vec)):
        arrays["vector_back/%d" % i] = a
    return _meta(case, count=len(arrs)), arrays


def _gen_datum(case, caffe, rng):
    io = caffe.io
    items = [
        ("u8_label", (rng.rand(3, 4, 5) * 255).astype(np.uint8), 7),
        ("u8_nolabel", (rng.rand(1, 2, 3) * 255).astype(np.uint8), None),
        ("f32_label", rng.randn(2, 3, 3).astype(np.float32), 3),
        ("f64_nolabel", rng.randn(3, 2, 2), None),
        ("i32_label", rng.randint(-5, 5, size=(1, 3, 2)).astype(np.int32), 0),
    ]
    arrays = {}
    for name, arr, label in items:
        datum = io.array_to_datum(arr, label)
        arrays["arr/" + name] = arr
        arrays["datum/" + name] = _bytes(datum.SerializeToString())
        arrays["back/" + name] = io.datum_to_array(datum)
    labels = {name: label for name, _, label in items}
    return _meta(case, labels=labels), arrays


def _image_specs(rng):
    """(file name, Pillow mode, array) for each test image."""
    rgb = (rng.rand(7, 9, 3) * 255).astype(np.uint8)
    alpha = (rng.rand(7, 9) * 255).astype(np.uint8)
    alpha[0, :] = 0
    alpha[1, :] = 255
    return [
        ("rgb.png", "RGB", rgb),
        ("gray.png", "L", rgb[:, :, 1]),
        ("rgba.png", "RGBA", np.dstack([rgb, alpha])),
        ("palette.png", "P", rgb),
        ("gray_alpha.png", "LA", np.dstack([rgb[:, :, 0], alpha])),
        ("bilevel.png", "1", rgb[:, :, 2] > 127),
        ("gray16.png", "I;16", (rng.rand(7, 9) * 65535).astype(np.uint16)),
        ("rgb.jpg", "RGB", rgb),
        ("gray.jpg", "L", rgb[:, :, 0]),
        ("rgb.bmp", "RGB", rgb),
    ]


def _write_image(path, mode, arr):
    from PIL import Image
    if mode == "P":
        Image.fromarray(arr, "RGB").convert("P").save(path)
    elif mode == "I;16":
        Image.fromarray(arr).save(path)
    elif mode == "1":
        Image.fromarray(arr).convert("1").save(path)
    else:
        Image.fromarray(arr, mode).save(path)


class _ImreadShim:
    """skimage.io.imread with the pre-0.16 ``as_grey`` keyword that pycaffe passes."""

    def __enter__(self):
        import skimage.io
        self.mod, self.orig = skimage.io, skimage.io.imread
        orig = self.orig

        def imread(fname, as_grey=False, **kw):
            return orig(fname, as_gray=as_grey, **kw)

        skimage.io.imread = imread
        return self

    def __exit__(self, *exc):
        self.mod.imread = self.orig


def _gen_load_image(case, caffe, rng):
    arrays, errors = {}, {}
    with tempfile.TemporaryDirectory() as tmp, _ImreadShim():
        for fname, mode, arr in _image_specs(rng):
            path = os.path.join(tmp, fname)
            _write_image(path, mode, arr)
            with open(path, "rb") as f:
                arrays["file/" + fname] = _bytes(f.read())
            for color in (True, False):
                key = ("color/" if color else "gray/") + fname
                try:
                    arrays[key] = caffe.io.load_image(path, color=color)
                except Exception as exc:  # recorded: pycaffe fails on some modes
                    errors[key] = type(exc).__name__
    return _meta(case, errors=errors, shim="skimage.io.imread(as_grey=) -> as_gray"), arrays


def _gen_net_spec_names(case, caffe, rng):
    return _meta(case, names=caffe.net_spec.param_name_dict()), {}


def _gen_net_spec(case, caffe, rng):
    proto = NET_SPEC_BUILDERS[case["builder"]](caffe)
    text = str(proto)
    extra = {"builder": case["builder"], "text": text, "loaded": None}
    if case["load"]:
        with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
            f.write(text)
        try:
            net = caffe.Net(f.name, caffe.TEST)
        finally:
            os.unlink(f.name)
        extra["loaded"] = {
            "layers": list(net._layer_names),
            "types": [layer.type for layer in net.layers],
            "blobs": {k: list(v.data.shape) for k, v in net.blobs.items()},
            "outputs": list(net.outputs),
        }
    return _meta(case, **extra), {"bytes": _bytes(proto.SerializeToString())}


def _map_record(result):
    ax, a, b = result
    return {"ax": ax, "a": np.asarray(a, dtype=np.float64).reshape(-1).tolist(),
            "b": np.asarray(b, dtype=np.float64).reshape(-1).tolist(),
            "a_scalar": np.ndim(a) == 0, "b_scalar": np.ndim(b) == 0}


def _gen_coord_map(case, caffe, rng):
    cm = _coord_map_module(caffe)
    results = []
    for label, top_from, top_to in cm_pairs(caffe):
        try:
            rec = _map_record(cm.coord_map_from_to(top_from, top_to))
        except Exception as exc:
            rec = {"error": type(exc).__name__}
        rec["label"] = label
        results.append(rec)
    return _meta(case, results=results), {}


def _gen_coord_map_crop(case, caffe, rng):
    cm = _coord_map_module(caffe)
    results = []
    for label, n, frm, to in cm_crops(caffe):
        rec = {"label": label, "from": frm, "to": to}
        try:
            n.crop = cm.crop(n[frm], n[to])
            rec["text"] = str(n.to_proto())
        except Exception as exc:
            rec["error"] = type(exc).__name__
        results.append(rec)
    return _meta(case, results=results), {}


def _gen_draw(case, caffe, rng):
    import caffe.draw
    from google.protobuf import text_format
    net = caffe.proto.caffe_pb2.NetParameter()
    text_format.Merge(case["prototxt"], net)
    phase = {"TRAIN": caffe.TRAIN, "TEST": caffe.TEST, None: None}[case.get("phase")]
    graph = caffe.draw.get_pydot_graph(net, case["rankdir"], label_edges=case.get("label_edges", True),
                                       phase=phase, display_lrm=case.get("display_lrm", False))
    return _meta(case, prototxt=case["prototxt"], rankdir=case["rankdir"], phase=case.get("phase"),
                 label_edges=case.get("label_edges", True),
                 display_lrm=case.get("display_lrm", False), dot=graph.to_string()), {}


def _tiny_model(case, caffe, rng, tmp):
    proto = os.path.join(tmp, "deploy.prototxt")
    with open(proto, "w") as f:
        f.write(case["prototxt"])
    net = caffe.Net(proto, caffe.TEST)
    for blobs in net.params.values():
        for blob in blobs:
            blob.data[...] = rng.randn(*blob.data.shape) * case.get("weight_std", 0.5)
    weights = os.path.join(tmp, "tiny.caffemodel")
    net.save(weights)
    with open(weights, "rb") as f:
        data = f.read()
    return proto, weights, {"weights": _bytes(data)}


def _options(case, rng, channels=3):
    opts = dict(case["options"])
    arrays = {}
    if opts.get("mean") == "vector":
        opts["mean"] = rng.uniform(0.2, 0.8, size=channels) * opts.get("raw_scale", 1.0)
    elif opts.get("mean") == "image":
        opts["mean"] = rng.uniform(0.2, 0.8, size=(channels, 8, 8)) * opts.get("raw_scale", 1.0)
    if "mean" in opts:
        arrays["mean"] = opts["mean"]
    return opts, arrays


def _gen_classifier(case, caffe, rng):
    with tempfile.TemporaryDirectory() as tmp:
        proto, weights, arrays = _tiny_model(case, caffe, rng, tmp)
        opts, extra = _options(case, rng)
        arrays.update(extra)
        clf = caffe.Classifier(proto, weights, **opts)
        images = [rng.rand(*s).astype(np.float32) for s in case["images"]]
        for i, im in enumerate(images):
            arrays["image/%d" % i] = im
        arrays["oversample"] = clf.predict(images, oversample=True)
        arrays["center"] = clf.predict(images, oversample=False)
    return _meta(case, prototxt=case["prototxt"], options=case["options"],
                 count=len(images)), arrays


class _TruncatingArray(np.ndarray):
    """Slicing with float bounds truncates them, as NumPy < 1.12 did (pycaffe's Detector)."""

    def __getitem__(self, key):
        def fix(k):
            if isinstance(k, slice):
                return slice(*(None if v is None else int(v) for v in (k.start, k.stop, k.step)))
            return k
        key = tuple(fix(k) for k in key) if isinstance(key, tuple) else fix(key)
        return np.ndarray.__getitem__(self, key)


def _gen_detector(case, caffe, rng):
    from PIL import Image
    import caffe.detector as det_mod
    with tempfile.TemporaryDirectory() as tmp:
        proto, weights, arrays = _tiny_model(case, caffe, rng, tmp)
        opts, extra = _options(case, rng)
        arrays.update(extra)
        pairs = []
        for i, (shape, windows) in enumerate(zip(case["images"], case["windows"])):
            path = os.path.join(tmp, "image%d.png" % i)
            Image.fromarray((rng.rand(shape[0], shape[1], 3) * 255).astype(np.uint8)).save(path)
            with open(path, "rb") as f:
                arrays["file/%d" % i] = _bytes(f.read())
            pairs.append((path, [np.array(w) for w in windows]))
        detector = caffe.Detector(proto, weights, **opts)
        orig = det_mod.caffe.io.load_image
        det_mod.caffe.io.load_image = lambda *a, **k: orig(*a, **k).view(_TruncatingArray)
        try:
            with _ImreadShim():
                dets = detector.detect_windows(pairs)
        finally:
            det_mod.caffe.io.load_image = orig
        arrays["predictions"] = np.stack([np.asarray(d["prediction"]) for d in dets])
        arrays["windows"] = np.stack([np.asarray(d["window"]) for d in dets])
    return _meta(case, prototxt=case["prototxt"], options=case["options"],
                 images=len(case["images"]), windows=case["windows"],
                 shim="float slice bounds truncated; skimage as_grey"), arrays


_GLOG_YEAR = re.compile(r"^([IWEF])\d{4}(\d{4} )", re.M)


_PARSE_LOG = os.environ.get("CAFFE_PARSE_LOG", "/work/caffe_ref/tools_extra/parse_log.py")


def _parse_log_oracle(log_path, out_dir, delimiter):
    subprocess.check_call([sys.executable, _PARSE_LOG, log_path, out_dir, "--delimiter", delimiter])


def _committed(case):
    """The committed fixture, kept when its oracle is not available here."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "io",
                        case["name"] + ".npz")
    if not os.path.exists(path):
        raise RuntimeError("parse_log fixtures need Caffe's tools/extra/parse_log.py (and "
                           "extract_seconds.py beside it): set CAFFE_PARSE_LOG to its path")
    print("  %s: CAFFE_PARSE_LOG (%s) not found; keeping the committed fixture"
          % (case["name"], _PARSE_LOG))
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(str(arrays.pop("meta"))), arrays


def _gen_parse_log(case, caffe, rng):
    if not os.path.exists(_PARSE_LOG):
        return _committed(case)
    with tempfile.TemporaryDirectory() as tmp:
        if "log" in case:
            log = case["log"]
        else:
            with open(os.path.join(tmp, "net.prototxt"), "w") as f:
                f.write(case["net"])
            with open(os.path.join(tmp, "solver.prototxt"), "w") as f:
                f.write(case["solver"])
            env = dict(os.environ, GLOG_minloglevel="0", GLOG_logtostderr="1")
            run = subprocess.run(
                [sys.executable, "-c", "import caffe; caffe.set_mode_cpu(); "
                 "caffe.get_solver('solver.prototxt').solve()"],
                cwd=tmp, env=env, stderr=subprocess.PIPE, check=True)
            # Newer glog writes the year (I20261128); Caffe's parse_log reads I1128.
            log = _GLOG_YEAR.sub(r"\1\2", run.stderr.decode())
        log_path = os.path.join(tmp, "caffe.INFO")
        with open(log_path, "w") as f:
            f.write(log)
        out = os.path.join(tmp, "out")
        os.mkdir(out)
        _parse_log_oracle(log_path, out, case["delimiter"])
        arrays = {"log": _bytes(log.encode())}
        for ext in ("train", "test"):
            p = os.path.join(out, "caffe.INFO." + ext)
            if os.path.exists(p):
                with open(p, "rb") as f:
                    arrays[ext] = _bytes(f.read())
    return _meta(case, delimiter=case["delimiter"], oracle_tool="tools/extra/parse_log.py"), arrays


_GENERATORS = {
    "io_resize": _gen_resize,
    "io_oversample": _gen_oversample,
    "io_transformer": _gen_transformer,
    "io_blob": _gen_blob,
    "io_datum": _gen_datum,
    "io_load_image": _gen_load_image,
    "net_spec_names": _gen_net_spec_names,
    "net_spec": _gen_net_spec,
    "coord_map": _gen_coord_map,
    "coord_map_crop": _gen_coord_map_crop,
    "draw": _gen_draw,
    "classifier": _gen_classifier,
    "detector": _gen_detector,
    "parse_log": _gen_parse_log,
}

if __name__ == "__main__":  # pragma: no cover - a quick listing
    print(json.dumps([c["name"] for c in CASES], indent=1))
