"""``caffe-compat time``: Caffe's ``caffe time`` (benchmark a model layer by layer).

    caffe-compat time --model=NET [--iterations=50] [--phase=TRAIN|TEST]
                      [--level=N --stage=a,b] [--gpu=0]

After one warm-up forward/backward, each of ``iterations`` rounds runs every
layer's forward in order, then every layer's backward in reverse order, timing
each; the log has one ``Iteration: j forward-backward time`` line per round,
then the per-layer averages and ``Average Forward pass``, ``Average Backward
pass``, ``Average Forward-Backward`` and ``Total Time``, as Caffe prints them.
On a GPU each layer is timed to completion (the device is synchronized).

Differences from Caffe: a layer's backward is its segment of the autograd
graph, run from the diffs of its tops (as the net's layer-by-layer backward);
the per-layer split therefore includes a little Python bookkeeping per layer.
"""

from __future__ import annotations

import argparse
import logging
import time

import torch

from ..cli import command
from ..errors import CaffeCompatError
from ..net import TRAIN, Net
from ._common import fmt, parse_gpus, parse_phase, parse_stages, use_device

_log = logging.getLogger("caffe_compat")


def _now(sync: bool) -> float:
    if sync:
        torch.cuda.synchronize()
    return time.perf_counter()


@command("time", "benchmark a model's execution time per layer (Caffe's caffe time)",
         python_layers=True)
def setup(parser: argparse.ArgumentParser):
    parser.add_argument("--model", default="", help="the model definition (.prototxt)")
    parser.add_argument("--iterations", type=int, default=50, help="number of rounds to time")
    parser.add_argument("--phase", default="", help="TRAIN (default) or TEST")
    parser.add_argument("--gpu", default="", help="GPU id (only the first of a list is used)")
    parser.add_argument("--level", type=int, default=0, help="network level")
    parser.add_argument("--stage", default="", help="network stages separated by ','")

    def run(args: argparse.Namespace) -> int:
        if not args.model:
            raise CaffeCompatError("Need a model definition to time: --model=NET.prototxt")
        if args.iterations < 1:
            raise CaffeCompatError(f"--iterations must be >= 1, got {args.iterations}")
        phase = parse_phase(args.phase, TRAIN)
        gpus = parse_gpus(args.gpu)
        for extra in reversed(gpus[1:]):
            _log.info("Not using GPU #%d for single-GPU function", extra)
        sync = use_device(gpus[:1])
        net = Net(args.model, phase, level=args.level, stages=parse_stages(args.stage))
        n_layers = len(net.layers)
        names = [node.name for node in net._nodes]
        need_backward = [node.need_backward for node in net._nodes]
        _log.info("Performing Forward")
        loss = net._forward_range(0, n_layers - 1, want_loss=True)
        _log.info("Initial loss: %s", fmt(float(loss) if loss is not None else 0.0))
        _log.info("Performing Backward")
        net.backward()
        _log.info("*** Benchmark begins ***")
        _log.info("Testing for %d iterations.", args.iterations)
        forward_layer = [0.0] * n_layers
        backward_layer = [0.0] * n_layers
        forward_total = backward_total = 0.0
        total_start = _now(sync)
        for j in range(args.iterations):
            iter_start = t0 = _now(sync)
            for i in range(n_layers):
                start = _now(sync)
                net._forward_range(i, i)
                forward_layer[i] += _now(sync) - start
            t1 = _now(sync)
            forward_total += t1 - t0
            for i in range(n_layers - 1, -1, -1):
                start = _now(sync)
                if need_backward[i]:
                    net._backward_range(i, i, retain_graph=True)
                backward_layer[i] += _now(sync) - start
            t2 = _now(sync)
            backward_total += t2 - t1
            _log.info("Iteration: %d forward-backward time: %s ms.", j + 1, fmt((t2 - iter_start) * 1e3))
        total = _now(sync) - total_start
        n = args.iterations
        _log.info("Average time per layer: ")
        for i, name in enumerate(names):
            _log.info("%10s\tforward: %s ms.", name, fmt(forward_layer[i] * 1e3 / n))
            _log.info("%10s\tbackward: %s ms.", name, fmt(backward_layer[i] * 1e3 / n))
        _log.info("Average Forward pass: %s ms.", fmt(forward_total * 1e3 / n))
        _log.info("Average Backward pass: %s ms.", fmt(backward_total * 1e3 / n))
        _log.info("Average Forward-Backward: %s ms.", fmt(total * 1e3 / n))
        _log.info("Total Time: %s ms.", fmt(total * 1e3))
        _log.info("*** Benchmark ends ***")
        return 0

    return run
