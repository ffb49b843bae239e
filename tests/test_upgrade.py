"""Legacy net and solver definitions upgraded as Caffe upgrades them.

* Golden: real Caffe loaded V0/V1/``input:``/old-BatchNorm nets and saved
  them; the saved LayerParameters are Caffe's upgrade (after Net::Init's
  filtering, split insertion and phase stamping). Ours must be the same.
* Tables of the upgrade rules (V0 types and fields, V1 types, transformation
  fields, input fields, solver types) with the values upgrade_proto.cpp gives.
* Errors: where Caffe aborts we raise ProtoError/SolverError naming the layer;
  syntax errors carry path:line:column.
* The upgrade_* tools.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

import caffe_compat as caffe
from caffe_compat.cli import main as cli
from caffe_compat.errors import ProtoError, ProtoSyntaxError, SolverError
from caffe_compat.layers.registry import get_layer_class
from caffe_compat.netparam import filter_net, insert_splits
from caffe_compat.proto import caffe_pb2, legacy
from caffe_compat.proto.files import parse_text, read_text
from caffe_compat.proto.upgrade import net_needs_upgrade, upgrade_net, upgrade_solver
from golden.cases import formats
from golden_harness import ROOT, fixtures, load

LEGACY = Path(__file__).resolve().parent / "data" / "legacy"
UPGRADES = fixtures("upgrade", ("formats",))


def _net(text: str) -> caffe_pb2.NetParameter:
    return parse_text(text, caffe_pb2.NetParameter(), "<test>")


def _upgraded(text: str, problems: list[str] | None = None) -> caffe_pb2.NetParameter:
    net = _net(text)
    upgrade_net(net, "<test>", problems)
    return net


def _layer(text: str) -> caffe_pb2.LayerParameter:
    return parse_text(text, caffe_pb2.LayerParameter(), "<expected>")


# ------------------------------------------------------------------- golden
def _as_caffe_builds(meta: dict) -> tuple[caffe_pb2.NetParameter, list[str]]:
    problems: list[str] = []
    net = _net(meta["prototxt"])
    upgrade_net(net, meta["name"], problems)
    phase = caffe_pb2.TEST if meta["phase"] == "TEST" else caffe_pb2.TRAIN
    net.state.phase = phase
    net = insert_splits(filter_net(net))
    for layer in net.layer:
        if not layer.HasField("phase"):
            layer.phase = phase
    return net, problems


@pytest.mark.parametrize("path", UPGRADES, ids=[p.stem for p in UPGRADES])
def test_upgrade_matches_caffe(path):
    meta = load(path).meta
    ours, _ = _as_caffe_builds(meta)
    theirs = _net(meta["upgraded"])
    assert ours.name == theirs.name
    assert [lp.name for lp in ours.layer] == [lp.name for lp in theirs.layer]
    for a, b in zip(ours.layer, theirs.layer):
        # Caffe's LossLayer::LayerSetUp adds loss_weight: 1 to its own copy.
        if b.type.endswith("Loss") and list(b.loss_weight) == [1.0] and not len(a.loss_weight):
            b.ClearField("loss_weight")
        assert a == b, (f"layer {a.name}:\nours   {text_format.MessageToString(a, as_one_line=True)}"
                        f"\ncaffe's {text_format.MessageToString(b, as_one_line=True)}")


def test_v0_field_the_type_does_not_take_is_a_problem_not_an_error():
    """Caffe logs "Unknown parameter num_output for layer type relu" and goes on."""
    meta = load(ROOT / "formats" / "v0_all_fields.npz").meta
    _, problems = _as_caffe_builds(meta)
    assert len(problems) == 1
    assert "relu1" in problems[0] and "num_output" in problems[0] and '"relu"' in problems[0]


def _buildable(meta: dict) -> str:
    """Why caffe_compat cannot build this fixture's net yet ("" if it can)."""
    if "@DIR@" in meta["prototxt"]:
        return "needs the data sources the generator made"
    missing = []
    for t in meta["layer_types"]:
        try:
            get_layer_class(t)
        except KeyError:
            missing.append(t)
    return f"layer types not registered yet: {sorted(set(missing))}" if missing else ""


@pytest.mark.parametrize("path", UPGRADES, ids=[p.stem for p in UPGRADES])
def test_net_from_legacy_file_is_caffes(path):
    """The Net built from the legacy file has Caffe's layers and blob shapes."""
    meta = load(path).meta
    reason = _buildable(meta)
    if reason:
        pytest.skip(reason)
    net = caffe.Net(meta["prototxt"], caffe.TEST if meta["phase"] == "TEST" else caffe.TRAIN)
    assert list(net._layer_names) == meta["layer_names"]
    assert [layer.type for layer in net.layers] == meta["layer_types"]
    assert {k: list(v.data.shape) for k, v in net.blobs.items()} == meta["blob_shapes"]


def test_legacy_v0_file_loads_from_disk():
    net = caffe.Net(str(LEGACY / "v0_lenet.prototxt"), caffe.TEST)
    assert net.blobs["conv1"].data.shape == (2, 20, 28, 28)  # pad 2 folded into conv1
    assert net.params["ip1"][0].data.shape == (500, 1250)  # 50 x 5 x 5
    assert net.inputs == ["data"]


# ------------------------------------------------------------------------ V0
# V0 type string → the current type (UpgradeV0LayerType ∘ UpgradeV1LayerType).
V0_TYPES = {
    "accuracy": "Accuracy", "bnll": "BNLL", "concat": "Concat", "conv": "Convolution",
    "data": "Data", "dropout": "Dropout", "euclidean_loss": "EuclideanLoss", "flatten": "Flatten",
    "hdf5_data": "HDF5Data", "hdf5_output": "HDF5Output", "im2col": "Im2col",
    "images": "ImageData", "infogain_loss": "InfogainLoss", "innerproduct": "InnerProduct",
    "lrn": "LRN", "multinomial_logistic_loss": "MultinomialLogisticLoss", "pool": "Pooling",
    "relu": "ReLU", "sigmoid": "Sigmoid", "softmax": "Softmax", "softmax_loss": "SoftmaxWithLoss",
    "split": "Split", "tanh": "TanH", "window_data": "WindowData",
}


def test_v0_type_table_is_complete():
    assert set(V0_TYPES) == set(legacy.V0_LAYER_TYPES)


@pytest.mark.parametrize("v0,current", sorted(V0_TYPES.items()))
def test_v0_type(v0, current):
    net = _upgraded(f'layers {{ layer {{ name: "l" type: "{v0}" }} }}')
    assert [(lp.name, lp.type) for lp in net.layer] == [("l", current)]


# (id, V0 type, V0 fields, the upgraded layer's parameter messages)
V0_FIELDS = [
    ("conv", "conv",
     "num_output: 3 biasterm: false kernelsize: 5 stride: 2 pad: 1 group: 3 "
     'weight_filler { type: "xavier" } bias_filler { type: "constant" value: 1 }',
     "convolution_param { num_output: 3 bias_term: false pad: 1 kernel_size: 5 group: 3 stride: 2 "
     'weight_filler { type: "xavier" } bias_filler { type: "constant" value: 1 } }'),
    ("innerproduct", "innerproduct",
     'num_output: 7 biasterm: true weight_filler { type: "gaussian" std: 0.1 }',
     'inner_product_param { num_output: 7 bias_term: true weight_filler { type: "gaussian" std: 0.1 } }'),
    ("pool_ave", "pool", "pool: AVE kernelsize: 3 stride: 2 pad: 1",
     "pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }"),
    ("pool_stochastic", "pool", "pool: STOCHASTIC", "pooling_param { pool: STOCHASTIC }"),
    ("dropout", "dropout", "dropout_ratio: 0.2", "dropout_param { dropout_ratio: 0.2 }"),
    ("lrn", "lrn", "local_size: 3 alpha: 0.1 beta: 0.5 k: 2",
     "lrn_param { local_size: 3 alpha: 0.1 beta: 0.5 k: 2 }"),
    ("data", "data",
     'source: "db" batchsize: 8 rand_skip: 4 scale: 0.5 meanfile: "m" cropsize: 3 mirror: true',
     'data_param { source: "db" batch_size: 8 rand_skip: 4 } '
     'transform_param { scale: 0.5 mirror: true crop_size: 3 mean_file: "m" }'),
    ("hdf5_data", "hdf5_data", 'source: "l.txt" batchsize: 2',
     'hdf5_data_param { source: "l.txt" batch_size: 2 }'),
    ("images", "images",
     'source: "i.txt" batchsize: 3 rand_skip: 1 shuffle_images: true new_height: 4 new_width: 5',
     'image_data_param { source: "i.txt" batch_size: 3 rand_skip: 1 shuffle: true '
     "new_height: 4 new_width: 5 }"),
    ("window_data", "window_data",
     'source: "w.txt" batchsize: 4 det_fg_threshold: 0.6 det_bg_threshold: 0.4 '
     'det_fg_fraction: 0.3 det_context_pad: 16 det_crop_mode: "square"',
     'window_data_param { source: "w.txt" batch_size: 4 fg_threshold: 0.6 bg_threshold: 0.4 '
     'fg_fraction: 0.3 context_pad: 16 crop_mode: "square" }'),
    ("infogain_loss", "infogain_loss", 'source: "h.binaryproto"',
     'infogain_loss_param { source: "h.binaryproto" }'),
    ("concat", "concat", "concat_dim: 2", "concat_param { concat_dim: 2 }"),
    ("hdf5_output", "hdf5_output", 'hdf5_output_param { file_name: "o.h5" }',
     'hdf5_output_param { file_name: "o.h5" }'),
    ("multipliers", "conv", "blobs_lr: 1 blobs_lr: 2 weight_decay: 3",
     "param { lr_mult: 1 decay_mult: 3 } param { lr_mult: 2 }"),
]


@pytest.mark.parametrize("v0,fields,expected", [c[1:] for c in V0_FIELDS], ids=[c[0] for c in V0_FIELDS])
def test_v0_fields(v0, fields, expected):
    problems: list[str] = []
    net = _upgraded(f'layers {{ layer {{ name: "l" type: "{v0}" {fields} }} }}', problems)
    want = _layer(f'name: "l" type: "{V0_TYPES[v0]}" {expected}')
    assert net.layer[0] == want
    assert problems == []


def test_v0_blobs_and_connections_kept():
    net = _upgraded('''input: "x" input_dim: 1 input_dim: 2 input_dim: 3 input_dim: 3 force_backward: true
        layers { layer { name: "ip" type: "innerproduct" num_output: 2 blobs { data: 1 } }
                 bottom: "x" top: "y" }''')
    assert net.force_backward
    assert [lp.type for lp in net.layer] == ["Input", "InnerProduct"]
    assert list(net.layer[1].bottom) == ["x"] and list(net.layer[1].top) == ["y"]
    assert list(net.layer[1].blobs[0].data) == [1.0]


PADDING = 'layers {{ layer {{ name: "pad" type: "padding" pad: 3 }} bottom: "x" top: "p" }} '
V0_ERRORS = [
    ("unknown_type", 'layers { layer { name: "odd" type: "convolution" } }',
     ['"odd"', '"convolution"', "known V0 types", "conv"]),
    ("padding_into_relu", 'input: "x" ' + PADDING.format() +
     'layers { layer { name: "r" type: "relu" } bottom: "p" top: "r" }',
     ['"pad"', '"r"', '"relu"']),
    ("padding_two_bottoms", 'input: "x" input: "z" ' + PADDING.format() +
     'layers { layer { name: "c" type: "conv" } bottom: "p" bottom: "z" top: "c" }',
     ['"c"', "exactly 1 bottom", "got 2"]),
    ("unknown_bottom", 'layers { layer { name: "c" type: "conv" } bottom: "nowhere" top: "c" }',
     ['"c"', '"nowhere"']),
]


@pytest.mark.parametrize("text,words", [c[1:] for c in V0_ERRORS], ids=[c[0] for c in V0_ERRORS])
def test_v0_errors(text, words):
    with pytest.raises(ProtoError) as info:
        _upgraded(text)
    for w in words:
        assert w in str(info.value), f"{w!r} not in {info.value}"


def test_v0_padding_folded_into_pool():
    net = _upgraded('input: "x" ' + PADDING.format() +
                    'layers { layer { name: "p2" type: "pool" kernelsize: 2 } bottom: "p" top: "y" }')
    # An input without dims is dropped (as for a legacy .caffemodel).
    assert [lp.name for lp in net.layer] == ["p2"]
    assert net.layer[0].pooling_param.pad == 3 and list(net.layer[0].bottom) == ["x"]


# ------------------------------------------------------------------------ V1
V1_TYPES = {
    "NONE": "", "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DECONVOLUTION": "Deconvolution", "DATA": "Data", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise",
    "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice",
    "TANH": "TanH", "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}


def test_v1_type_table_covers_the_enum():
    assert set(V1_TYPES) == set(caffe_pb2.V1LayerParameter.LayerType.keys())


@pytest.mark.parametrize("v1,current", sorted(V1_TYPES.items()))
def test_v1_type(v1, current):
    net = _upgraded(f'layers {{ name: "l" type: {v1} }}')
    assert net.layer[0].type == current and not len(net.layers)


def test_v1_param_specs():
    """param names, share modes, blobs_lr and weight_decay fill ParamSpecs
    from the front, each list as long as it is."""
    net = _upgraded('layers { name: "c" type: CONVOLUTION param: "w" blob_share_mode: PERMISSIVE '
                    "blob_share_mode: STRICT blobs_lr: 1 blobs_lr: 2 blobs_lr: 3 weight_decay: 0.5 "
                    "loss_weight: 2 }")
    want = _layer('name: "c" type: "Convolution" loss_weight: 2 '
                  'param { name: "w" share_mode: PERMISSIVE lr_mult: 1 decay_mult: 0.5 } '
                  "param { share_mode: STRICT lr_mult: 2 } param { lr_mult: 3 }")
    assert net.layer[0] == want


def test_v1_every_param_message_copied():
    names = [f.name for f in caffe_pb2.V1LayerParameter.DESCRIPTOR.fields
             if f.name.endswith("_param") and f.message_type is not None]
    assert len(names) == 30
    layer = caffe_pb2.V1LayerParameter(name="l")
    for n in names:
        getattr(layer, n).SetInParent()
    net = caffe_pb2.NetParameter()
    net.layers.append(layer)
    upgrade_net(net)
    assert all(net.layer[0].HasField(n) for n in names)


def test_v1_rules_and_blobs_kept():
    net = _upgraded('layers { name: "ip" type: INNER_PRODUCT include { phase: TEST stage: "s" } '
                    'exclude { min_level: 2 } blobs { shape { dim: 1 } data: 4 } }')
    lp = net.layer[0]
    assert lp.include[0].stage == ["s"] and lp.exclude[0].min_level == 2
    assert list(lp.blobs[0].data) == [4.0]


TRANSFORMS = [
    ("DATA", "data_param"),
    ("IMAGE_DATA", "image_data_param"),
    ("WINDOW_DATA", "window_data_param"),
]


@pytest.mark.parametrize("v1,param", TRANSFORMS, ids=[t[0] for t in TRANSFORMS])
def test_v1_data_transform_fields_move(v1, param):
    net = _net(f'layers {{ name: "d" type: {v1} {param} {{ source: "s" scale: 0.5 '
               f'mean_file: "m" crop_size: 3 mirror: true }} }}')
    assert legacy.net_needs_data_upgrade(net)
    upgrade_net(net)
    lp = net.layer[0]
    assert getattr(lp, param) == parse_text('source: "s"', type(getattr(lp, param))())
    assert lp.transform_param == parse_text('scale: 0.5 mean_file: "m" crop_size: 3 mirror: true',
                                            caffe_pb2.TransformationParameter())


def test_no_data_upgrade_without_transform_fields():
    assert not legacy.net_needs_data_upgrade(_net('layers { type: DATA data_param { source: "s" } }'))


def test_v1_mixed_with_layer_is_refused():
    with pytest.raises(ProtoError, match="mixes current 'layer'"):
        _upgraded('layer { name: "a" type: "ReLU" } layers { name: "b" type: RELU }')


def test_v1_unknown_type_in_text_names_value_and_place(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text('name: "n"\nlayers {\n  name: "r"\n  type: REVERSE\n}\n')
    with pytest.raises(ProtoSyntaxError) as info:
        read_text(path, caffe_pb2.NetParameter())
    assert str(info.value).startswith(f"{path}:4:")
    assert "REVERSE" in str(info.value)


def test_v1_unknown_type_in_binary_names_value_and_layer(tmp_path):
    """A fork's V1 enum value (40 = the fork's REVERSE) read from a binary file."""
    raw = caffe_pb2.V1LayerParameter(name="rev").SerializeToString() + b"\x28\x28"  # field 5 = 40
    data = b"\x12" + bytes([len(raw)]) + raw  # NetParameter.layers (field 2)
    net = caffe_pb2.NetParameter.FromString(data)
    with pytest.raises(ProtoError) as info:
        upgrade_net(net, "m.caffemodel")
    assert all(w in str(info.value) for w in ("m.caffemodel", '"rev"', "40"))


V1_WITH_V0 = 'layers { name: "a" type: SIGMOID layer { name: "old" type: "relu" } }'


def test_v1_with_v0_layer_inside_is_a_problem():
    problems: list[str] = []
    net = legacy.upgrade_v1_net(_net(V1_WITH_V0), "<test>", problems)
    assert net.layer[0].type == "Sigmoid" and "V0 layer definition" in problems[0]


def test_v0_layer_inside_v1_wins_in_the_full_upgrade():
    """Any V0 layer makes the whole file V0: the V1 fields beside it go (as in Caffe)."""
    net = _upgraded(V1_WITH_V0)
    assert [(lp.name, lp.type) for lp in net.layer] == [("old", "ReLU")]


# ----------------------------------------------------------------- inputs
INPUT_ERRORS = [
    ("dims_not_4_per_input", 'input: "a" input_dim: 1 input_dim: 2', "need 4 input_dim"),
    ("both_forms", 'input: "a" input_shape { dim: 1 } input_dim: 1 input_dim: 1 input_dim: 1 input_dim: 1',
     "not both"),
    ("shape_count", 'input: "a" input: "b" input_shape { dim: 1 }', "one input_shape per input"),
]


@pytest.mark.parametrize("text,words", [c[1:] for c in INPUT_ERRORS], ids=[c[0] for c in INPUT_ERRORS])
def test_input_field_errors(text, words):
    with pytest.raises(ProtoError, match=words):
        _upgraded(text)


def test_input_without_shape_is_dropped():
    """A legacy .caffemodel lists inputs without shapes: they just go."""
    net = _upgraded('input: "data" layer { name: "r" type: "ReLU" bottom: "data" top: "data" }')
    assert not len(net.input) and [lp.name for lp in net.layer] == ["r"]


def test_input_layer_goes_first():
    net = _upgraded('layer { name: "r" type: "ReLU" bottom: "a" top: "b" } '
                    'input: "a" input_shape { dim: 2 dim: 3 }')
    assert [lp.name for lp in net.layer] == ["input", "r"]
    assert list(net.layer[0].input_param.shape[0].dim) == [2, 3]


# -------------------------------------------------------------- batchnorm
def test_batchnorm_three_specs_zeroed_others_kept():
    net = _upgraded('layer { name: "bn" type: "BatchNorm" param { name: "m" lr_mult: 1 decay_mult: 1 } '
                    'param { lr_mult: 1 } param { lr_mult: 1 } } '
                    'layer { name: "bn2" type: "BatchNorm" param { lr_mult: 1 } param { lr_mult: 1 } }')
    assert [(p.name, p.lr_mult, p.decay_mult) for p in net.layer[0].param] == \
        [("m", 0, 0), ("", 0, 0), ("", 0, 0)]
    assert [p.lr_mult for p in net.layer[1].param] == [1, 1]  # only three specs are "old style"


def test_current_net_needs_no_upgrade():
    net = _net(formats.weights_net())
    assert not net_needs_upgrade(net)
    before = net.SerializeToString()
    assert upgrade_net(net) == []
    assert net.SerializeToString() == before


# ------------------------------------------------------------------ solver
SOLVER_TYPES = [("SGD", "SGD"), ("NESTEROV", "Nesterov"), ("ADAGRAD", "AdaGrad"),
                ("RMSPROP", "RMSProp"), ("ADADELTA", "AdaDelta"), ("ADAM", "Adam")]


@pytest.mark.parametrize("enum,name", SOLVER_TYPES)
def test_solver_type(enum, name):
    solver = parse_text(f"base_lr: 0.1 solver_type: {enum}", caffe_pb2.SolverParameter())
    assert upgrade_solver(solver) == ["solver_type"]
    assert solver.type == name and not solver.HasField("solver_type")


def test_solver_type_and_type_refused():
    solver = parse_text('solver_type: ADAM type: "Adam"', caffe_pb2.SolverParameter())
    with pytest.raises(SolverError, match="cannot both"):
        upgrade_solver(solver, "s.prototxt")


def test_current_solver_untouched():
    solver = parse_text('type: "Adam"', caffe_pb2.SolverParameter())
    assert upgrade_solver(solver) == [] and solver.type == "Adam"


# ------------------------------------------------------------ syntax errors
SYNTAX = [
    ("net_syntax", caffe_pb2.NetParameter, 'name: "n"\nlayer {\n  name: "a"\n  type "ReLU"\n}\n', 4,
     ['Expected ":"']),
    ("net_unknown_field", caffe_pb2.NetParameter, 'name: "n"\nlayer {\n  nmae: "a"\n}\n', 3, ["nmae"]),
    ("net_unknown_enum", caffe_pb2.NetParameter,
     'layer {\n  name: "p"\n  pooling_param { pool: MAXIMUM }\n}\n', 3, ["MAXIMUM", "PoolMethod"]),
    ("net_unclosed", caffe_pb2.NetParameter, 'layer {\n  name: "a"\n', 2, ['Expected "}"']),
    ("solver_unknown_field", caffe_pb2.SolverParameter, "base_lr: 0.1\nlearning_rate: 2\n", 2,
     ["learning_rate"]),
    ("solver_unknown_enum", caffe_pb2.SolverParameter, "solver_mode: TPU\n", 1, ["TPU"]),
]


@pytest.mark.parametrize("cls,text,line,words", [c[1:] for c in SYNTAX], ids=[c[0] for c in SYNTAX])
def test_syntax_errors_carry_path_line_column(cls, text, line, words, tmp_path):
    # Strict mode: an unknown field is otherwise a warning (tolerant loading).
    from caffe_compat import mode

    mode.set_strict(True)
    path = tmp_path / "f.prototxt"
    path.write_text(text)
    with pytest.raises(ProtoSyntaxError) as info:
        read_text(path, cls())
    err = info.value
    assert (err.path, err.line) == (str(path), line) and err.column >= 1
    assert str(err).startswith(f"{path}:{line}:{err.column}: ")
    for w in words:
        assert w in str(err)


def test_net_constructor_reports_syntax_error_place(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text(SYNTAX[1][2])
    with pytest.raises(ProtoSyntaxError, match=rf"^{path}:3:"):
        caffe.Net(str(path), caffe.TEST)


# -------------------------------------------------------------------- tools
def _tool(capsys, *argv: str) -> tuple[int, str]:
    rc = cli(list(argv))
    logging.getLogger("caffe_compat").handlers.clear()
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("name", ["v0_lenet.prototxt", "v1_lenet_train_test.prototxt"])
def test_upgrade_net_proto_text(name, tmp_path, capsys):
    out = tmp_path / "up.prototxt"
    rc, log = _tool(capsys, "upgrade_net_proto_text", str(LEGACY / name), str(out))
    assert rc == 0 and "Wrote upgraded NetParameter text proto" in log
    written = read_text(out, caffe_pb2.NetParameter())
    assert not len(written.layers) and not len(written.input)
    expected = read_text(LEGACY / name, caffe_pb2.NetParameter())
    upgrade_net(expected)
    assert written == expected
    assert not net_needs_upgrade(written)


def test_upgrade_net_proto_text_on_current_file(tmp_path, capsys):
    src = tmp_path / "cur.prototxt"
    src.write_text(formats.weights_net())
    rc, log = _tool(capsys, "upgrade_net_proto_text", str(src), str(tmp_path / "o.prototxt"))
    assert rc == 0 and "already in latest proto format" in log
    assert read_text(tmp_path / "o.prototxt", caffe_pb2.NetParameter()) == _net(formats.weights_net())


def test_upgrade_net_proto_text_problems_exit_1_but_write(tmp_path, capsys):
    src = tmp_path / "v0.prototxt"
    src.write_text('layers { layer { name: "r" type: "relu" num_output: 3 } }')
    rc, log = _tool(capsys, "upgrade_net_proto_text", str(src), str(tmp_path / "o.prototxt"))
    assert rc == 1 and "num_output" in log
    assert read_text(tmp_path / "o.prototxt", caffe_pb2.NetParameter()).layer[0].type == "ReLU"


@pytest.mark.parametrize("tool", ["upgrade_net_proto_text", "upgrade_net_proto_binary",
                                  "upgrade_solver_proto_text"])
def test_tools_unreadable_input_exit_2(tool, tmp_path, capsys):
    out = tmp_path / "o"
    rc, log = _tool(capsys, tool, str(tmp_path / "missing"), str(out))
    assert rc == 2 and "Failed to parse" in log and not out.exists()


def test_upgrade_net_proto_text_fatal_exits_1_without_output(tmp_path, capsys):
    src = tmp_path / "mixed.prototxt"
    src.write_text('layer { name: "a" type: "ReLU" } layers { name: "b" type: RELU }')
    rc, log = _tool(capsys, "upgrade_net_proto_text", str(src), str(tmp_path / "o.prototxt"))
    assert rc == 1 and "mixes" in log and not (tmp_path / "o.prototxt").exists()


@pytest.mark.parametrize("fixture", ["caffe_written_v0", "caffe_written_v1"])
def test_upgrade_net_proto_binary(fixture, tmp_path, capsys):
    """Caffe-written V0/V1 weights become current-format files, blobs intact."""
    fx = load(ROOT / "formats" / f"{fixture}.npz")
    src = tmp_path / "old.caffemodel"
    src.write_bytes(fx.arrays["weights_file"].tobytes())
    out = tmp_path / "new.caffemodel"
    rc, log = _tool(capsys, "upgrade_net_proto_binary", str(src), str(out))
    assert rc == 0 and "Wrote upgraded NetParameter binary proto" in log
    new = caffe_pb2.NetParameter.FromString(out.read_bytes())
    assert not len(new.layers) and {lp.type for lp in new.layer} == {"Convolution", "InnerProduct"}
    net = caffe.Net(fx.meta["prototxt"], caffe.TEST, weights=str(out))
    for key in fx.keys("param"):
        layer, i = key.split("/", 1)[1].rsplit("/", 1)
        np.testing.assert_array_equal(net.params[layer][int(i)].data, fx.arrays[key])


def test_upgrade_solver_proto_text(tmp_path, capsys):
    out = tmp_path / "solver.prototxt"
    rc, log = _tool(capsys, "upgrade_solver_proto_text", str(LEGACY / "v1_solver.prototxt"), str(out))
    assert rc == 0 and "Wrote upgraded SolverParameter" in log
    solver = read_text(out, caffe_pb2.SolverParameter())
    assert solver.type == "Nesterov" and not solver.HasField("solver_type")
    assert solver.snapshot_prefix == "examples/mnist/lenet"  # the tool leaves it alone
    rc, log = _tool(capsys, "upgrade_solver_proto_text", str(out), str(tmp_path / "again.prototxt"))
    assert rc == 0 and "already in latest proto format" in log


def test_upgrade_solver_proto_text_refuses_both_types(tmp_path, capsys):
    src = tmp_path / "s.prototxt"
    src.write_text('solver_type: SGD type: "Adam"')
    rc, log = _tool(capsys, "upgrade_solver_proto_text", str(src), str(tmp_path / "o.prototxt"))
    assert rc == 1 and "cannot both" in log and not (tmp_path / "o.prototxt").exists()
