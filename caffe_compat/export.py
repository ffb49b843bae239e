"""Export a Net as plain PyTorch: a ``torch.fx.GraphModule`` over the layers.

The graph has one ``call_module`` node per layer, fed by placeholders for the
net's inputs (Input layer tops, and the tops of data layers, which read
storage and so stay outside the graph). Split layers are dropped: a plain
module sums gradients of a reused tensor by itself. The module returns a dict
of the requested blobs (default: the net outputs).

The layers are the net's own modules, so the exported module shares the
net's parameters; ``copy.deepcopy`` it for an independent copy. It runs
under ``torch.export`` and exports to ONNX (``caffe-compat export``).
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from typing import Iterable, Iterator

import torch
from torch import fx, nn

from .errors import BlobNotFoundError, UnsupportedError
from .net import Net

__all__ = ["to_torch", "CaffeGraphModule"]


def _attr_name(name: str, taken: set[str]) -> str:
    base = re.sub(r"\W", "_", name) or "layer"
    if base[0].isdigit():
        base = "l_" + base
    out, n = base, 1
    while out in taken:
        n += 1
        out = f"{base}_{n}"
    taken.add(out)
    return out


class CaffeGraphModule(fx.GraphModule):
    """A GraphModule that also remembers which Caffe blob each input is."""

    input_names: list[str]
    output_names: list[str]


def _is_data_layer(layer: nn.Module) -> bool:
    return getattr(layer, "is_input", False) or (
        getattr(layer, "exact_num_bottom", None) == 0 and not getattr(layer, "layer_param").bottom
    )


def to_torch(net: Net, outputs: Iterable[str] | None = None,
             drop_losses: bool = False, leave_out: Iterable[int] = ()) -> CaffeGraphModule:
    """A plain ``nn.Module`` computing ``net``'s forward pass.

    ``outputs``: blob names to return (default: the net outputs; with
    ``drop_losses`` the loss layers are left out and the remaining outputs
    returned). ``leave_out``: indices of further layers to leave out. The module's
    ``forward`` takes the input blobs as positional arguments in
    ``module.input_names`` order and returns a dict.
    """
    skipped = set(leave_out)
    root = nn.Module()
    graph = fx.Graph()
    taken: set[str] = set()
    value: dict[int, fx.Node] = {}  # blob id -> current fx value
    inputs: list[str] = []
    blob_names = net._blob_names
    kept_outputs: set[int] = set()  # tops of layers in the graph

    for node in net._nodes:
        layer = node.layer
        if (drop_losses and (node.has_loss or layer.is_loss)) or node.index in skipped:
            continue
        if _is_data_layer(layer):
            for bid in node.top_ids:
                name = blob_names[bid]
                value[bid] = graph.placeholder(_attr_name(name, taken))
                inputs.append(name)
            continue
        missing = [blob_names[b] for b in node.bottom_ids if b not in value]
        if missing:
            raise UnsupportedError(
                f"to_torch: {layer.where} reads {missing}, which the exported graph does not compute"
            )
        args = tuple(value[b] for b in node.bottom_ids)
        if layer.type == "Split":
            for bid in node.top_ids:
                value[bid] = args[0]
            continue
        attr = _attr_name(node.name, taken)
        root.add_module(attr, layer)
        call = graph.call_module(attr, args)
        for k, bid in enumerate(node.top_ids):
            # Layers return a tensor or a tuple (one top per bottom for Convolution).
            value[bid] = graph.call_function(_top, (call, k), name=_attr_name(blob_names[bid], taken))
        kept_outputs.update(node.top_ids)

    if outputs is None:
        if drop_losses:
            used = {id(u) for n in graph.nodes for u in n.all_input_nodes}
            wanted = sorted((b for b in kept_outputs if id(value[b]) not in used
                             and value[b].op != "placeholder"), key=lambda b: blob_names[b])
        else:
            wanted = [b for b in net._output_ids if b in value]
    else:
        wanted = []
        for name in outputs:
            ids = [i for i, n in enumerate(blob_names) if n == name]
            if not ids or ids[-1] not in value:
                raise BlobNotFoundError(f'to_torch: blob "{name}" is not computed by the exported graph')
            wanted.append(ids[-1])
    graph.output({blob_names[b]: value[b] for b in wanted})
    for ph in [n for n in graph.nodes if n.op == "placeholder" and not n.users]:
        inputs.remove(next(name for name in inputs if _attr_name(name, set()) == ph.target
                           or re.sub(r"\W", "_", name) == ph.target))
        graph.erase_node(ph)
    module = CaffeGraphModule(root, graph, class_name=f"Caffe_{_attr_name(net.name or 'net', set())}")
    module.input_names = inputs
    module.output_names = [blob_names[b] for b in wanted]
    return module


def _top(out: torch.Tensor | tuple[torch.Tensor, ...], index: int) -> torch.Tensor:
    return out[index] if isinstance(out, (tuple, list)) else out


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """torch's ONNX exporter notes that optional packages (torchvision) are missing and
    raises FutureWarnings of its own; none of that concerns a Caffe model."""
    names = ("torch.onnx", "torch.export", "torch._export", "onnxscript", "onnx_ir")
    saved = {n: logging.getLogger(n).level for n in names}
    try:
        for n in names:
            logging.getLogger(n).setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)
