"""Bad input gives a clear exception from one hierarchy, never a crash.

Each case names what the message must contain: the place (file:line:col,
the layer, the blob) and what was expected versus received.
"""

from __future__ import annotations

import numpy as np
import pytest

import caffe_compat as caffe
from caffe_compat.errors import (
    BlobNotFoundError,
    CaffeCompatError,
    LayerError,
    NetError,
    ProtoError,
    ProtoSyntaxError,
    ShapeError,
    UnknownLayerTypeError,
    WeightsError,
)

INPUT = 'layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 5 dim: 5 } } }\n'

# (id, prototxt, exception, substrings the message must contain)
BUILD_CASES = [
    ("syntax", 'name: "n"\nlayer {\n  name: "a"\n  type: "Input"\n  top: "x"\n',
     ProtoSyntaxError, ["net.prototxt:5:8", "Expected"]),
    ("unknown_field", 'name: "n"\nlayer {\n  name: "a"\n  tpye: "Input"\n}\n',
     ProtoSyntaxError, ["net.prototxt:4:3", 'no field named "tpye"']),
    ("unknown_enum", INPUT + 'layer { name: "p" type: "Pooling" bottom: "x" top: "p"\n'
     '  pooling_param { pool: MAXIMUM kernel_size: 2 } }\n',
     ProtoSyntaxError, [":3:", "MAXIMUM"]),
    ("unknown_type", INPUT + 'layer { name: "c" type: "Convolutoin" bottom: "x" top: "c" }\n',
     UnknownLayerTypeError, ['"Convolutoin"', 'layer "c"', "Convolution", "Known types"]),
    ("missing_bottom", INPUT + 'layer { name: "r" type: "ReLU" bottom: "nope" top: "r" }\n',
     NetError, ['"nope"', 'layer "r"', "bottom index 0"]),
    ("bottom_count", INPUT + 'layer { name: "r" type: "ReLU" bottom: "x" bottom: "x" top: "r" }\n',
     LayerError, ['ReLU layer "r"', "expected 1 bottom", "got 2"]),
    ("top_count", INPUT + 'layer { name: "r" type: "ReLU" bottom: "x" }\n',
     LayerError, ['ReLU layer "r"', "expected 1 top", "got 0"]),
    ("duplicate_top", INPUT + 'layer { name: "a" type: "ReLU" bottom: "x" top: "y" }\n'
     'layer { name: "b" type: "ReLU" bottom: "x" top: "y" }\n',
     NetError, ['"y"', "multiple sources", 'layer "b"']),
    ("kernel_too_big", INPUT + 'layer { name: "c" type: "Convolution" bottom: "x" top: "c"\n'
     '  convolution_param { num_output: 2 kernel_size: 7 } }\n',
     ShapeError, ['Convolution layer "c"', "kernel", "[2, 3, 5, 5]"]),
    ("pool_kernel_too_big", INPUT + 'layer { name: "p" type: "Pooling" bottom: "x" top: "p"\n'
     '  pooling_param { kernel_size: 9 } }\n',
     LayerError, ['Pooling layer "p"']),
    ("ip_no_num_output", INPUT + 'layer { name: "f" type: "InnerProduct" bottom: "x" top: "f" }\n',
     LayerError, ['InnerProduct layer "f"', "num_output"]),
    ("conv_group", INPUT + 'layer { name: "c" type: "Convolution" bottom: "x" top: "c"\n'
     '  convolution_param { num_output: 4 kernel_size: 1 group: 2 } }\n',
     LayerError, ['layer "c"', "group 2", "(3)"]),
    ("propagate_down_count", INPUT + 'layer { name: "r" type: "ReLU" bottom: "x" top: "r"\n'
     '  propagate_down: true propagate_down: false }\n',
     NetError, ['layer "r"', "propagate_down"]),
    ("include_and_exclude", INPUT + 'layer { name: "r" type: "ReLU" bottom: "x" top: "r"\n'
     '  include { phase: TRAIN } exclude { phase: TEST } }\n',
     NetError, ['"r"', "include and exclude"]),
    ("too_many_param_specs", INPUT + 'layer { name: "r" type: "ReLU" bottom: "x" top: "r"\n'
     '  param { lr_mult: 1 } }\n',
     NetError, ['layer "r"', "1 param specs", "0 parameter blob"]),
    ("loss_weight_count", INPUT + 'layer { name: "r" type: "ReLU" bottom: "x" top: "r"\n'
     '  loss_weight: 1 loss_weight: 2 }\n',
     LayerError, ['layer "r"', "loss_weight", "2 weight(s) for 1 top"]),
    ("bad_input_dim", 'input: "x"\ninput_dim: 1\ninput_dim: 2\n',
     ProtoError, ["input_dim", "4"]),
    ("negative_input_shape", 'layer { name: "x" type: "Input" top: "x"\n'
     '  input_param { shape { dim: 2 dim: -3 } } }\n',
     ShapeError, ["negative dimension", "[2, -3]"]),
    ("shared_param_shape", INPUT +
     'layer { name: "a" type: "InnerProduct" bottom: "x" top: "a" param { name: "w" }\n'
     '  inner_product_param { num_output: 2 bias_term: false } }\n'
     'layer { name: "b" type: "InnerProduct" bottom: "x" top: "b" param { name: "w" }\n'
     '  inner_product_param { num_output: 3 bias_term: false } }\n',
     NetError, ["shared parameter 'w'", "[3, 75]", "[2, 75]"]),
]


@pytest.mark.parametrize("text,exc,parts", [c[1:] for c in BUILD_CASES], ids=[c[0] for c in BUILD_CASES])
def test_bad_net_definition(tmp_path, text, exc, parts):
    path = tmp_path / "net.prototxt"
    path.write_text(text)
    with pytest.raises(exc) as info:
        caffe.Net(str(path), caffe.TEST)
    assert isinstance(info.value, CaffeCompatError)
    for part in parts:
        assert part in str(info.value), f"{part!r} not in: {info.value}"


NET = INPUT + """
layer { name: "lab" type: "Input" top: "label" input_param { shape { dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip" inner_product_param { num_output: 4 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


@pytest.fixture
def net():
    return caffe.Net(NET, caffe.TRAIN)


def test_missing_prototxt_file(tmp_path):
    with pytest.raises(ProtoError, match="no such file"):
        caffe.Net(str(tmp_path / "absent.prototxt"), caffe.TEST)


def test_binary_file_given_as_prototxt(tmp_path, net):
    path = tmp_path / "w.caffemodel"
    net.save(str(path))
    with pytest.raises(ProtoError, match="binary"):
        caffe.Net(str(path), caffe.TEST)


def test_unknown_forward_input(net):
    with pytest.raises(BlobNotFoundError, match='"nope" is not an input blob'):
        net.forward(nope=np.zeros(3))


def test_wrong_shaped_forward_input(net):
    with pytest.raises(ShapeError) as info:
        net.forward(x=np.zeros((2, 3, 4, 4)))
    assert "[2, 3, 5, 5]" in str(info.value) and "[2, 3, 4, 4]" in str(info.value)


def test_forward_input_with_same_count_is_reshaped(net):
    net.forward(x=np.ones((2, 75)), label=np.zeros(2))
    assert (net.blobs["x"].data == 1).all()


def test_out_of_range_label(net):
    net.blobs["label"].data[...] = [1, 7]
    with pytest.raises(LayerError) as info:
        net.forward()
    assert 'SoftmaxWithLoss layer "loss"' in str(info.value) and "label 7" in str(info.value)


def test_unknown_layer_in_forward_start(net):
    with pytest.raises(BlobNotFoundError, match='no layer named "nope"'):
        net.forward(start="nope")


def test_missing_weights_file(tmp_path, net):
    with pytest.raises(WeightsError, match="no such"):
        net.copy_from(str(tmp_path / "absent.caffemodel"))


def test_truncated_weights_file(tmp_path, net):
    path = tmp_path / "w.caffemodel"
    net.save(str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError) as info:
        net.copy_from(str(path))
    assert str(path) in str(info.value)


def test_empty_weights_file(tmp_path, net):
    path = tmp_path / "w.caffemodel"
    path.write_bytes(b"")
    with pytest.raises(WeightsError, match="empty"):
        net.copy_from(str(path))


def test_weight_shape_mismatch(tmp_path, net):
    path = tmp_path / "w.caffemodel"
    net.save(str(path))
    other = caffe.Net(NET.replace("num_output: 4", "num_output: 5"), caffe.TRAIN)
    with pytest.raises(WeightsError) as info:
        other.copy_from(str(path))
    msg = str(info.value)
    assert 'InnerProduct layer "ip"' in msg and "[4, 75]" in msg and "[5, 75]" in msg


def test_weight_blob_count_mismatch(tmp_path, net):
    path = tmp_path / "w.caffemodel"
    net.save(str(path))
    other = caffe.Net(NET.replace("num_output: 4", "num_output: 4 bias_term: false"), caffe.TRAIN)
    with pytest.raises(WeightsError, match="number of blobs"):
        other.copy_from(str(path))


def test_errors_are_builtin_subclasses():
    assert issubclass(ShapeError, ValueError)
    assert issubclass(UnknownLayerTypeError, KeyError)
    assert issubclass(BlobNotFoundError, KeyError)
    assert issubclass(ProtoSyntaxError, ValueError)
