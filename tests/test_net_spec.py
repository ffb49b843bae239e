"""NetSpec (caffe.NetSpec / caffe.layers / caffe.params / caffe.to_proto) against real pycaffe.

Each golden fixture holds the NetParameter that real pycaffe's NetSpec built from a builder
in tests/golden/cases/io.py (its text and its bytes) and what real Caffe's Net made of it;
the same builder runs here with caffe_compat. Plus tests modelled on pycaffe's
test_net_spec.py.
"""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
from google.protobuf import text_format

import caffe_compat as caffe
from caffe_compat import layers as L, params as P
from caffe_compat.layers.registry import layer_type_list
from caffe_compat.net_spec import Function, Top, assign_proto, param_name_dict
from caffe_compat.proto import caffe_pb2
from golden.cases import io as cases
from golden_harness import fixtures, load

NET_SPEC = [load(p) for p in fixtures("net_spec", groups=("io",))]
_NUMBER = re.compile(r"^(\s*\w+): (-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)$")


def canonical_text(text: str) -> list[str]:
    """Prototxt lines with numbers written one way (protobuf versions print floats
    differently: ``1.0`` / ``1``, ``0.10000000149011612`` / ``0.1``)."""
    out = []
    for line in text.splitlines():
        m = _NUMBER.match(line)
        out.append(f"{m.group(1)}: {float(np.float32(float(m.group(2))))!r}" if m else line)
    return out


@pytest.mark.parametrize("fx", NET_SPEC, ids=[fx.path.stem for fx in NET_SPEC])
def test_net_spec_matches_pycaffe(fx):
    proto = cases.NET_SPEC_BUILDERS[fx.meta["builder"]](caffe)
    assert proto.SerializeToString() == np.asarray(fx.arrays["bytes"], np.uint8).tobytes()
    assert canonical_text(str(proto)) == canonical_text(fx.meta["text"])
    assert text_format.Parse(fx.meta["text"], caffe_pb2.NetParameter()) == proto


def cpp_float(value: float) -> str:
    """How protobuf's C++ TextFormat (Caffe's own tools) writes a float field: SimpleFtoa,
    %.6g when that reads back as the same float32, else %.9g."""
    short = "%.6g" % value
    return short if np.float32(float(short)) == np.float32(value) else "%.9g" % value


_PROTOBUF_MAJOR = int(__import__("google.protobuf").protobuf.__version__.split(".")[0])


def float_fields(message) -> list[tuple[str, float]]:
    """(field name, value) of every float field set anywhere in ``message``."""
    from google.protobuf.descriptor import FieldDescriptor as FD

    out = []
    for field, value in message.ListFields():
        values = list(value) if getattr(field, "is_repeated", None) or \
            getattr(field, "label", None) == FD.LABEL_REPEATED else [value]
        if field.type == FD.TYPE_MESSAGE:
            for sub in values:
                out += float_fields(sub)
        elif field.type == FD.TYPE_FLOAT:
            out += [(field.name, v) for v in values]
    return out


@pytest.mark.skipif(_PROTOBUF_MAJOR < 4, reason="protobuf 3 writes floats its own way (README)")
@pytest.mark.parametrize("fx", NET_SPEC, ids=[fx.path.stem for fx in NET_SPEC])
def test_net_spec_text_spells_floats_as_caffes_cpp_tools(fx):
    """With protobuf >= 4 the text is what Caffe's C++ tools write (real pycaffe's protobuf 3
    wrote 104.0 or 0.009999999776482582 instead): the same on every machine."""
    proto = cases.NET_SPEC_BUILDERS[fx.meta["builder"]](caffe)
    lines = {line.strip() for line in str(proto).splitlines()}
    for name, value in float_fields(proto):
        assert f"{name}: {cpp_float(value)}" in lines, (name, value)


@pytest.mark.parametrize("fx", [fx for fx in NET_SPEC if fx.meta["loaded"]],
                         ids=[fx.path.stem for fx in NET_SPEC if fx.meta["loaded"]])
def test_net_spec_output_loads_like_caffe(fx):
    loaded = fx.meta["loaded"]
    missing = sorted(set(loaded["types"]) - set(layer_type_list()) - {"Split"})
    if missing:
        pytest.skip(f"layer type(s) {missing} not implemented in caffe_compat yet")
    net = caffe.Net(fx.meta["text"], caffe.TEST)
    assert list(net.layer_dict) == loaded["layers"]
    assert [layer.type for layer in net.layers] == loaded["types"]
    assert {k: list(v.data.shape) for k, v in net.blobs.items()} == loaded["blobs"]
    assert list(net.outputs) == loaded["outputs"]


def test_param_name_map_matches_pycaffe():
    (fx,) = [load(p) for p in fixtures("net_spec_names", groups=("io",))]
    theirs, ours = fx.meta["names"], param_name_dict()
    # The reference build adds a few fork layers (Permute, Reverse, CtcLoss, ...).
    common = set(theirs) & set(ours)
    assert {k: ours[k] for k in common} == {k: theirs[k] for k in common}
    for upstream in ("Convolution", "Pooling", "InnerProduct", "Data", "Python", "Transformation",
                     "HDF5Data", "Loss", "Eltwise", "Crop", "DummyData", "Input", "ReLU"):
        assert ours[upstream] == theirs[upstream]


# ===================================================== pycaffe's test_net_spec
def test_lenet_relu_in_place_and_layer_count():
    for build in (cases.ns_lenet, cases.ns_anon_lenet):
        proto = build(caffe)
        assert proto.layer[6].bottom == proto.layer[6].top
        assert len(proto.layer) == 9  # real Caffe builds 9 layers from it (see the fixture)


def test_zero_tops():
    proto = cases.ns_silent(caffe)
    assert [layer.type for layer in proto.layer] == ["DummyData", "Silence", "Silence"]
    assert all(len(layer.top) == 0 for layer in proto.layer[1:])
    if {"DummyData", "Silence"} - set(layer_type_list()):
        pytest.skip("DummyData / Silence not implemented in caffe_compat yet")
    net = caffe.Net(str(proto), caffe.TEST)
    assert len(net.forward()) == 0


def test_type_error_names_the_input():
    data = L.DummyData(ntop=2)  # a tuple of Tops
    with pytest.raises(TypeError, match=r"^Silence input 0 is not a Top \(type is <class 'tuple'>\)$"):
        L.Silence(data, ntop=0)
    L.Silence(*data, ntop=0)


# ================================================================= behaviour
def test_layers_package_forwards_to_net_spec():
    """``from caffe import layers as L`` is our layer package; CamelCase names are NetSpec layers."""
    top = caffe.layers.Convolution(L.Input(shape=dict(dim=[1, 1, 3, 3])), kernel_size=1, num_output=1)
    assert isinstance(top, Top) and isinstance(top.fn, Function)
    assert top.fn.type_name == "Convolution"
    assert caffe.params.Pooling.MAX == caffe_pb2.PoolingParameter.MAX
    assert caffe.params.Loss.VALID == caffe_pb2.LossParameter.VALID
    assert caffe.to_proto(top).layer[1].convolution_param.kernel_size[:] == [1]


def test_ntop_and_in_place_are_not_layer_params():
    fn = L.ReLU(L.Input(shape=dict(dim=[2])), in_place=True, ntop=1).fn
    assert fn.params == {} and fn.in_place and fn.ntop == 1


def test_multiple_tops_return_a_tuple_and_zero_tops_a_function():
    tops = L.Slice(L.Input(shape=dict(dim=[2, 4])), ntop=3, slice_point=[1, 2])
    assert isinstance(tops, tuple) and len(tops) == 3
    assert isinstance(L.Silence(tops[0], ntop=0), Function)


def test_netspec_missing_top():
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1]))
    assert "data" in n and n["data"] is n.data
    with pytest.raises(KeyError):
        n["nothing"]
    with pytest.raises(AttributeError, match="nothing"):
        n.nothing
    assert not hasattr(n, "nothing")
    clone = copy.deepcopy(n)
    assert list(clone.tops) == ["data"]


def test_unknown_param_raises_attribute_error():
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1]))
    n.bad = L.ReLU(n.data, no_such_field=3)
    with pytest.raises(AttributeError, match="no_such_field"):
        n.to_proto()


ASSIGN = [
    ("scalar to repeated", "kernel_size", 3, [3]),
    ("list to repeated", "kernel_size", [3, 5], [3, 5]),
    ("tuple to repeated", "pad", (1, 2), [1, 2]),
    ("empty list", "stride", [], []),
]


@pytest.mark.parametrize("what, field, value, expected", ASSIGN, ids=[a[0] for a in ASSIGN])
def test_assign_proto_repeated(what, field, value, expected):
    param = caffe_pb2.ConvolutionParameter()
    assign_proto(param, field, value)
    assert list(getattr(param, field)) == expected


def test_assign_proto_messages():
    layer = caffe_pb2.LayerParameter()
    assign_proto(layer, "param", [dict(lr_mult=1), dict(lr_mult=2, decay_mult=0)])
    assign_proto(layer, "include", dict(phase=caffe.TEST, stage=["a"]))
    assign_proto(layer, "convolution_param", dict(weight_filler=dict(type="xavier"), num_output=4))
    assert [p.lr_mult for p in layer.param] == [1, 2]
    assert layer.include[0].phase == caffe.TEST and layer.include[0].stage[:] == ["a"]
    assert layer.convolution_param.weight_filler.type == "xavier"


def test_netspec_net_trains_in_caffe_compat():
    """A NetSpec-built net with Input, conv, pool, ip and a loss runs forward/backward."""
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 1, 6, 6]))
    n.label = L.Input(shape=dict(dim=[2]))
    n.conv = L.Convolution(n.data, num_output=2, kernel_size=3, weight_filler=dict(type="xavier"))
    n.pool = L.Pooling(n.conv, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.ip = L.InnerProduct(n.pool, num_output=3, weight_filler=dict(type="xavier"))
    n.loss = L.SoftmaxWithLoss(n.ip, n.label)
    net = caffe.Net(str(n.to_proto()), caffe.TRAIN)
    net.blobs["data"].data[...] = np.random.RandomState(0).randn(2, 1, 6, 6)
    net.blobs["label"].data[...] = [0, 2]
    loss = net.forward()["loss"]
    net.backward()
    assert np.isfinite(loss) and np.abs(net.params["conv"][0].diff).sum() > 0


@pytest.mark.parametrize("type_name", sorted(layer_type_list()))
def test_every_layer_type_is_a_netspec_factory(type_name):
    """No attribute of the layer package shadows a Caffe layer type name."""
    top = getattr(caffe.layers, type_name)(ntop=1)
    assert isinstance(top, Top) and top.fn.type_name == type_name
