"""``caffe-compat test``: Caffe's ``caffe test`` (score a model).

    caffe-compat test --model=NET --weights=W [--iterations=50] [--gpu=0]
                      [--level=N --stage=a,b]

Builds the net in the TEST phase, loads the weights, runs ``iterations``
forward passes and logs each output element per batch (``Batch i, name = v``),
the mean loss (``Loss: x``) and the mean of every output
(``name = v (* w = l loss)``), as Caffe does.

Differences from Caffe: without CUDA, ``--gpu`` falls back to the CPU with a
warning.
"""

from __future__ import annotations

import argparse
import logging

import torch

from ..cli import command
from ..errors import CaffeCompatError
from ..net import TEST, Net
from ._common import fmt, parse_gpus, parse_stages, use_device

_log = logging.getLogger("caffe_compat")


@command("test", "score a model (Caffe's caffe test)", python_layers=True)
def setup(parser: argparse.ArgumentParser):
    parser.add_argument("--model", default="", help="the model definition (.prototxt)")
    parser.add_argument("--weights", default="", help="the trained weights (.caffemodel or .h5)")
    parser.add_argument("--iterations", type=int, default=50, help="number of batches to run")
    parser.add_argument("--gpu", default="", help="GPU id (only the first of a list is used)")
    parser.add_argument("--level", type=int, default=0, help="network level")
    parser.add_argument("--stage", default="", help="network stages separated by ','")

    def run(args: argparse.Namespace) -> int:
        if not args.model:
            raise CaffeCompatError("Need a model definition to score: --model=NET.prototxt")
        if not args.weights:
            raise CaffeCompatError("Need model weights to score: --weights=MODEL.caffemodel")
        if args.iterations <= 0:
            raise CaffeCompatError(f"--iterations={args.iterations}: expected the number of batches "
                                   "to score, 1 or more")
        gpus = parse_gpus(args.gpu)
        for extra in reversed(gpus[1:]):
            _log.info("Not using GPU #%d for single-GPU function", extra)
        use_device(gpus[:1])
        net = Net(args.model, TEST, level=args.level, stages=parse_stages(args.stage))
        net.copy_from(args.weights)
        _log.info("Running for %d iterations.", args.iterations)
        names = net.outputs
        sums: list[float] = []
        ids: list[int] = []
        loss_total = 0.0
        last = len(net.layers) - 1
        for i in range(args.iterations):
            with torch.no_grad():
                loss = net._forward_range(0, last, want_loss=True)
            loss_total += float(loss) if loss is not None else 0.0
            idx = 0
            for j, name in enumerate(names):
                for score in net.blobs[name].data.reshape(-1).tolist():
                    if i == 0:
                        sums.append(score)
                        ids.append(j)
                    else:
                        sums[idx] += score
                    _log.info("Batch %d, %s = %s", i, name, fmt(score))
                    idx += 1
        n = args.iterations
        _log.info("Loss: %s", fmt(loss_total / n))
        weights = net.blob_loss_weights
        for k, total in enumerate(sums):
            output = names[ids[k]]
            mean = total / n
            w = weights[output]
            note = f" (* {fmt(w)} = {fmt(w * mean)} loss)" if w else ""
            _log.info("%s = %s%s", output, fmt(mean), note)
        return 0

    return run
