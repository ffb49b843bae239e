"""Caffe's legacy net formats (V0 and V1) brought up to the current one.

Matches ``src/caffe/util/upgrade_proto.cpp`` (upstream master):

* V0 (``layers { layer { name type: "conv" kernelsize ... } bottom top }``,
  2013): ``padding`` layers are folded into the ``pad`` of the conv/pool layer
  that reads them, then each V0 layer becomes a V1 layer (lower-case type
  strings → the ``V1LayerParameter.LayerType`` enum, flat fields → the
  ``*_param`` messages, ``scale``/``meanfile``/``cropsize``/``mirror`` →
  ``transform_param``). Only the net's name, inputs, input_dim and
  force_backward survive, as in Caffe.
* V1 data layers that still hold ``scale``/``mean_file``/``crop_size``/
  ``mirror`` in their ``data_param``/``image_data_param``/``window_data_param``
  get them moved into ``transform_param``.
* V1 (``layers { type: CONVOLUTION blobs_lr weight_decay ... }``) becomes
  ``layer { type: "Convolution" param { lr_mult decay_mult } }``.

Where Caffe aborts (``LOG(FATAL)``: unknown V0 type, a padding layer feeding
anything but a conv/pool, a net mixing ``layer`` and ``layers``) we raise
:class:`~caffe_compat.errors.ProtoError`. Where Caffe logs an error and carries
on (a V0 field the layer type does not take), we log a warning, append the
message to ``problems`` when the caller passes a list, and carry on too: the
``upgrade_*`` tools turn such problems into exit status 1, as Caffe's do.

Differences from Caffe: messages name the layer and the file; a V1 layer whose
type is an enum value upstream lacks (a fork's, read from a binary file) is an
error here, where Caffe would build a layer of type "".
"""

from __future__ import annotations

import logging
from typing import Optional

from google.protobuf.descriptor import FieldDescriptor

from ..errors import ProtoError
from . import caffe_pb2

__all__ = [
    "upgrade_v0_net",
    "upgrade_v1_net",
    "net_needs_data_upgrade",
    "upgrade_data_transformation",
    "fold_v0_padding_layers",
    "V0_LAYER_TYPES",
    "V1_LAYER_TYPES",
]

_log = logging.getLogger("caffe_compat")
V1 = caffe_pb2.V1LayerParameter
Problems = Optional[list]

# UpgradeV0LayerType: the V0 type strings Caffe knows.
V0_LAYER_TYPES: dict[str, int] = {
    "accuracy": V1.ACCURACY, "bnll": V1.BNLL, "concat": V1.CONCAT, "conv": V1.CONVOLUTION,
    "data": V1.DATA, "dropout": V1.DROPOUT, "euclidean_loss": V1.EUCLIDEAN_LOSS,
    "flatten": V1.FLATTEN, "hdf5_data": V1.HDF5_DATA, "hdf5_output": V1.HDF5_OUTPUT,
    "im2col": V1.IM2COL, "images": V1.IMAGE_DATA, "infogain_loss": V1.INFOGAIN_LOSS,
    "innerproduct": V1.INNER_PRODUCT, "lrn": V1.LRN,
    "multinomial_logistic_loss": V1.MULTINOMIAL_LOGISTIC_LOSS, "pool": V1.POOLING,
    "relu": V1.RELU, "sigmoid": V1.SIGMOID, "softmax": V1.SOFTMAX,
    "softmax_loss": V1.SOFTMAX_LOSS, "split": V1.SPLIT, "tanh": V1.TANH,
    "window_data": V1.WINDOW_DATA,
}

# UpgradeV1LayerType: enum value → the registry's type string.
V1_LAYER_TYPES: dict[int, str] = {
    V1.NONE: "", V1.ABSVAL: "AbsVal", V1.ACCURACY: "Accuracy", V1.ARGMAX: "ArgMax",
    V1.BNLL: "BNLL", V1.CONCAT: "Concat", V1.CONTRASTIVE_LOSS: "ContrastiveLoss",
    V1.CONVOLUTION: "Convolution", V1.DECONVOLUTION: "Deconvolution", V1.DATA: "Data",
    V1.DROPOUT: "Dropout", V1.DUMMY_DATA: "DummyData", V1.EUCLIDEAN_LOSS: "EuclideanLoss",
    V1.ELTWISE: "Eltwise", V1.EXP: "Exp", V1.FLATTEN: "Flatten", V1.HDF5_DATA: "HDF5Data",
    V1.HDF5_OUTPUT: "HDF5Output", V1.HINGE_LOSS: "HingeLoss", V1.IM2COL: "Im2col",
    V1.IMAGE_DATA: "ImageData", V1.INFOGAIN_LOSS: "InfogainLoss",
    V1.INNER_PRODUCT: "InnerProduct", V1.LRN: "LRN", V1.MEMORY_DATA: "MemoryData",
    V1.MULTINOMIAL_LOGISTIC_LOSS: "MultinomialLogisticLoss", V1.MVN: "MVN",
    V1.POOLING: "Pooling", V1.POWER: "Power", V1.RELU: "ReLU", V1.SIGMOID: "Sigmoid",
    V1.SIGMOID_CROSS_ENTROPY_LOSS: "SigmoidCrossEntropyLoss", V1.SILENCE: "Silence",
    V1.SOFTMAX: "Softmax", V1.SOFTMAX_LOSS: "SoftmaxWithLoss", V1.SPLIT: "Split",
    V1.SLICE: "Slice", V1.TANH: "TanH", V1.WINDOW_DATA: "WindowData",
    V1.THRESHOLD: "Threshold",
}

# UpgradeV0LayerParameter, as data: V0 field → {V0 type: "param_message.field"}.
# The key None means "any type" (the transformation fields). Order = Caffe's.
_V0_FIELDS: dict[str, dict[Optional[str], str]] = {
    "num_output": {"conv": "convolution_param.num_output",
                   "innerproduct": "inner_product_param.num_output"},
    "biasterm": {"conv": "convolution_param.bias_term",
                 "innerproduct": "inner_product_param.bias_term"},
    "weight_filler": {"conv": "convolution_param.weight_filler",
                      "innerproduct": "inner_product_param.weight_filler"},
    "bias_filler": {"conv": "convolution_param.bias_filler",
                    "innerproduct": "inner_product_param.bias_filler"},
    "pad": {"conv": "convolution_param.pad", "pool": "pooling_param.pad"},
    "kernelsize": {"conv": "convolution_param.kernel_size", "pool": "pooling_param.kernel_size"},
    "group": {"conv": "convolution_param.group"},
    "stride": {"conv": "convolution_param.stride", "pool": "pooling_param.stride"},
    "pool": {"pool": "pooling_param.pool"},
    "dropout_ratio": {"dropout": "dropout_param.dropout_ratio"},
    "local_size": {"lrn": "lrn_param.local_size"},
    "alpha": {"lrn": "lrn_param.alpha"},
    "beta": {"lrn": "lrn_param.beta"},
    "k": {"lrn": "lrn_param.k"},
    "source": {"data": "data_param.source", "hdf5_data": "hdf5_data_param.source",
               "images": "image_data_param.source", "window_data": "window_data_param.source",
               "infogain_loss": "infogain_loss_param.source"},
    "scale": {None: "transform_param.scale"},
    "meanfile": {None: "transform_param.mean_file"},
    "batchsize": {"data": "data_param.batch_size", "hdf5_data": "hdf5_data_param.batch_size",
                  "images": "image_data_param.batch_size",
                  "window_data": "window_data_param.batch_size"},
    "cropsize": {None: "transform_param.crop_size"},
    "mirror": {None: "transform_param.mirror"},
    "rand_skip": {"data": "data_param.rand_skip", "images": "image_data_param.rand_skip"},
    "shuffle_images": {"images": "image_data_param.shuffle"},
    "new_height": {"images": "image_data_param.new_height"},
    "new_width": {"images": "image_data_param.new_width"},
    "concat_dim": {"concat": "concat_param.concat_dim"},
    "det_fg_threshold": {"window_data": "window_data_param.fg_threshold"},
    "det_bg_threshold": {"window_data": "window_data_param.bg_threshold"},
    "det_fg_fraction": {"window_data": "window_data_param.fg_fraction"},
    "det_context_pad": {"window_data": "window_data_param.context_pad"},
    "det_crop_mode": {"window_data": "window_data_param.crop_mode"},
    "hdf5_output_param": {"hdf5_output": "hdf5_output_param"},
}

# V1 data layers whose own parameter message still holds transformation fields.
_DATA_PARAMS = {V1.DATA: "data_param", V1.IMAGE_DATA: "image_data_param",
                V1.WINDOW_DATA: "window_data_param"}
_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")


def _problem(problems: Problems, message: str) -> None:
    _log.warning("%s", message)
    if problems is not None:
        problems.append(message)


def _is_repeated(fd: FieldDescriptor) -> bool:
    rep = getattr(fd, "is_repeated", None)  # protobuf >= 5; older ones have .label
    return bool(rep) if rep is not None else fd.label == FieldDescriptor.LABEL_REPEATED


def _assign(msg: object, path: str, value: object) -> None:
    """``msg.<path> = value``; appends to repeated fields, copies messages."""
    *parents, name = path.split(".")
    for p in parents:
        msg = getattr(msg, p)
    fd = msg.DESCRIPTOR.fields_by_name[name]  # type: ignore[attr-defined]
    if fd.message_type is not None:
        getattr(msg, name).CopyFrom(value)
    elif _is_repeated(fd):
        getattr(msg, name).append(value)
    elif fd.enum_type is not None and isinstance(value, str):
        setattr(msg, name, fd.enum_type.values_by_name[value].number)
    else:
        setattr(msg, name, value)


# ---------------------------------------------------------------------- V0
def fold_v0_padding_layers(net: caffe_pb2.NetParameter, source: str = "<net>"
                           ) -> caffe_pb2.NetParameter:
    """``UpgradeV0PaddingLayers``: drop each V0 ``padding`` layer and give its
    ``pad`` to the conv/pool layer that reads its output."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    del out.layers[:]
    last_top = {name: -1 for name in net.input}
    for i, conn in enumerate(net.layers):
        v0 = conn.layer
        if v0.type != "padding":
            out.layers.add().CopyFrom(conn)
        for j, blob in enumerate(conn.bottom):
            if blob not in last_top:
                raise ProtoError(
                    f'{source}: V0 layer "{v0.name}" (layer {i}): unknown bottom blob "{blob}" '
                    f"(bottom {j}); no earlier layer or input produces it"
                )
            src = last_top[blob]
            if src == -1 or net.layers[src].layer.type != "padding":
                continue
            pad_layer = net.layers[src]
            # Caffe only defines padding in front of a single-input conv/pool.
            if v0.type not in ("conv", "pool"):
                raise ProtoError(
                    f'{source}: V0 padding layer "{pad_layer.layer.name}" feeds V0 layer '
                    f'"{v0.name}" of type "{v0.type}"; only a "conv" or "pool" layer can take '
                    "a padding layer's output"
                )
            for what, n in (("conv/pool layer", len(conn.bottom)),
                            ("padding layer", len(pad_layer.bottom))):
                if n != 1:
                    raise ProtoError(
                        f'{source}: V0 layer "{v0.name}": a {what} next to a padding layer '
                        f"must have exactly 1 bottom blob, got {n}"
                    )
            if len(pad_layer.top) != 1:
                raise ProtoError(
                    f'{source}: V0 padding layer "{pad_layer.layer.name}" must have exactly 1 '
                    f"top blob, got {len(pad_layer.top)}"
                )
            target = out.layers[len(out.layers) - 1]
            target.layer.pad = pad_layer.layer.pad
            target.bottom[j] = pad_layer.bottom[0]
        for blob in conn.top:
            last_top[blob] = i
    return out


def _v0_layer_type(v0: caffe_pb2.V0LayerParameter, source: str) -> int:
    try:
        return V0_LAYER_TYPES[v0.type]
    except KeyError:
        raise ProtoError(
            f'{source}: V0 layer "{v0.name}": unknown V0 layer type "{v0.type}"; '
            f"known V0 types: {', '.join(sorted(V0_LAYER_TYPES))}"
        ) from None


def _upgrade_v0_layer(conn: caffe_pb2.V1LayerParameter, source: str, problems: Problems
                      ) -> caffe_pb2.V1LayerParameter:
    out = V1()
    out.bottom.extend(conn.bottom)
    out.top.extend(conn.top)
    if not conn.HasField("layer"):
        return out
    v0 = conn.layer
    if v0.HasField("name"):
        out.name = v0.name
    if v0.HasField("type"):
        out.type = _v0_layer_type(v0, source)  # type: ignore[assignment]  # an enum int
    out.blobs.extend(v0.blobs)
    out.blobs_lr.extend(v0.blobs_lr)
    out.weight_decay.extend(v0.weight_decay)
    for field, targets in _V0_FIELDS.items():
        if not v0.HasField(field):
            continue
        target = targets.get(None, targets.get(v0.type))
        if target is None:
            _problem(problems, f'{source}: V0 layer "{v0.name}": unknown parameter {field} '
                               f'for layer type "{v0.type}" (dropped)')
            continue
        value = getattr(v0, field)
        if field == "pool":  # V0's PoolMethod and PoolingParameter's share names
            value = caffe_pb2.V0LayerParameter.PoolMethod.Name(value)
        _assign(out, target, value)
    return out


def upgrade_v0_net(net: caffe_pb2.NetParameter, source: str = "<net>",
                   problems: Problems = None) -> caffe_pb2.NetParameter:
    """``UpgradeV0Net``: a V1 NetParameter made from a V0 one."""
    padded = fold_v0_padding_layers(net, source)
    out = caffe_pb2.NetParameter()
    if padded.HasField("name"):
        out.name = padded.name
    for conn in padded.layers:
        out.layers.append(_upgrade_v0_layer(conn, source, problems))
    out.input.extend(padded.input)
    out.input_dim.extend(padded.input_dim)
    if padded.HasField("force_backward"):
        out.force_backward = padded.force_backward
    return out


# -------------------------------------------------------- data transforms
def net_needs_data_upgrade(net: caffe_pb2.NetParameter) -> bool:
    """Whether a V1 data layer still keeps transformation fields itself."""
    for layer in net.layers:
        name = _DATA_PARAMS.get(layer.type)
        if name and any(getattr(layer, name).HasField(f) for f in _TRANSFORM_FIELDS):
            return True
    return False


def upgrade_data_transformation(net: caffe_pb2.NetParameter) -> None:
    """``UpgradeNetDataTransformation``: move them into ``transform_param``."""
    for layer in net.layers:
        name = _DATA_PARAMS.get(layer.type)
        if not name:
            continue
        param = getattr(layer, name)
        for f in _TRANSFORM_FIELDS:
            if param.HasField(f):
                setattr(layer.transform_param, f, getattr(param, f))
                param.ClearField(f)


# ---------------------------------------------------------------------- V1
_V1_PARAM_MESSAGES = tuple(
    f.name for f in V1.DESCRIPTOR.fields
    if f.name.endswith("_param") and f.message_type is not None
)


def _v1_unknown_type(layer: caffe_pb2.V1LayerParameter) -> Optional[int]:
    """The raw ``type`` number of a layer whose enum value our schema lacks."""
    try:
        from google.protobuf.unknown_fields import UnknownFieldSet
        fields = [(f.field_number, f.data) for f in UnknownFieldSet(layer)]
    except ImportError:  # protobuf < 4.21
        fields = [(f.field_number, f.data) for f in layer.UnknownFields()]  # type: ignore[attr-defined]
    for number, data in fields:
        if number == V1.DESCRIPTOR.fields_by_name["type"].number:
            return data if isinstance(data, int) else -1
    return None


def _upgrade_v1_layer(v1: caffe_pb2.V1LayerParameter, index: int, source: str,
                      problems: Problems) -> caffe_pb2.LayerParameter:
    out = caffe_pb2.LayerParameter()
    out.bottom.extend(v1.bottom)
    out.top.extend(v1.top)
    if v1.HasField("name"):
        out.name = v1.name
    out.include.extend(v1.include)
    out.exclude.extend(v1.exclude)
    unknown = _v1_unknown_type(v1)
    if unknown is not None:
        raise ProtoError(
            f'{source}: V1 layer "{v1.name}" (layer {index}): layer type enum value {unknown} is '
            "not one of upstream Caffe's V1LayerParameter.LayerType values (a fork's type?)"
        )
    if v1.HasField("type"):
        out.type = V1_LAYER_TYPES[v1.type]
    out.blobs.extend(v1.blobs)
    # param names, share modes and multipliers are parallel lists that each
    # fill ParamSpecs from the front, adding specs as needed.
    columns = (("name", v1.param), ("share_mode", v1.blob_share_mode),
               ("lr_mult", v1.blobs_lr), ("decay_mult", v1.weight_decay))
    for attr, values in columns:
        for i, value in enumerate(values):
            while len(out.param) <= i:
                out.param.add()
            setattr(out.param[i], attr, value)
    out.loss_weight.extend(v1.loss_weight)
    for name in _V1_PARAM_MESSAGES:
        if v1.HasField(name):
            getattr(out, name).CopyFrom(getattr(v1, name))
    if v1.HasField("layer"):
        _problem(problems, f'{source}: V1 layer "{v1.name}" (layer {index}) also holds a V0 '
                           "layer definition; it is ignored")
    return out


def upgrade_v1_net(net: caffe_pb2.NetParameter, source: str = "<net>",
                   problems: Problems = None) -> caffe_pb2.NetParameter:
    """``UpgradeV1Net``: ``layers { type: ENUM }`` → ``layer { type: "Name" }``."""
    if len(net.layer):
        raise ProtoError(
            f"{source}: the net mixes current 'layer' definitions ({len(net.layer)}) with "
            f"legacy V1 'layers' definitions ({len(net.layers)}); Caffe refuses to upgrade "
            "such a file: write every layer as layer { type: \"Name\" ... }"
        )
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    del out.layers[:]
    del out.layer[:]
    for i, v1 in enumerate(net.layers):
        out.layer.append(_upgrade_v1_layer(v1, i, source, problems))
    return out
