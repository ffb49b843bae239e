"""``caffe-compat upgrade_solver_proto_text IN OUT``: Caffe's tool of that name.

Replaces the deprecated ``solver_type: NESTEROV`` enum by ``type: "Nesterov"``
and writes the solver prototxt. Exit status as Caffe's tool: 0 done (an
already-current file is written too, and the log says so), 2 when the input
cannot be read; a file giving both ``solver_type`` and ``type`` (where Caffe's
tool aborts) prints the error and exits 1 without writing. Like Caffe's tool it
leaves ``snapshot_prefix`` alone (only training resolves it against the solver
file's name). The output is written atomically.
"""

from __future__ import annotations

import argparse
import logging

from ..cli import command
from ..errors import ProtoError
from ..proto import caffe_pb2
from ..proto.files import read_text, write_text
from ..proto.upgrade import upgrade_solver

_log = logging.getLogger("caffe_compat")


@command("upgrade_solver_proto_text",
         "upgrade a solver prototxt's solver_type enum to the type string (Caffe's tool)")
def setup(parser: argparse.ArgumentParser):
    parser.add_argument("input", metavar="IN", help="solver prototxt")
    parser.add_argument("output", metavar="OUT", help="where to write the upgraded solver prototxt")

    def run(args: argparse.Namespace) -> int:
        solver = caffe_pb2.SolverParameter()
        try:
            read_text(args.input, solver)
        except ProtoError as exc:
            _log.error("Failed to parse input text file as SolverParameter: %s", exc)
            return 2
        if solver.HasField("solver_type"):
            upgrade_solver(solver, args.input)
        else:
            _log.error("File already in latest proto format: %s", args.input)
        write_text(args.output, solver)
        _log.info("Wrote upgraded SolverParameter text proto to %s", args.output)
        return 0

    return run
