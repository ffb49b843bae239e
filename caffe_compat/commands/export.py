"""``caffe-compat export``: a Caffe model as ONNX (or a torch.export program).

    caffe-compat export --model deploy.prototxt --weights net.caffemodel --onnx net.onnx

The ONNX file is self-contained (weights inside) when the model fits
protobuf's 2 GB limit; larger models store their weights as ONNX external
data in files beside it, and the log names every file written (they must be
kept together). ``--external_data=true|false`` overrides the choice.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from ..cli import command, parse_bool
from ..export import quiet_exporter

__all__ = ["PROTOBUF_LIMIT", "needs_external_data", "onnx_files"]

_log = logging.getLogger("caffe_compat")

# protobuf refuses messages of 2 GiB and more; leave room for the graph itself.
PROTOBUF_LIMIT = 2**31 - 1
_GRAPH_MARGIN = 64 * 2**20


def weight_bytes(module: Any) -> int:
    """Bytes of the module's parameters and buffers (each tensor counted once)."""
    seen: set[int] = set()
    total = 0
    for t in list(module.parameters()) + list(module.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


def needs_external_data(nbytes: int, choice: bool | None = None) -> bool:
    """Whether weights of ``nbytes`` go to external data (``choice`` forces it)."""
    if choice is not None:
        return choice
    return nbytes + _GRAPH_MARGIN >= PROTOBUF_LIMIT


def onnx_files(path: str) -> list[str]:
    """The ONNX file and the external data files it refers to (in the order first referenced)."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    found: list[str] = [path]
    folder = os.path.dirname(path)
    tensors = list(model.graph.initializer)
    for node in model.graph.node:
        tensors.extend(a.t for a in node.attribute if a.HasField("t"))
    for t in tensors:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            for entry in t.external_data:
                if entry.key == "location":
                    where = os.path.join(folder, entry.value)
                    if where not in found:
                        found.append(where)
    return found


@command("export", "export a model to ONNX or a torch.export program", python_layers=True)
def setup(parser: argparse.ArgumentParser):
    parser.add_argument("--model", required=True, help="the net definition (.prototxt)")
    parser.add_argument("--weights", default="", help="trained weights (.caffemodel or .h5)")
    parser.add_argument("--phase", default="TEST", choices=["TRAIN", "TEST"])
    parser.add_argument("--onnx", default="", help="write ONNX here")
    parser.add_argument("--exported_program", default="",
                        help="write a torch.export program (.pt2) here")
    parser.add_argument("--outputs", default="", help="comma-separated blobs to return "
                        "(default: the outputs, loss layers left out)")
    parser.add_argument("--keep_losses", action="store_true", help="keep loss layers in the graph")
    parser.add_argument("--opset", type=int, default=18,
                        help="ONNX opset version to target (default: 18; onnxruntime 1.15+ runs it)")
    parser.add_argument("--external_data", type=parse_bool, default=None, metavar="true|false",
                        help="store the ONNX weights in a separate file beside the model "
                             "(default: only when they do not fit protobuf's 2 GB limit)")

    def run(args: argparse.Namespace) -> int:
        import torch

        from .. import Net, TEST, TRAIN
        from ..errors import UnsupportedError
        from ..export import to_torch

        if not args.onnx and not args.exported_program:
            raise UnsupportedError("export: give --onnx FILE and/or --exported_program FILE")
        net = Net(args.model, TRAIN if args.phase == "TRAIN" else TEST)
        if args.weights:
            net.copy_from(args.weights)
        outputs = [o for o in args.outputs.split(",") if o] or None
        module = to_torch(net, outputs=outputs, drop_losses=not args.keep_losses).eval()
        example = tuple(net.blobs[name].tensor.detach() for name in module.input_names)
        if args.exported_program:
            with quiet_exporter():
                program = torch.export.export(module, example)
                torch.export.save(program, args.exported_program)
            _log.info("Wrote torch.export program %s", args.exported_program)
        if args.onnx:
            nbytes = weight_bytes(module)
            external = needs_external_data(nbytes, args.external_data)
            with quiet_exporter():
                torch.onnx.export(module, example, args.onnx, dynamo=True, opset_version=args.opset,
                                  input_names=list(module.input_names),
                                  output_names=list(module.output_names),
                                  external_data=external, verbose=False)
            files = onnx_files(args.onnx)
            _log.info("Wrote ONNX model %s (inputs %s, outputs %s)", args.onnx,
                      ", ".join(module.input_names), ", ".join(module.output_names))
            if len(files) > 1:
                _log.info("Its weights (%.1f MB) are external data in %s: keep %s together",
                          nbytes / 1e6, ", ".join(files[1:]), " and ".join(files))
        return 0

    return run
