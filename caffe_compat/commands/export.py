"""``caffe-compat export``: a Caffe model as ONNX (or a torch.export program)."""

from __future__ import annotations

import argparse
import logging

from ..cli import command

_log = logging.getLogger("caffe_compat")


@command("export", "export a model to ONNX or a torch.export program")
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
    parser.add_argument("--opset", type=int, default=18)

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
            program = torch.export.export(module, example)
            torch.export.save(program, args.exported_program)
            _log.info("Wrote torch.export program %s", args.exported_program)
        if args.onnx:
            torch.onnx.export(module, example, args.onnx, dynamo=True, opset_version=args.opset,
                              input_names=list(module.input_names),
                              output_names=list(module.output_names))
            _log.info("Wrote ONNX model %s (inputs %s, outputs %s)", args.onnx,
                      ", ".join(module.input_names), ", ".join(module.output_names))
        return 0

    return run
