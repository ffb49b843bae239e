"""caffe_compat.coord_map against real pycaffe, and pycaffe's test_coord_map.py cases."""

from __future__ import annotations

import builtins

import numpy as np
import pytest
from google.protobuf import text_format

import caffe_compat as caffe
from caffe_compat import coord_map as cm
from caffe_compat import layers as L, params as P
from caffe_compat.errors import CaffeCompatError
from caffe_compat.layers.registry import layer_type_list
from caffe_compat.proto import caffe_pb2
from golden.cases import io as cases
from golden_harness import fixtures, load

(PAIRS,) = [load(p) for p in fixtures("coord_map", groups=("io",))]
(CROPS,) = [load(p) for p in fixtures("coord_map_crop", groups=("io",))]


def _pairs():
    ours = cases.cm_pairs(caffe)
    golden = PAIRS.meta["results"]
    assert [label for label, _, _ in ours] == [r["label"] for r in golden]
    return [pytest.param(f, t, r, id=r["label"]) for (_, f, t), r in zip(ours, golden)]


@pytest.mark.parametrize("top_from, top_to, golden", _pairs())
def test_coord_map_matches_pycaffe(top_from, top_to, golden):
    if "error" in golden:
        with pytest.raises(getattr(builtins, golden["error"])) as info:
            cm.coord_map_from_to(top_from, top_to)
        assert isinstance(info.value, CaffeCompatError)
        return
    ax, a, b = cm.coord_map_from_to(top_from, top_to)
    assert ax == golden["ax"]
    np.testing.assert_array_equal(np.asarray(a, float).reshape(-1), golden["a"])
    np.testing.assert_array_equal(np.asarray(b, float).reshape(-1), golden["b"])


def _crops():
    ours = cases.cm_crops(caffe)
    golden = CROPS.meta["results"]
    return [pytest.param(n, frm, to, r, id=r["label"]) for (_, n, frm, to), r in zip(ours, golden)]


@pytest.mark.parametrize("n, frm, to, golden", _crops())
def test_crop_matches_pycaffe(n, frm, to, golden):
    if "error" in golden:
        with pytest.raises(getattr(builtins, golden["error"])):
            n.crop = cm.crop(n[frm], n[to])
            n.to_proto()  # pycaffe's own test net fails here (Deconvolution kwargs)
        return
    n.crop = cm.crop(n[frm], n[to])
    proto = n.to_proto()
    assert str(proto) == golden["text"]
    assert text_format.Parse(golden["text"], caffe_pb2.NetParameter()) == proto


def test_fcn_crop_net_runs_and_aligns():
    """The FCN crop gives the input's size in caffe_compat's Net too."""
    need = {"Deconvolution", "Crop", "Dropout"} - set(layer_type_list())
    if need:
        pytest.skip(f"layer type(s) {sorted(need)} not implemented in caffe_compat yet")
    n = cases.cm_fcn(caffe)
    n.crop = cm.crop(n.upscore, n.data)
    net = caffe.Net(str(n.to_proto()), caffe.TEST)
    assert net.blobs["crop"].data.shape[2:] == net.blobs["data"].data.shape[2:]


# ====================================================== pycaffe's test_coord_map
def test_conv_pool_deconv():
    n = cases.cm_net(caffe)
    assert cm.coord_map_from_to(n.deconv, n.data) == (1, 1, 0)  # 2x pool, 2x deconv: identity
    n = cases.cm_net(caffe, pool=4, dstride=4)
    assert cm.coord_map_from_to(n.deconv, n.data) == (1, 1, -1)  # 4x: shift by one


def test_pass_through_layers_map_to_identity():
    n = cases.cm_net(caffe)
    base = cm.coord_map_from_to(n.deconv, n.data)
    n.relu = L.ReLU(n.deconv)
    n.conv1x1 = L.Convolution(n.relu, num_output=10, kernel_size=1, stride=1, pad=0)
    for top in (n.relu, n.conv1x1):
        assert cm.coord_map_from_to(top, n.data) == base


@pytest.mark.parametrize("pad", [0, 1, 4, 10])
def test_padding_shifts(pad):
    n = cases.cm_net(caffe)
    _, a, b = cm.coord_map_from_to(n.deconv, n.data)
    n = cases.cm_net(caffe, pad=pad)
    _, a_pad, b_pad = cm.coord_map_from_to(n.deconv, n.data)
    assert (a, b - pad) == (a_pad, b_pad)          # conv padding adds offset
    n = cases.cm_net(caffe, dpad=pad)
    _, a_pad, b_pad = cm.coord_map_from_to(n.deconv, n.data)
    assert (a, b + pad) == (a_pad, b_pad)          # deconv padding subtracts it
    n = cases.cm_net(caffe, pad=pad, dpad=pad)
    _, a_pad, b_pad = cm.coord_map_from_to(n.deconv, n.data)
    assert (a, b) == (a_pad, b_pad)


def test_rect_is_its_isotropic_parts():
    n3, n5 = cases.cm_net(caffe, ks=3, stride=1, pad=0), cases.cm_net(caffe, ks=5, stride=2, pad=10)
    n35 = cases.cm_net(caffe, ks=[3, 5], stride=[1, 2], pad=[0, 10])
    ax3, a3, b3 = cm.coord_map_from_to(n3.deconv, n3.data)
    ax5, a5, b5 = cm.coord_map_from_to(n5.deconv, n5.data)
    ax35, a35, b35 = cm.coord_map_from_to(n35.deconv, n35.data)
    assert ax3 == ax5 == ax35
    assert (a3, b3) == (a35[0], b35[0]) and (a5, b5) == (a35[1], b35[1])


@pytest.mark.parametrize("offset", [0, 3, 10])
def test_crop_of_crop(offset):
    n = cases.cm_net(caffe)
    ax, a, b = cm.coord_map_from_to(n.deconv, n.data)
    n.crop = L.Crop(n.deconv, n.data, axis=2, offset=offset)
    assert cm.coord_map_from_to(n.crop, n.data) == (ax, a, b + offset)


def test_crop_helper_builds_a_crop_layer():
    n = cases.cm_fcn(caffe)
    top = cm.crop(n.upscore, n.data)
    assert top.fn.type_name == "Crop" and top.fn.inputs == (n.upscore, n.data)
    assert top.fn.params == {"crop_param": {"axis": 2, "offset": [101]}}


FAILURES = [
    ("unconnected", lambda: _ip_net(), RuntimeError, "connected"),
    ("scale mismatch", lambda: cm.crop(*_deconv_data(pool=3, dstride=2)), AssertionError, "scale"),
    ("negative offset", lambda: cm.crop(*_deconv_data(dpad=10)), AssertionError, "negative"),
    ("fractional offset", lambda: cm.crop(*_deconv_data(ks=2, pad=1)), AssertionError,
     "noninteger"),
    ("legacy _h/_w", lambda: cm.conv_params(L.Convolution(L.Input(), kernel_size=3, pad_h=1).fn),
     AssertionError, "legacy"),
    ("no mapping", lambda: cm.coord_map(L.InnerProduct(L.Input(), num_output=2).fn),
     cm.UndefinedMapException, "InnerProduct"),
    ("axis mismatch", lambda: cm.compose((1, 1, 0), (2, 1, 0)), cm.AxisMismatchException, "axes"),
]


def _ip_net():
    n = cases.cm_net(caffe)
    n.ip = L.InnerProduct(n.deconv, num_output=10)
    cm.coord_map_from_to(n.ip, n.data)


def _deconv_data(**kw):
    n = cases.cm_net(caffe, **kw)
    return n.deconv, n.data


@pytest.mark.parametrize("what, call, exc, text", FAILURES, ids=[f[0] for f in FAILURES])
def test_failures(what, call, exc, text):
    with pytest.raises(exc, match=text) as info:
        call()
    assert isinstance(info.value, CaffeCompatError)


def test_compose_and_inverse():
    m = (1, np.array([0.5]), np.array([-1.25]))
    ax, a, b = cm.compose(m, cm.inverse(m))
    assert ax == 1 and a == 1 and b == 0
    assert cm.compose((None, 1, 0), (2, 3, 1)) == (2, 3, 1)
    assert cm.coord_map(L.ReLU(L.Input()).fn) == (None, 1, 0)
    assert cm.coord_map(L.Pooling(L.Input(), pool=P.Pooling.MAX, kernel_size=3, stride=2).fn)[0] == 1
