"""``caffe-compat upgrade_net_proto_binary IN OUT``: Caffe's tool of that name.

The binary twin of ``upgrade_net_proto_text``: a V0/V1 ``.caffemodel`` is
rewritten in the current format, its weights (``blobs``) carried over as they
are. Same exit status and atomic write (see
:mod:`caffe_compat.commands.upgrade_net_proto_text`).
"""

from __future__ import annotations

import argparse

from ..cli import command
from .upgrade_net_proto_text import run_upgrade


@command("upgrade_net_proto_binary",
         "upgrade a V0/V1 binary .caffemodel to the current format (Caffe's tool)")
def setup(parser: argparse.ArgumentParser):
    parser.add_argument("input", metavar="IN", help=".caffemodel in any Caffe format")
    parser.add_argument("output", metavar="OUT", help="where to write the upgraded .caffemodel")

    def run(args: argparse.Namespace) -> int:
        return run_upgrade(args.input, args.output, binary=True)

    return run
