"""``caffe-compat device_query``: what Caffe's ``caffe device_query`` prints."""

from __future__ import annotations

import argparse
import logging

import torch

from ..cli import command

_log = logging.getLogger("caffe_compat")


@command("device_query", "show the CUDA devices (Caffe's device_query)")
def setup(parser: argparse.ArgumentParser):
    parser.add_argument("--gpu", default="0", help="device id(s): 0, 0,1 or all")

    def run(args: argparse.Namespace) -> int:
        if not torch.cuda.is_available():
            _log.info("No CUDA device available; caffe_compat runs on the CPU (torch %s, %d threads)",
                      torch.__version__, torch.get_num_threads())
            return 0
        ids = range(torch.cuda.device_count()) if args.gpu == "all" else [int(i) for i in args.gpu.split(",")]
        for i in ids:
            p = torch.cuda.get_device_properties(i)
            _log.info("Querying GPUs %d", i)
            _log.info("Device id:                     %d", i)
            _log.info("Major revision number:         %d", p.major)
            _log.info("Minor revision number:         %d", p.minor)
            _log.info("Name:                          %s", p.name)
            _log.info("Total global memory:           %d", p.total_memory)
            _log.info("Number of multiprocessors:     %d", p.multi_processor_count)
        return 0

    return run
