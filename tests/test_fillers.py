"""Fillers: against real Caffe's fixtures, by formula, by seed, and their errors.

* deterministic fillers (constant, bilinear, uniform with min == max, layer
  defaults) equal Caffe's values exactly;
* random fillers have Caffe's distribution: the statistics of our blob agree
  with the analytic ones and with those of Caffe's blob (``filler`` fixtures
  in ``tests/golden/data/fillers``);
* ``caffe.set_random_seed`` makes the draws reproducible;
* bad filler parameters raise LayerError naming the layer.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from golden_harness import fixtures, load

import caffe_compat as caffe
from caffe_compat.errors import LayerError
from caffe_compat.fillers import fill, filler_types
from caffe_compat.proto import caffe_pb2

FIXTURES = {p.stem: load(p) for p in fixtures("filler", groups=("fillers",))}


def _net(fx):
    return caffe.Net(fx.meta["prototxt"], caffe.TEST)


def _ours(net, key: str) -> np.ndarray:
    kind, rest = key.split("/", 1)
    if kind == "blob":
        return net.blobs[rest].data
    layer, i = rest.rsplit("/", 1)
    return net.params[layer][int(i)].data


@pytest.fixture(scope="module")
def nets():
    caffe.set_random_seed(5)
    out = {}
    for name, fx in FIXTURES.items():
        net = _net(fx)
        net.forward()
        out[name] = net
    return out


def _keys(case: str, prefix: str = "value") -> list:
    fx = FIXTURES[case]
    return [pytest.param(case, k[len(prefix) + 1:], id=k[len(prefix) + 1:]) for k in fx.keys(prefix)]


def test_fixtures_present():
    assert {"random_fillers", "deterministic_fillers", "layer_default_fillers"} <= set(FIXTURES)


# ================================================================ exact values
@pytest.mark.parametrize("case,key", _keys("deterministic_fillers") + [
    p for p in _keys("layer_default_fillers") if "xavier" not in p.values[1] and "msra" not in p.values[1]
])
def test_deterministic_values_equal_caffe(nets, case, key):
    fx = FIXTURES[case]
    ours = _ours(nets[case], key)
    golden = fx.arrays[f"value/{key}"]
    assert ours.shape == golden.shape
    np.testing.assert_array_equal(ours, golden)


# ================================================================ distributions
# key -> (expected mean, expected std, lower bound, upper bound) from the formulas
def _xavier(n):
    s = math.sqrt(3 / n)
    return (0.0, s / math.sqrt(3), -s, s)


def _msra(n):
    return (0.0, math.sqrt(2 / n), None, None)


FAN_IN, FAN_OUT = 32 * 9, 64 * 9
EXPECTED = {
    "blob/uniform": (0.2, 1 / math.sqrt(12), -0.3, 0.7),
    "blob/uniform_default": (0.5, 1 / math.sqrt(12), 0.0, 1.0),
    "blob/gaussian": (1.0, 0.25, None, None),
    "blob/gaussian_default": (0.0, 1.0, None, None),
    "blob/gaussian_sparse": (0.0, 2 * math.sqrt(0.25), None, None),
    "blob/unitball": (0.01, None, None, None),
    "blob/unitball_4d": (0.01, None, None, None),
    "blob/xavier": _xavier(FAN_IN),
    "blob/xavier_fan_out": _xavier(FAN_OUT),
    "blob/xavier_average": _xavier((FAN_IN + FAN_OUT) / 2),
    "blob/xavier_2d": _xavier(150),
    "blob/xavier_1d_fan_out": _xavier(40000),
    "blob/msra": _msra(FAN_IN),
    "blob/msra_fan_out": _msra(FAN_OUT),
    "blob/msra_average": _msra((FAN_IN + FAN_OUT) / 2),
    "blob/msra_1d": _msra(1),
    "param/ip_xavier/0": _xavier(48),
    "param/ip_xavier/1": (0.0, 1 / math.sqrt(3), -1.0, 1.0),
    "param/ip_t_msra/0": _msra(400),
}


def _random_keys():
    out = []
    for case in ("random_fillers", "layer_default_fillers"):
        for k in FIXTURES[case].keys("stats"):
            key = k[len("stats/"):]
            if key in EXPECTED:
                out.append(pytest.param(case, key, id=key))
    return out


def test_every_random_blob_has_expectations():
    recorded = {k[len("stats/"):] for k in FIXTURES["random_fillers"].keys("stats")}
    assert recorded - {"blob/gaussian_sparse0"} <= set(EXPECTED)


@pytest.mark.parametrize("case,key", _random_keys())
def test_random_distribution_matches_caffe(nets, case, key):
    fx = FIXTURES[case]
    ours = _ours(nets[case], key).astype(np.float64)
    assert list(ours.shape) == list(fx.arrays[f"shape/{key}"])
    c_mean, c_std, c_min, c_max, c_nz, c_row_lo, c_row_hi = fx.arrays[f"stats/{key}"]
    mean, std, lo, hi = EXPECTED[key]
    n = ours.size
    sd = ours.std()
    rel = max(0.03, 5 / math.sqrt(2 * n))  # 5 standard errors of a standard deviation
    # Ours and Caffe's against the formula (5 standard errors), then each other.
    for label, m, s in (("ours", ours.mean(), sd), ("caffe", c_mean, c_std)):
        assert abs(m - mean) <= 5 * (std or s) / math.sqrt(n) + 1e-7, f"{label} mean {m} vs {mean}"
        if std is not None:
            assert s == pytest.approx(std, rel=rel), f"{label} std {s} vs {std}"
    assert sd == pytest.approx(c_std, rel=2 * rel)
    if lo is not None:
        span = hi - lo
        assert ours.min() >= lo and ours.max() <= hi
        # the draws reach close to the bounds, as Caffe's do
        assert ours.min() - lo < 0.01 * span and hi - ours.max() < 0.01 * span
        assert c_min - lo < 0.01 * span and hi - c_max < 0.01 * span
    assert np.count_nonzero(ours) / n == pytest.approx(c_nz, abs=0.02)


@pytest.mark.parametrize("key", ["blob/unitball", "blob/unitball_4d"])
def test_positive_unitball_rows_sum_to_one(nets, key):
    ours = _ours(nets["random_fillers"], key)
    assert ours.min() >= 0 and ours.max() <= 1
    rows = ours.reshape(ours.shape[0], -1).sum(axis=1)
    np.testing.assert_allclose(rows, 1.0, rtol=1e-5)
    _, _, _, _, _, lo, hi = FIXTURES["random_fillers"].arrays[f"stats/{key}"]
    assert lo == pytest.approx(1, rel=1e-5) and hi == pytest.approx(1, rel=1e-5)


def test_sparse_gaussian_keeps_sparse_over_outputs(nets):
    ours = _ours(nets["random_fillers"], "blob/gaussian_sparse")
    assert np.count_nonzero(ours) / ours.size == pytest.approx(5 / 20, abs=0.01)
    assert not np.count_nonzero(_ours(nets["random_fillers"], "blob/gaussian_sparse0"))


# ================================================================ seeds
def _draw(seed: int) -> np.ndarray:
    caffe.set_random_seed(seed)
    net = _net(FIXTURES["random_fillers"])
    net.forward()
    return np.concatenate([net.blobs[b].data.ravel()[:50] for b in ("uniform", "gaussian_sparse", "msra")])


def test_seed_reproducible():
    a, b, c = _draw(3), _draw(3), _draw(4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_seeded_layer_params_reproducible():
    text = FIXTURES["layer_default_fillers"].meta["prototxt"]
    caffe.set_random_seed(11)
    w1 = caffe.Net(text, caffe.TEST).params["ip_xavier"][0].data.copy()
    caffe.set_random_seed(11)
    w2 = caffe.Net(text, caffe.TEST).params["ip_xavier"][0].data.copy()
    np.testing.assert_array_equal(w1, w2)


# ================================================================ direct use
def test_filler_types():
    assert filler_types() == sorted(["constant", "uniform", "gaussian", "positive_unitball",
                                     "xavier", "msra", "bilinear"])


def test_default_filler_is_constant_zero():
    t = fill(None, (2, 3))
    assert t.dtype == torch.float32 and t.shape == (2, 3) and not t.any()


def test_fill_on_device_argument():
    t = fill(caffe_pb2.FillerParameter(type="gaussian"), (4,), device="cpu")
    assert t.device.type == "cpu"


def test_empty_blob_is_allowed():
    assert fill(caffe_pb2.FillerParameter(type="xavier"), (0, 3)).shape == (0, 3)


BAD = [
    # (id, FillerParameter fields, shape, message fragment)
    ("unknown_type", dict(type="orthogonal"), (2, 2), 'unknown filler type "orthogonal"'),
    ("sparse_constant", dict(type="constant", sparse=2), (2, 2), "only supported by the gaussian"),
    ("sparse_xavier", dict(type="xavier", sparse=1), (2, 2), "only supported by the gaussian"),
    ("sparse_below_minus1", dict(type="gaussian", sparse=-2), (2, 2), "must be >= -1"),
    ("sparse_too_many", dict(type="gaussian", sparse=3), (2, 5), "more than the 2 outputs"),
    ("gaussian_std_zero", dict(type="gaussian", std=0), (2, 2), "std > 0"),
    ("gaussian_std_negative", dict(type="gaussian", std=-1), (2, 2), "std > 0"),
    ("uniform_min_gt_max", dict(type="uniform", min=1, max=0), (2, 2), "min <= max"),
    ("bilinear_not_4d", dict(type="bilinear"), (2, 3), "4-axis"),
    ("bilinear_not_square", dict(type="bilinear"), (1, 1, 2, 3), "square"),
    ("xavier_0d", dict(type="xavier"), (), "at least 1 axis"),
    ("msra_0d", dict(type="msra"), (), "at least 1 axis"),
    ("unitball_0d", dict(type="positive_unitball"), (), "at least 1 axis"),
]


@pytest.mark.parametrize("fields,shape,fragment", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_filler_raises(fields, shape, fragment):
    with pytest.raises(LayerError, match="InnerProduct layer \"ip\"") as info:
        fill(caffe_pb2.FillerParameter(**fields), shape, 'InnerProduct layer "ip"')
    assert fragment in str(info.value)


def test_bad_filler_in_a_net_names_the_layer():
    text = ('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'
            'layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { '
            'num_output: 2 weight_filler { type: "gaussian" std: 0 } } }')
    with pytest.raises(LayerError, match='InnerProduct layer "fc".*std > 0'):
        caffe.Net(text, caffe.TEST)
