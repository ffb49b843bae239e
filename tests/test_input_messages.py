"""Input Caffe accepts, messages that name the right thing, and mistakes Caffe takes silently.

* Latin-1 bytes in prototxt comments load (real Caffe loads them: checked with
  the kendryte build); bytes that are not UTF-8 outside a comment are a
  ProtoSyntaxError at their line and column; nesting deeper than
  MAX_NESTING levels is a ProtoSyntaxError with file and line, never a raw
  RecursionError.
* Messages name the file (unknown layer type), the blob (Blob.reshape), the
  numbers (MemoryData), the file (a mean_file of the wrong shape), the Python
  layer and its class (a class that is not a layer, a top never shaped), and
  a Python layer's exception keeps the user's frames.
* What Caffe takes silently (checked against the kendryte build: duplicate
  layer names, a negative base_lr, unsorted stepvalues, an image list line
  without a label all load there) is a warning, an error in strict mode; so
  is a file using what upstream Caffe lacks (it refuses `margin`, L1Loss).
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

import caffe_compat as caffe
from caffe_compat.errors import (
    CaffeCompatError,
    DataError,
    ExtensionWarning,
    NetError,
    ProtoError,
    ProtoSyntaxError,
    ShapeError,
    SolverError,
    SuspiciousInputWarning,
    UnknownLayerTypeError,
    user_frames,
)
from caffe_compat.proto import caffe_pb2
from caffe_compat.proto.files import MAX_NESTING, read_text

INPUT = 'layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }\n'
IP = ('layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
      "inner_product_param { num_output: 2 } }\n")


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


# ---------------------------------------------------------------- encodings
LATIN1_OK = [  # (id, bytes of the file)
    ("comment-line", b"# R\xe9seau de d\xe9monstration, \xa9 2014\n" + INPUT.encode() + IP.encode()),
    ("trailing-comment", INPUT.encode() + IP.encode()[:-1] + b"  # couche enti\xe8rement connect\xe9e\n"),
    ("hash-in-string-then-comment",
     INPUT.encode().replace(b'name: "in"', b'name: "in#1"') + b"# caf\xe9\n" + IP.encode()),
    ("cp1252-quotes", b"# \x93smart quotes\x94 from Word\n" + INPUT.encode() + IP.encode()),
]


@pytest.mark.parametrize("data", [c[1] for c in LATIN1_OK], ids=[c[0] for c in LATIN1_OK])
def test_latin1_in_comments_loads(work, data):
    (work / "net.prototxt").write_bytes(data)
    net = caffe.Net("net.prototxt", caffe.TEST)
    assert list(net.blobs["ip"].data.shape) == [2, 2]


def test_latin1_comment_in_a_solver_loads(work):
    (work / "net.prototxt").write_text(INPUT + IP)
    (work / "s.prototxt").write_bytes(b'# r\xe9glages\nnet: "net.prototxt" base_lr: 0.1 lr_policy: "fixed"\n')
    assert caffe.get_solver("s.prototxt").net.blobs["ip"].data.shape == (2, 2)


ENCODING_ERRORS = [  # (id, bytes, exception, words)
    ("latin1-layer-name",
     INPUT.encode() + b'layer { name: "caf\xe9" type: "ReLU" bottom: "data" top: "r" }\n',
     ProtoSyntaxError, ["net.prototxt:2:19:", "byte 0xe9 is not UTF-8"]),
    ("latin1-after-string-hash", b'name: "a#b" \xe9\n', ProtoSyntaxError, ["net.prototxt:1:13:", "0xe9"]),
    ("binary-file", b"\n\x05lenet\x12\x00\xff\xfe", ProtoError, ["net.prototxt", "binary .caffemodel"]),
]


@pytest.mark.parametrize("data, exc, words", [c[1:] for c in ENCODING_ERRORS],
                         ids=[c[0] for c in ENCODING_ERRORS])
def test_encoding_errors_point_at_the_byte(work, data, exc, words):
    (work / "net.prototxt").write_bytes(data)
    with pytest.raises(exc) as info:
        caffe.Net("net.prototxt", caffe.TEST)
    for word in words:
        assert word in str(info.value), str(info.value)


# ------------------------------------------------------------------ nesting
def _nested(depth: int) -> str:
    return 'name: "x"\n' + "fork_extra {\n" * depth + "}\n" * depth


@pytest.mark.parametrize("depth", [MAX_NESTING // 2, MAX_NESTING])
def test_deep_but_allowed_nesting_loads(depth):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the unknown field's warning
        net = caffe.proto.files.parse_text(_nested(depth), caffe_pb2.NetParameter(), "deep.prototxt")
    assert net.name == "x"


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 1000, 100_000])
def test_too_deep_nesting_is_a_syntax_error(work, depth):
    (work / "deep.prototxt").write_text(_nested(depth))
    with pytest.raises(ProtoSyntaxError) as info:
        read_text("deep.prototxt", caffe_pb2.NetParameter())
    # the brace that opens level MAX_NESTING + 1: line MAX_NESTING + 2, after "fork_extra "
    assert f"deep.prototxt:{MAX_NESTING + 2}:12: messages nested deeper than {MAX_NESTING} levels" \
        in str(info.value)
    assert info.value.line == MAX_NESTING + 2 and info.value.path == "deep.prototxt"


def test_nesting_is_counted_outside_strings_and_comments():
    text = "layer { name: \"{{{{<<'\" type: '{{\\'{{' }  # {{{{ <<<<\n" * (2 * MAX_NESTING)
    net = caffe.proto.files.parse_text(text, caffe_pb2.NetParameter(), "s")
    assert len(net.layer) == 2 * MAX_NESTING and net.layer[0].name == "{{{{<<'"


def test_recursion_error_never_escapes(monkeypatch):
    monkeypatch.setattr(sys, "getrecursionlimit", sys.getrecursionlimit)
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(ProtoSyntaxError, match="nested too deeply"):
                caffe.proto.files.parse_text(_nested(90), caffe_pb2.NetParameter(), "deep.prototxt")
    finally:
        sys.setrecursionlimit(old)


# ----------------------------------------------------------------- messages
PY_LAYERS = '''
import caffe_compat as caffe

class NoShape(caffe.Layer):
    def setup(self, bottom, top): pass
    def reshape(self, bottom, top): pass
    def forward(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)
        top[0].data[...] = bottom[0].data

class NotALayer:
    pass

class NegativeShape(caffe.Layer):
    def setup(self, bottom, top):
        top[0].reshape(-1, 3)

class Boom(caffe.Layer):
    def reshape(self, bottom, top): top[0].reshape(*bottom[0].data.shape)
    def forward(self, bottom, top):
        ratio = 1 / 0  # the user's line
'''


def _py(cls: str, after: str = IP.replace('bottom: "data"', 'bottom: "out"')) -> str:
    return (INPUT + f'layer {{ name: "py" type: "Python" bottom: "data" top: "out" '
            f'python_param {{ module: "user_layers" layer: "{cls}" }} }}\n' + after)


MESSAGES = [  # (id, prototxt, exception, words)
    ("unknown-type-names-the-file", INPUT + 'layer { name: "x" type: "Convolutoin" bottom: "data" top: "x" }',
     UnknownLayerTypeError, ["net.prototxt", 'layer "x"', 'unknown layer type "Convolutoin"', "Convolution"]),
    ("python-top-never-shaped", _py("NoShape"), CaffeCompatError,
     ["net.prototxt", 'Python layer "py"', "user_layers.NoShape", 'top 0 "out"', 'InnerProduct layer "ip"',
      "reshape"]),
    ("python-not-a-layer", _py("NotALayer"), CaffeCompatError,
     ["net.prototxt", 'Python layer "py"', "user_layers.NotALayer", "not a caffe.Layer"]),
    ("python-reshape-names-the-blob", _py("NegativeShape"), ShapeError,
     ['Python layer "py"', "user_layers.NegativeShape", 'blob "out"', "negative dimension in shape [-1, 3]"]),
]


@pytest.mark.parametrize("text, exc, words", [c[1:] for c in MESSAGES], ids=[c[0] for c in MESSAGES])
def test_messages_name_the_right_thing(work, text, exc, words):
    (work / "user_layers.py").write_text(PY_LAYERS)
    (work / "net.prototxt").write_text(text)
    with pytest.raises(exc) as info:
        caffe.Net("net.prototxt", caffe.TEST)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_an_unread_unshaped_python_top_is_fine(work):
    """Shaping a top in forward() works in Caffe when no later layer reads it at setup."""
    (work / "user_layers.py").write_text(PY_LAYERS)
    net = caffe.Net(_py("NoShape", after=""), caffe.TEST)
    net.blobs["data"].data[...] = 2
    assert np.all(net.forward()["out"] == 2)


def test_python_layer_exception_keeps_the_users_frames(work):
    (work / "user_layers.py").write_text(PY_LAYERS)
    net = caffe.Net(_py("Boom", after=""), caffe.TEST)
    with pytest.raises(ZeroDivisionError) as info:
        net.forward()
    assert 'Python layer "py"' in str(info.value)
    frames = user_frames(info.value)
    assert frames and frames[-1].filename.endswith("user_layers.py") and "the user's line" in frames[-1].line
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_net_blob_reshape_names_the_blob():
    net = caffe.Net(INPUT + IP, caffe.TEST)
    with pytest.raises(ShapeError, match=r'blob "data": negative dimension in shape \[-1, 3\]'):
        net.blobs["data"].reshape(-1, 3)


MEMORY_DATA = ('layer { name: "m" type: "MemoryData" top: "data" top: "label" '
               'memory_data_param { batch_size: 2 channels: 3 height: 2 width: 1 } }')
F32 = np.float32
MEMORY_ERRORS = [  # (id, data, labels, words)
    ("channels", np.zeros((4, 2, 2, 1), F32), np.zeros(4, F32),
     ["wrong number of channels", "expected 3", "got 2", "[4, 2, 2, 1]", 'MemoryData layer "m"']),
    ("height", np.zeros((4, 3, 5, 1), F32), np.zeros(4, F32), ["wrong height", "expected 2", "got 5"]),
    ("width", np.zeros((4, 3, 2, 7), F32), np.zeros(4, F32), ["wrong width", "expected 1", "got 7"]),
    ("ndim", np.zeros((4, 6), F32), np.zeros(4, F32), ["must be 4-d", "N x 3 x 2 x 1", "[4, 6]"]),
    ("dtype", np.zeros((4, 3, 2, 1)), np.zeros(4, F32), ["must be float32", "float64"]),
    ("count", np.zeros((4, 3, 2, 1), F32), np.zeros(3, F32), ["same first dimension", "4 data", "3 labels"]),
    ("batch", np.zeros((3, 3, 2, 1), F32), np.zeros(3, F32),
     ["multiple of batch size", "3 items", "batch size 2"]),
]


@pytest.mark.parametrize("data, labels, words", [c[1:] for c in MEMORY_ERRORS],
                         ids=[c[0] for c in MEMORY_ERRORS])
def test_memory_data_says_expected_and_received(data, labels, words):
    net = caffe.Net(MEMORY_DATA, caffe.TEST)
    with pytest.raises(RuntimeError) as info:
        net.set_input_arrays(data, labels)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_wrong_shape_mean_file_names_the_file(work):
    from caffe_compat.data import DBWriter
    from caffe_compat.io import array_to_datum

    (work / "mean.binaryproto").write_bytes(
        caffe_pb2.BlobProto(num=1, channels=3, height=2, width=2, data=[0.0] * 12).SerializeToString())
    with DBWriter(work / "db", "lmdb") as w:
        w.put("0", array_to_datum(np.zeros((1, 4, 4), np.uint8), 0).SerializeToString())
    net = caffe.Net('layer { name: "d" type: "Data" top: "data" '
                    'data_param { source: "db" backend: LMDB batch_size: 1 } '
                    'transform_param { mean_file: "mean.binaryproto" } }', caffe.TEST)
    with pytest.raises(DataError) as info:
        net.forward()
    for word in ['Data layer "d"', 'mean_file "mean.binaryproto"', "[3, 2, 2]", "[1, 4, 4]"]:
        assert word in str(info.value), str(info.value)


# ----------------------------------------------------------------- warnings
SOLVER_NET = ('layer { name: "in" type: "Input" top: "data" top: "label" '
              'input_param { shape { dim: 2 dim: 3 } '
              'shape { dim: 2 } } }\n' + IP + 'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" '
              'bottom: "label" top: "loss" }\n')
HINGE = SOLVER_NET.replace('type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }',
                           'type: "HingeLoss" bottom: "ip" bottom: "label" top: "loss" '
                           "hinge_loss_param { margin: 2 } }")


def _image_list(work, text: str) -> str:
    from PIL import Image

    for name in "ab":
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(work / f"{name}.png")
    (work / "list.txt").write_text(text)
    return ('layer { name: "img" type: "ImageData" top: "data" top: "label" '
            'image_data_param { source: "list.txt" batch_size: 2 } }')


# (id, kind: net/solver/imagelist, text, warning, strict error, words)
SILENT = [
    ("duplicate-layer-names", "net", INPUT + IP + IP.replace('top: "ip"', 'top: "ip2"'),
     SuspiciousInputWarning, NetError, ["net.prototxt", 'two layers are named "ip"', "InnerProduct layer 1",
                                        "layer 2", "net.params"]),
    ("negative-base-lr", "solver", 'base_lr: -0.01 lr_policy: "fixed"', SuspiciousInputWarning, SolverError,
     ["s.prototxt", "base_lr is negative (-0.01)"]),
    ("unsorted-stepvalues", "solver", 'base_lr: 0.1 lr_policy: "multistep" gamma: 0.1 stepvalue: 300 '
     "stepvalue: 100", SuspiciousInputWarning, SolverError,
     ["s.prototxt", "stepvalue must increase", "stepvalue[1] = 100", "after 300", "[300, 100]"]),
    ("repeated-stepvalues", "solver", 'base_lr: 0.1 lr_policy: "multistep" gamma: 0.1 stepvalue: 100 '
     "stepvalue: 100", SuspiciousInputWarning, SolverError, ["stepvalue[1] = 100", "[100, 100]"]),
    ("image-list-without-label", "imagelist", "a.png 1\nb.png\n", SuspiciousInputWarning, DataError,
     ["list.txt:2", "no label on 1 line(s)", "'b.png'", "label 0"]),
    ("l1-loss", "net",
     SOLVER_NET.replace("SoftmaxWithLoss", "L1Loss").replace('bottom: "label"', 'bottom: "ip"'),
     ExtensionWarning, NetError,
     ["net.prototxt", "will not load in real Caffe", 'layer "loss": type L1Loss']),
    ("hinge-margin", "net", HINGE, ExtensionWarning, NetError,
     ["will not load in real Caffe", 'layer "loss": hinge_loss_param.margin (caffe_compat)']),
    ("fork-field", "net", INPUT.replace("dim: 2 dim: 3", "dim: 1 dim: 1 dim: 4 dim: 4") +
     'layer { name: "p" type: "Pooling" bottom: "data" top: "p" '
     "pooling_param { kernel_size: 2 ceil_mode: false } }",
     ExtensionWarning, NetError, ['layer "p": pooling_param.ceil_mode (several forks)']),
    ("fork-layer", "net", INPUT.replace("dim: 2 dim: 3", "dim: 1 dim: 2 dim: 2 dim: 2") +
     'layer { name: "perm" type: "Permute" bottom: "data" top: "p" permute_param { order: 0 order: 2 '
     "order: 3 order: 1 } }", ExtensionWarning, NetError, ['layer "perm": type Permute (a fork\'s layer)']),
]


def _load(work, kind: str, text: str):
    if kind == "solver":
        (work / "net.prototxt").write_text(SOLVER_NET)
        (work / "s.prototxt").write_text('net: "net.prototxt" ' + text + "\n")
        return caffe.get_solver("s.prototxt")
    if kind == "imagelist":
        text = _image_list(work, text)
    (work / "net.prototxt").write_text(text)
    return caffe.Net("net.prototxt", caffe.TRAIN)


@pytest.mark.parametrize("kind, text, warning, error, words", [c[1:] for c in SILENT],
                         ids=[c[0] for c in SILENT])
def test_silent_mistakes_warn(work, kind, text, warning, error, words):
    with pytest.warns(warning) as record:
        _load(work, kind, text)
    message = " ".join(str(w.message) for w in record if issubclass(w.category, warning))
    for word in words + ["set_strict(True)"]:
        assert word in message, message


@pytest.mark.parametrize("kind, text, warning, error, words", [c[1:] for c in SILENT],
                         ids=[c[0] for c in SILENT])
def test_silent_mistakes_are_errors_in_strict_mode(work, kind, text, warning, error, words):
    caffe.set_strict(True)
    with pytest.raises(error) as info:
        _load(work, kind, text)
    for word in words[1:] + ["strict mode"]:
        assert word in str(info.value), str(info.value)


CLEAN = [("net", SOLVER_NET),
         ("solver", 'base_lr: 0.1 lr_policy: "multistep" gamma: 0.1 stepvalue: 100 stepvalue: 200'),
         ("imagelist", "a.png 1\nb.png 0\n")]


@pytest.mark.parametrize("kind, text", CLEAN, ids=[c[0] for c in CLEAN])
def test_clean_files_give_no_warning(work, kind, text):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SuspiciousInputWarning)
        warnings.simplefilter("error", ExtensionWarning)
        _load(work, kind, text)


def test_extension_tables_agree_with_the_schema_and_catalog_tests():
    """caffe_compat/proto/extensions.py states what the schema test and the catalog test measure."""
    from test_catalog_layers import UPSTREAM_TYPES
    from test_proto_schema import ALLOWED_EXTRA_FIELDS

    from caffe_compat.proto.extensions import EXTENSION_FIELDS, UPSTREAM_LAYER_TYPES

    assert UPSTREAM_LAYER_TYPES == set(UPSTREAM_TYPES)
    assert {k: number for k, (number, _) in EXTENSION_FIELDS.items()} == ALLOWED_EXTRA_FIELDS
