"""Fillers, as real Caffe applies them: DummyData tops and layers' default fillers.

``filler`` cases (see :func:`generate`) build a net, run one forward and
record every DummyData top and parameter blob: its shape, summary statistics
(mean, std, min, max, fraction of non-zeros, min and max row sum over
shape[0]) and, for small blobs, every value. Deterministic fillers (constant,
bilinear) are then compared value by value; random ones by their statistics,
since Caffe's random stream is not reproduced.
"""

import os
import tempfile

import numpy as np

from ._spec import input_layer


def _dummy(tops):
    """A DummyData layer with one (name, shape, filler) per top."""
    names = " ".join('top: "%s"' % n for n, _, _ in tops)
    shapes = " ".join("shape { %s }" % " ".join("dim: %d" % d for d in s) for _, s, _ in tops)
    fillers = " ".join("data_filler { %s }" % f for _, _, f in tops)
    return 'layer { name: "dummy" type: "DummyData" %s dummy_data_param { %s %s } }\n' % (
        names, shapes, fillers)


def _case(name, prototxt, seed=0, note=""):
    return {"kind": "filler", "name": name, "prototxt": 'name: "fillers"\n' + prototxt.strip() + "\n",
            "seed": seed, "note": note}


CONV = (64, 32, 3, 3)  # fan_in 288, fan_out 576

RANDOM = _dummy([
    ("uniform", (200, 200), 'type: "uniform" min: -0.3 max: 0.7'),
    ("uniform_default", (200, 200), 'type: "uniform"'),
    ("gaussian", (200, 200), 'type: "gaussian" mean: 1 std: 0.25'),
    ("gaussian_default", (200, 200), 'type: "gaussian"'),
    ("gaussian_sparse", (20, 2000), 'type: "gaussian" std: 2 sparse: 5'),
    ("gaussian_sparse0", (10, 100), 'type: "gaussian" sparse: 0'),
    ("unitball", (400, 100), 'type: "positive_unitball"'),
    ("unitball_4d", (50, 4, 5, 5), 'type: "positive_unitball"'),
    ("xavier", CONV, 'type: "xavier"'),
    ("xavier_fan_out", CONV, 'type: "xavier" variance_norm: FAN_OUT'),
    ("xavier_average", CONV, 'type: "xavier" variance_norm: AVERAGE'),
    ("xavier_2d", (300, 150), 'type: "xavier"'),
    ("xavier_1d_fan_out", (40000,), 'type: "xavier" variance_norm: FAN_OUT'),
    ("msra", CONV, 'type: "msra"'),
    ("msra_fan_out", CONV, 'type: "msra" variance_norm: FAN_OUT'),
    ("msra_average", CONV, 'type: "msra" variance_norm: AVERAGE'),
    ("msra_1d", (40000,), 'type: "msra"'),
])

DETERMINISTIC = _dummy([
    ("constant", (2, 3), 'type: "constant" value: 3.25'),
    ("constant_default", (4,), ""),
    ("uniform_point", (3, 2), 'type: "uniform" min: 0.5 max: 0.5'),
] + [("bilinear%d" % k, (2, 3, k, k), 'type: "bilinear"') for k in range(1, 9)])

LAYERS = input_layer(("x", (2, 3, 4, 4))) + """
layer { name: "prelu" type: "PReLU" bottom: "x" top: "p1" }
layer { name: "prelu_shared" type: "PReLU" bottom: "x" top: "p2" prelu_param { channel_shared: true } }
layer { name: "scale" type: "Scale" bottom: "x" top: "s1" scale_param { bias_term: true } }
layer { name: "scale_fillers" type: "Scale" bottom: "x" top: "s2"
        scale_param { axis: 2 num_axes: 2 bias_term: true filler { type: "constant" value: -2 }
                      bias_filler { type: "constant" value: 0.75 } } }
layer { name: "bias" type: "Bias" bottom: "x" top: "b1" }
layer { name: "bias_filler" type: "Bias" bottom: "x" top: "b2"
        bias_param { num_axes: -1 filler { type: "constant" value: 0.5 } } }
layer { name: "bn" type: "BatchNorm" bottom: "x" top: "n" }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "i1" inner_product_param { num_output: 3 } }
layer { name: "ip_xavier" type: "InnerProduct" bottom: "x" top: "i2"
        inner_product_param { num_output: 500 weight_filler { type: "xavier" }
                              bias_filler { type: "uniform" min: -1 max: 1 } } }
layer { name: "ip_t_msra" type: "InnerProduct" bottom: "x" top: "i3"
        inner_product_param { num_output: 400 transpose: true weight_filler { type: "msra" } } }
"""

CASES = [
    _case("random_fillers", RANDOM, note="statistics only: Caffe's random stream is not reproduced"),
    _case("deterministic_fillers", DETERMINISTIC,
          note="constant and bilinear (every kernel size 1..8) value by value"),
    _case("layer_default_fillers", LAYERS,
          note="PReLU 0.25, Scale 1 (+ bias 0), Bias 0, BatchNorm 0, InnerProduct 0; "
               "xavier/msra fans of (transposed) InnerProduct weights"),
]

_FULL_LIMIT = 600  # blobs up to this many values are stored whole


def _record(arrays, key, data):
    v = data.astype(np.float64)
    arrays["shape/" + key] = np.array(data.shape, dtype=np.int64)
    rows = v.reshape(v.shape[0], -1).sum(axis=1) if v.ndim else v.reshape(1)
    arrays["stats/" + key] = np.array([v.mean(), v.std(), v.min(), v.max(),
                                       np.count_nonzero(v) / v.size, rows.min(), rows.max()])
    if v.size <= _FULL_LIMIT:
        arrays["value/" + key] = data.copy()


def generate(case, caffe, rng):
    """Build the net with real Caffe, forward once, record tops and parameters."""
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(case["prototxt"])
        path = f.name
    try:
        caffe.set_random_seed(int(case["seed"]))
        net = caffe.Net(path, caffe.TEST)
    finally:
        os.unlink(path)
    net.forward()
    arrays = {}
    for lname, layer in zip(net._layer_names, net.layers):
        if layer.type == "DummyData":
            for top in net.top_names[lname]:
                _record(arrays, "blob/" + top, net.blobs[top].data)
    for lname, blobs in net.params.items():
        for i, blob in enumerate(blobs):
            _record(arrays, "param/%s/%d" % (lname, i), blob.data)
    meta = {"kind": "filler", "name": case["name"], "prototxt": case["prototxt"], "note": case["note"]}
    return meta, arrays
