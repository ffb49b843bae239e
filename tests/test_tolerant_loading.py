"""Tolerant loading: files holding fields our caffe.proto does not know (a fork's).

* text (.prototxt, solver): each unknown field is skipped with an
  ``UnknownFieldWarning`` naming it, its message and ``file:line:column``;
  unknown ``engine`` values (Intel's MKL2017/MKLDNN) too;
* typos (one edit from a known field) and other unknown enum values stay errors;
* binary (.caffemodel, .binaryproto, .solverstate): each unknown field number
  (or a known number with another wire type) is reported with its byte offset
  and layer, and the weights still load;
* strict mode (``set_strict(True)`` or ``CAFFE_COMPAT_STRICT=1``) raises instead.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

import caffe_compat as caffe
from caffe_compat.errors import ProtoError, ProtoSyntaxError
from caffe_compat.proto import caffe_pb2
from caffe_compat.proto.files import UnknownFieldWarning, parse_binary, parse_text, read_text
from caffe_compat.proto.tolerant import scan_binary

BASE = """name: "t"
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 dim: 5 dim: 5 } } }
layer { name: "conv" type: "Convolution" bottom: "x" top: "c"
  convolution_param { num_output: 3 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "pool" type: "Pooling" bottom: "c" top: "p"
  pooling_param { pool: MAX kernel_size: 2 stride: 1 } }
"""

# (id, text inserted, where, unknown field name, message type)
TEXT_CASES = [
    ("layer_level", 'layer { name: "r" type: "ReLU" bottom: "p" top: "p" quantize_param { bits: 8 } }',
     "quantize_param", "caffe.LayerParameter"),
    ("nested_field",
     'layer { name: "r" type: "ReLU" bottom: "p" top: "p" relu_param { negative_slope: 0 fused: true } }',
     "fused", "caffe.ReLUParameter"),
    ("net_level", "debug_layers: true", "debug_layers", "caffe.NetParameter"),
    ("repeated_list", 'layer { name: "r" type: "ReLU" bottom: "p" top: "p" quant_bits: [8, 8] }',
     "quant_bits", "caffe.LayerParameter"),
    ("ssd_transform", 'layer { name: "r" type: "ReLU" bottom: "p" top: "p" transform_param { '
     "resize_param { prob: 1 resize_mode: WARP height: 300 } } }", "resize_param",
     "caffe.TransformationParameter"),
]


def _warnings_of(text: str, path: str = "net.prototxt"):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net = caffe.Net(text, caffe.TEST) if path == "net" else None
        if net is None:
            parse_text(text, caffe_pb2.NetParameter(), path)
    return net, [w for w in caught if issubclass(w.category, UnknownFieldWarning)]


@pytest.mark.parametrize("extra,field,message", [c[1:] for c in TEXT_CASES], ids=[c[0] for c in TEXT_CASES])
def test_unknown_text_field_warns_with_its_place(extra, field, message):
    text = BASE + extra + "\n"
    line = text.count("\n", 0, text.index(field)) + 1
    col = text.index(field) - text.rfind("\n", 0, text.index(field))
    _, found = _warnings_of(text)
    assert len(found) == 1, [str(w.message) for w in found]
    msg = str(found[0].message)
    assert msg.startswith(f"net.prototxt:{line}:{col}: unknown field \"{field}\" in {message}"), msg
    assert "set_strict" in msg


def test_net_with_unknown_fields_computes_as_without_them():
    extra = 'layer { name: "r" type: "ReLU" bottom: "p" top: "q" relu_param { fused_bn: true } ' \
            "engine_hint: 3 }\n"
    plain = caffe.Net(BASE + 'layer { name: "r" type: "ReLU" bottom: "p" top: "q" }\n', caffe.TEST)
    with pytest.warns(UnknownFieldWarning) as record:
        fork = caffe.Net(BASE + extra, caffe.TEST)
    assert len(record) == 2
    x = np.random.RandomState(0).randn(1, 2, 5, 5)
    for net in (plain, fork):
        net.params["conv"][0].data[...] = np.arange(54).reshape(3, 2, 3, 3) / 50.0
        net.blobs["x"].data[...] = x
    np.testing.assert_array_equal(plain.forward()["q"], fork.forward()["q"])


def test_intel_engine_values_are_skipped():
    text = BASE.replace("kernel_size: 3 ", "kernel_size: 3 engine: MKL2017 ")
    known = r"caffe.ConvolutionParameter \(known: DEFAULT, CAFFE, CUDNN\)"
    with pytest.warns(UnknownFieldWarning, match=r'unknown value MKL2017 of field "engine" in ' + known):
        net = caffe.Net(text, caffe.TEST)
    assert net.layers[1].layer_param.convolution_param.engine == caffe_pb2.ConvolutionParameter.DEFAULT


@pytest.mark.parametrize("text,words", [
    ('layer { name: "a" tpye: "ReLU" }', ['no field named "tpye"', 'did you mean "type"']),
    ('layer { name: "p" type: "Pooling" pooling_param { pool: MAXIMUM } }', ["MAXIMUM"]),
    ('layer { name: "p" type: "Pooling" pooling_param { kernal_size: 2 } }', ['did you mean "kernel_size"']),
], ids=["typo_swap", "unknown_enum_value", "typo_letter"])
def test_typos_and_unknown_enum_values_stay_errors(text, words):
    with pytest.raises(ProtoSyntaxError) as info:
        parse_text(text, caffe_pb2.NetParameter(), "f.prototxt")
    assert str(info.value).startswith("f.prototxt:1:")
    for w in words:
        assert w in str(info.value)


def test_solver_with_ssd_fields_warns(tmp_path):
    path = tmp_path / "solver.prototxt"
    path.write_text('net: "train.prototxt"\nbase_lr: 0.001\neval_type: "detection"\nap_version: "11point"\n')
    with pytest.warns(UnknownFieldWarning) as record:
        solver = read_text(path, caffe_pb2.SolverParameter())
    assert solver.base_lr == pytest.approx(0.001)
    assert [re.search(r'"(\w+)"', str(w.message)).group(1) for w in record] == ["eval_type", "ap_version"]
    assert str(record[0].message).startswith(f"{path}:3:1:")


def test_strict_mode_raises_on_text():
    caffe.set_strict(True)
    try:
        with pytest.raises(ProtoSyntaxError, match=r'net.prototxt:2:\d+: .*no field named "fused"'):
            parse_text('name: "t"\nlayer { fused: 1 }', caffe_pb2.NetParameter(), "net.prototxt")
    finally:
        caffe.set_strict(False)


def test_strict_mode_from_the_environment(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text('name: "t"\nfork_flag: true\n')
    code = ("import caffe_compat as caffe\nfrom caffe_compat.proto.files import read_text\n"
            "from caffe_compat.proto import caffe_pb2\n"
            f"read_text({str(path)!r}, caffe_pb2.NetParameter())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, CAFFE_COMPAT_STRICT="1"))
    assert done.returncode != 0 and 'no field named "fork_flag"' in done.stderr


# ------------------------------------------------------------------ binary
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    return _varint(number << 3 | wire) + payload


def _fork_caffemodel(net: "caffe.Net") -> bytes:
    """The net's weights with fork fields added: an unknown varint (field 10001) in the conv
    layer, an unknown message (field 555) in its convolution_param, and a known number with
    another wire type (LayerParameter.phase, field 10, as a string)."""
    proto = net.to_proto()
    data = bytearray(caffe_pb2.NetParameter(name=proto.name).SerializeToString())
    for lp in proto.layer:
        body = lp.SerializeToString()
        if lp.name == "conv":
            conv = lp.convolution_param.SerializeToString() + _field(555, 2, _varint(2) + b"\x08\x01")
            lp2 = caffe_pb2.LayerParameter()
            lp2.CopyFrom(lp)
            lp2.ClearField("convolution_param")
            body = (lp2.SerializeToString() + _field(106, 2, _varint(len(conv)) + conv)
                    + _field(10001, 0, _varint(7)) + _field(10, 2, _varint(3) + b"GPU"))
        data += _field(100, 2, _varint(len(body)) + body)
    return bytes(data)


def test_unknown_binary_fields_warn_and_weights_load(tmp_path):
    net = caffe.Net(BASE, caffe.TEST)
    net.params["conv"][0].data[...] = np.random.RandomState(1).randn(3, 2, 3, 3)
    path = tmp_path / "fork.caffemodel"
    path.write_bytes(_fork_caffemodel(net))
    other = caffe.Net(BASE, caffe.TEST)
    with pytest.warns(UnknownFieldWarning) as record:
        other.copy_from(str(path))
    np.testing.assert_array_equal(other.params["conv"][0].data, net.params["conv"][0].data)
    texts = sorted({str(w.message).split(" was ignored")[0] for w in record})
    assert any('unknown field "555" in caffe.ConvolutionParameter (length-delimited) (layer "conv")' in t
               for t in texts), texts
    assert any('unknown field "10001" in caffe.LayerParameter (varint) (layer "conv")' in t for t in texts)
    assert any('unknown field "10" in caffe.LayerParameter (wire type length-delimited; our field phase '
               'is varint) (layer "conv")' in t for t in texts)
    assert all(re.search(r"fork.caffemodel: byte \d+: ", t) for t in texts)


def test_strict_mode_raises_on_binary(tmp_path):
    net = caffe.Net(BASE, caffe.TEST)
    path = tmp_path / "fork.caffemodel"
    path.write_bytes(_fork_caffemodel(net))
    caffe.set_strict(True)
    try:
        with pytest.raises(ProtoError, match=r"strict mode"):
            caffe.Net(BASE, caffe.TEST).copy_from(str(path))
    finally:
        caffe.set_strict(False)


def test_binary_proto_files_are_checked_too():
    blob = caffe_pb2.BlobProto(data=[1.0, 2.0]).SerializeToString() + _field(99, 0, _varint(1))
    where = r'm.binaryproto: byte 10: unknown field "99" in caffe.BlobProto'
    with pytest.warns(UnknownFieldWarning, match=where):
        out = parse_binary(blob, caffe_pb2.BlobProto(), "m.binaryproto")
    assert list(out.data) == [1.0, 2.0]


def test_clean_files_scan_clean_and_fast():
    net = caffe.Net(BASE, caffe.TEST)
    data = net.to_proto().SerializeToString()
    assert scan_binary(data, caffe_pb2.NetParameter.DESCRIPTOR, "m") == []
    big = caffe_pb2.BlobProto()
    big.data.extend(np.zeros(1 << 16, np.float32).tolist())  # packed: skipped by length, not per value
    assert scan_binary(big.SerializeToString(), caffe_pb2.BlobProto.DESCRIPTOR, "b") == []


def test_a_forks_same_number_same_wire_type_reads_as_ours():
    """Known limitation: some forks number ``ceil_mode`` 13, upstream's round_mode; in a binary
    file the fork's ceil_mode: true (1) reads as round_mode: FLOOR (1). Text files are not affected."""
    raw = caffe_pb2.PoolingParameter(kernel_size=2).SerializeToString() + _field(13, 0, _varint(1))
    p = parse_binary(raw, caffe_pb2.PoolingParameter(), "p")
    assert p.round_mode == caffe_pb2.PoolingParameter.FLOOR and not p.HasField("ceil_mode")
    t = parse_text("kernel_size: 2 ceil_mode: true", caffe_pb2.PoolingParameter())
    assert t.ceil_mode and t.round_mode == caffe_pb2.PoolingParameter.CEIL
