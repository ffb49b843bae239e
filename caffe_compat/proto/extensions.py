"""What our schema and registry have that upstream BVLC Caffe lacks.

Our ``caffe.proto`` is upstream's plus fields marked "fork" (kept at the
fork's number so its files read) or "caffe_compat" (ours, numbered from
10000); the registry adds fork layer types and two losses. A file that uses
any of them loads here but not in real Caffe, and :func:`find_extensions`
lists them so the loader can say so (an ``ExtensionWarning``; strict mode:
an error). ``tests/test_proto_schema.py`` and ``tests/test_catalog_layers.py``
check these tables against a real Caffe build's schema and layer list.
"""

from __future__ import annotations

from google.protobuf import message as _message

__all__ = ["UPSTREAM_LAYER_TYPES", "EXTENSION_FIELDS", "find_extensions"]

#: caffe.layer_type_list() of upstream BVLC Caffe (master), with its Clip.
UPSTREAM_LAYER_TYPES = frozenset({
    "AbsVal", "Accuracy", "ArgMax", "BNLL", "BatchNorm", "BatchReindex", "Bias", "Clip", "Concat",
    "ContrastiveLoss", "Convolution", "Crop", "Data", "Deconvolution", "Dropout", "DummyData", "ELU",
    "Eltwise", "Embed", "EuclideanLoss", "Exp", "Filter", "Flatten", "HDF5Data", "HDF5Output",
    "HingeLoss", "Im2col", "ImageData", "InfogainLoss", "InnerProduct", "Input", "LRN", "LSTM",
    "LSTMUnit", "Log", "MVN", "MemoryData", "MultinomialLogisticLoss", "PReLU", "Parameter", "Pooling",
    "Power", "Python", "RNN", "ReLU", "Reduction", "Reshape", "SPP", "Scale", "Sigmoid",
    "SigmoidCrossEntropyLoss", "Silence", "Slice", "Softmax", "SoftmaxWithLoss", "Split", "Swish",
    "TanH", "Threshold", "Tile", "WindowData",
})

_SSD = "the SSD fork"
#: (message, field) -> (number, whose): every field of our schema upstream lacks.
EXTENSION_FIELDS: dict[tuple[str, str], tuple[int, str]] = {
    ("HingeLossParameter", "margin"): (10001, "caffe_compat"),
    ("LayerParameter", "smooth_l1_loss_param"): (8266712, "the Fast R-CNN fork"),
    ("LayerParameter", "roi_pooling_param"): (8266711, "the Fast R-CNN fork"),
    ("LayerParameter", "annotated_data_param"): (200, _SSD),
    ("LayerParameter", "multibox_loss_param"): (201, _SSD),
    ("LayerParameter", "permute_param"): (202, _SSD),
    ("LayerParameter", "prior_box_param"): (203, _SSD),
    ("LayerParameter", "detection_output_param"): (204, _SSD),
    ("LayerParameter", "detection_evaluate_param"): (205, _SSD),
    ("LayerParameter", "norm_param"): (206, _SSD),
    ("LayerParameter", "video_data_param"): (207, _SSD),
    ("LayerParameter", "upsample_param"): (149, "the Upsample forks"),
    ("LayerParameter", "interp_param"): (10143, "the DeepLab/PSPNet fork"),
    ("PoolingParameter", "ceil_mode"): (10013, "several forks"),
    ("BatchNormParameter", "scale_filler"): (5, "NVCaffe"),
    ("BatchNormParameter", "bias_filler"): (6, "NVCaffe"),
    ("BatchNormParameter", "scale_bias"): (7, "NVCaffe"),
    ("BatchNormParameter", "use_weight_bias"): (10005, "Intel Caffe"),
    ("BatchNormParameter", "bias_term"): (10006, "Intel Caffe"),
    ("BatchNormParameter", "filler"): (10007, "Intel Caffe"),
}
_WHOSE_TYPE = {"SmoothL1Loss": "the Fast R-CNN fork's layer", "L1Loss": "caffe_compat's layer"}
_EXTENDED_MESSAGES = frozenset(m for m, _ in EXTENSION_FIELDS)
_SKIP = frozenset({"blobs"})  # stored weights: no extension inside, possibly large


def _fields(msg: _message.Message, path: str, out: list[str]) -> None:
    name = msg.DESCRIPTOR.name
    for field, value in msg.ListFields():
        here = f"{path}.{field.name}" if path else field.name
        if name in _EXTENDED_MESSAGES and (name, field.name) in EXTENSION_FIELDS:
            out.append(f"{here} ({EXTENSION_FIELDS[(name, field.name)][1]})")
        if field.type != field.TYPE_MESSAGE or field.name in _SKIP:
            continue
        repeated = (field.is_repeated if hasattr(field, "is_repeated")  # protobuf >= 5
                    else field.label == field.LABEL_REPEATED)
        for i, sub in enumerate(value if repeated else [value]):
            _fields(sub, f"{here}[{i}]" if repeated else here, out)


def find_extensions(param: _message.Message, skip: frozenset[str] = frozenset()) -> list[str]:
    """What ``param`` (a NetParameter or SolverParameter) uses that upstream Caffe
    lacks: layer types and fields, each with the layer it is in. Top-level
    fields named in ``skip`` are not looked into."""
    from ..layers.registry import get_layer_class
    from ..errors import UnknownLayerTypeError

    found: list[str] = []
    layers = list(getattr(param, "layer", []))
    for lp in layers:
        where = f'layer "{lp.name}"'
        if lp.type not in UPSTREAM_LAYER_TYPES:
            try:
                cls = get_layer_class(lp.type, lp.name)
            except UnknownLayerTypeError:
                cls = None  # the net's build reports it
            if cls is not None:
                whose = _WHOSE_TYPE.get(lp.type) or (
                    "a .caffeinit Python layer name" if getattr(cls, "caffeinit_name", None)
                    else "a fork's layer" if cls.__module__.startswith("caffe_compat.layers.forks")
                    else "caffe_compat's layer")
                found.append(f"{where}: type {lp.type} ({whose})")
        fields: list[str] = []
        _fields(lp, "", fields)
        if found and found[-1].startswith(f"{where}: type "):  # a fork layer's own *_param comes with it
            fields = [f for f in fields if "." in f.split(" ")[0]]
        found += [f"{where}: {f}" for f in fields]
    for field, value in param.ListFields():
        if field.name in skip or field.name == "layer" or field.type != field.TYPE_MESSAGE:
            continue
        fields = []
        repeated = (field.is_repeated if hasattr(field, "is_repeated")
                    else field.label == field.LABEL_REPEATED)
        for sub in (value if repeated else [value]):
            _fields(sub, field.name, fields)
        found += fields
    return found
