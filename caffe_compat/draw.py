"""pycaffe's ``caffe.draw``: a NetParameter as a Graphviz graph (via pydot).

Layers are record-shaped nodes labelled ``name (Type)`` (plus kernel/stride/pad
for Convolution, Deconvolution and Pooling, and lr multipliers on request),
coloured by type; in-place neuron layers are green; blobs are octagons. Edges
go bottom blob → layer → top blob, and edges out of Data, Convolution,
Deconvolution and InnerProduct layers carry the batch size / num_output.
The graph is built exactly as pycaffe builds it, so the DOT source is the same
(including pycaffe's quirk that a blob node last seen as a top is drawn
unstyled).

Rendering (PNG, SVG, PDF, ...) runs Graphviz's ``dot`` program; without it
those formats raise :class:`~caffe_compat.errors.UnsupportedError`, while
``.raw`` (and ``.dot``/``.gv`` when ``dot`` is missing) write the DOT source.

Differences from Caffe (pycaffe): ``.raw`` writes the DOT source (pycaffe asked
Graphviz for a "raw" format it does not have); ``caffe_net`` may also be a
prototxt path; the module's style dicts are never modified (pycaffe changed
``LAYER_STYLE_DEFAULT['fillcolor']`` on every call).
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import pydot

from .errors import UnsupportedError
from .proto import caffe_pb2

__all__ = [
    "check_renderer",
    "file_format",
    "LAYER_STYLE_DEFAULT",
    "NEURON_LAYER_STYLE",
    "BLOB_STYLE",
    "get_pooling_types_dict",
    "get_edge_label",
    "get_layer_lr_mult",
    "get_layer_label",
    "choose_color_by_layertype",
    "get_pydot_graph",
    "draw_net",
    "draw_net_to_file",
    "read_net",
]

LAYER_STYLE_DEFAULT: dict[str, Any] = {"shape": "record", "fillcolor": "#6495ED", "style": "filled"}
NEURON_LAYER_STYLE: dict[str, Any] = {"shape": "record", "fillcolor": "#90EE90", "style": "filled"}
BLOB_STYLE: dict[str, Any] = {"shape": "octagon", "fillcolor": "#E0E0E0", "style": "filled"}

_SOURCE_FORMATS = ("raw",)      # always the DOT source
_SOURCE_IF_NO_DOT = ("dot", "gv")  # Graphviz's laid-out DOT when present, else the source


def read_net(path: str | os.PathLike[str]) -> caffe_pb2.NetParameter:
    """A prototxt as drawn: current-format nets as written, V0/V1 nets upgraded first."""
    from .proto.files import read_text
    from .proto.upgrade import upgrade_net

    net = read_text(path, caffe_pb2.NetParameter())
    if len(net.layers):
        upgrade_net(net, str(path))
    return net


def _as_net(caffe_net: Any) -> caffe_pb2.NetParameter:
    if isinstance(caffe_net, caffe_pb2.NetParameter):
        return caffe_net
    if isinstance(caffe_net, (str, os.PathLike)):
        return read_net(caffe_net)
    raise TypeError(f"draw: expected a caffe_pb2.NetParameter or a prototxt path, "
                    f"got {type(caffe_net).__name__}")


def get_pooling_types_dict() -> dict[int, str]:
    """Pooling method number → name (0 → 'MAX', ...)."""
    desc = caffe_pb2.PoolingParameter.PoolMethod.DESCRIPTOR
    return {v.number: name for name, v in desc.values_by_name.items()}


def get_edge_label(layer: caffe_pb2.LayerParameter) -> str:
    """The label of the edges out of ``layer``: batch size or num_output, else empty."""
    if layer.type == "Data":
        return "Batch " + str(layer.data_param.batch_size)
    if layer.type in ("Convolution", "Deconvolution"):
        return str(layer.convolution_param.num_output)
    if layer.type == "InnerProduct":
        return str(layer.inner_product_param.num_output)
    return '""'


def get_layer_lr_mult(layer: caffe_pb2.LayerParameter) -> tuple[float, float]:
    """(weight, bias) learning-rate multipliers of a Convolution/Deconvolution/InnerProduct."""
    if layer.type not in ("Convolution", "Deconvolution", "InnerProduct"):
        raise ValueError(f"{layer.type} layers do not have a learning rate multiplier")
    specs = layer.param
    if len(specs) == 0:
        return (1.0, 1.0)
    if len(specs) == 1:
        return (specs[0].lr_mult, 1.0)
    if len(specs) == 2:
        return (specs[0].lr_mult, specs[1].lr_mult)
    raise ValueError(f'{layer.type} layer "{layer.name}": could not parse the learning rate '
                     f"multiplier ({len(specs)} param specs, expected at most 2)")


def get_layer_label(layer: caffe_pb2.LayerParameter, rankdir: str, display_lrm: bool = False) -> str:
    """The node label: name, (type), spatial parameters, lr multipliers; quoted for DOT."""
    # Vertical layouts have room to the side: one line; horizontal ones stack lines.
    separator = " " if rankdir in ("TB", "BT") else r"\n"
    parts = [layer.name]
    if layer.type == "Pooling":
        parts.append(f"({layer.type} {get_pooling_types_dict()[layer.pooling_param.pool]})")
    else:
        parts.append(f"({layer.type})")
    if layer.type in ("Convolution", "Deconvolution", "Pooling"):
        if layer.type == "Pooling":
            p = layer.pooling_param
            kernel_size, stride, padding = p.kernel_size, p.stride, p.pad
        else:
            c = layer.convolution_param
            kernel_size = c.kernel_size[0] if len(c.kernel_size) else 1
            stride = c.stride[0] if len(c.stride) else 1
            padding = c.pad[0] if len(c.pad) else 0
        parts.append(separator.join([f"kernel size: {kernel_size:d}", f"stride: {stride:d}",
                                     f"pad: {padding:d}"]))
    if display_lrm and layer.type in ("Convolution", "Deconvolution", "InnerProduct"):
        lrm0, lrm1 = get_layer_lr_mult(layer)
        if any([lrm0, lrm1]):
            parts.append(f"lr mult: {lrm0:.1f}, {lrm1:.1f}")
    return '"%s"' % separator.join(parts)


def choose_color_by_layertype(layertype: str) -> str:
    return {"Convolution": "#FF5050", "Deconvolution": "#FF5050", "Pooling": "#FF9900",
            "InnerProduct": "#CC33FF"}.get(layertype, "#6495ED")


def _included(layer: caffe_pb2.LayerParameter, phase: int) -> bool:
    # pycaffe's rule: only the rules' phase counts (a stage-only rule reads as TRAIN).
    if len(layer.include) and len(layer.exclude):
        raise ValueError(f"layer {layer.name} has both include and exclude specified.")
    included = len(layer.include) == 0
    for rule in layer.include:
        included = included or rule.phase == phase
    for rule in layer.exclude:
        included = included and not rule.phase == phase
    return included


def get_pydot_graph(caffe_net: Any, rankdir: str, label_edges: bool = True,
                    phase: int | None = None, display_lrm: bool = False) -> pydot.Dot:
    """The pydot graph of a net; ``phase`` (TRAIN/TEST) keeps only that phase's layers."""
    net = _as_net(caffe_net)
    graph = pydot.Dot(net.name if net.name else "Net", graph_type="digraph", rankdir=rankdir)
    nodes: dict[str, pydot.Node] = {}
    edges: list[tuple[str, str, str]] = []
    for layer in net.layer:
        if phase is not None and not _included(layer, phase):
            continue
        node_name = f"{layer.name}_{layer.type}"
        label = get_layer_label(layer, rankdir, display_lrm=display_lrm)
        if len(layer.bottom) == 1 and len(layer.top) == 1 and layer.bottom[0] == layer.top[0]:
            nodes[node_name] = pydot.Node(label, **NEURON_LAYER_STYLE)  # in-place neuron layer
        else:
            style = dict(LAYER_STYLE_DEFAULT, fillcolor=choose_color_by_layertype(layer.type))
            nodes[node_name] = pydot.Node(label, **style)
        for bottom in layer.bottom:
            nodes[bottom + "_blob"] = pydot.Node(bottom, **BLOB_STYLE)
            edges.append((bottom + "_blob", node_name, '""'))
        for top in layer.top:
            nodes[top + "_blob"] = pydot.Node(top)
            edges.append((node_name, top + "_blob", get_edge_label(layer) if label_edges else '""'))
    for node in nodes.values():
        graph.add_node(node)
    for src, dst, label in edges:
        graph.add_edge(pydot.Edge(nodes[src], nodes[dst], label=label))
    return graph


def _have_dot() -> bool:
    return shutil.which("dot") is not None


def check_renderer(ext: str) -> None:
    """Raise UnsupportedError now if drawing to ``.ext`` needs Graphviz's ``dot`` and it is missing."""
    ext = ext.lower()
    if ext in _SOURCE_FORMATS or ext in _SOURCE_IF_NO_DOT or _have_dot():
        return
    raise UnsupportedError(
        f"drawing to .{ext} needs Graphviz's `dot` program, which is not on PATH "
        "(install Graphviz, e.g. `apt-get install graphviz`); .raw and .dot output "
        "(the graph source) work without it"
    )


def draw_net(caffe_net: Any, rankdir: str, ext: str = "png", phase: int | None = None,
             display_lrm: bool = False) -> bytes:
    """The net drawn in format ``ext`` (png, svg, pdf, ... ; raw = DOT source) as bytes."""
    check_renderer(ext)
    graph = get_pydot_graph(caffe_net, rankdir, phase=phase, display_lrm=display_lrm)
    ext = ext.lower()
    if ext in _SOURCE_FORMATS or (ext in _SOURCE_IF_NO_DOT and not _have_dot()):
        return graph.to_string().encode("utf-8")
    image: Any = graph.create(format=ext)  # bytes (pydot's annotation says str)
    return image


def file_format(filename: str | os.PathLike[str]) -> str:
    """The drawing format a file name asks for: its extension (``png`` without one)."""
    name = os.fspath(filename)
    return name[name.rfind(".") + 1:] if "." in os.path.basename(name) else "png"


def draw_net_to_file(caffe_net: Any, filename: str | os.PathLike[str], rankdir: str = "LR",
                     phase: int | None = None, display_lrm: bool = False) -> None:
    """Draw the net into ``filename``; its extension picks the format (``.raw``: DOT source)."""
    name = os.fspath(filename)
    ext = file_format(name)
    data = draw_net(caffe_net, rankdir, ext, phase, display_lrm)
    with open(name, "wb") as fid:
        fid.write(data)
