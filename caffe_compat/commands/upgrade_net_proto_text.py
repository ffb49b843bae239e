"""``caffe-compat upgrade_net_proto_text IN OUT``: Caffe's tool of that name.

Reads a net definition in any historical format (V0 ``layers { layer { ... } }``,
V1 ``layers { type: ENUM ... }``, ``input:`` fields, old BatchNorm specs),
upgrades it as Caffe does on load, and writes the current text format.
:func:`run_upgrade` is shared with ``upgrade_net_proto_binary``.

Exit status as Caffe's tool: 0 upgraded (or already current: the file is still
written, and the log says so), 1 when the upgrade met problems Caffe only logs
(a V0 field the layer type does not take; the output is still written), 2 when
the input cannot be read. Where Caffe's tool aborts (unknown V0 type, a net
mixing ``layer`` and ``layers``) we print the error and exit 1 without writing.
The output is written atomically (temporary file + rename).
"""

from __future__ import annotations

import argparse
import logging

from ..cli import command
from ..errors import ProtoError, WeightsError
from ..proto import caffe_pb2
from ..proto.files import read_binary, read_text, write_binary, write_text
from ..proto.upgrade import net_needs_upgrade, upgrade_net

__all__ = ["run_upgrade"]

_log = logging.getLogger("caffe_compat")


def run_upgrade(path_in: str, path_out: str, binary: bool) -> int:
    kind = "binary" if binary else "text"
    net = caffe_pb2.NetParameter()
    try:
        (read_binary if binary else read_text)(path_in, net)
    except (ProtoError, WeightsError) as exc:
        _log.error("Failed to parse input %s file as NetParameter: %s", kind, exc)
        return 2
    problems: list[str] = []
    if net_needs_upgrade(net):
        upgrade_net(net, path_in, problems)
        if problems:
            _log.error("Encountered error(s) while upgrading %s; see details above.", path_in)
    else:
        _log.error("File already in latest proto format: %s", path_in)
    (write_binary if binary else write_text)(path_out, net)
    _log.info("Wrote upgraded NetParameter %s proto to %s", kind, path_out)
    return 1 if problems else 0


@command("upgrade_net_proto_text",
         "upgrade a V0/V1 net prototxt to the current format (Caffe's tool)")
def setup(parser: argparse.ArgumentParser):
    parser.add_argument("input", metavar="IN", help="net prototxt in any Caffe format")
    parser.add_argument("output", metavar="OUT", help="where to write the upgraded prototxt")

    def run(args: argparse.Namespace) -> int:
        return run_upgrade(args.input, args.output, binary=False)

    return run
