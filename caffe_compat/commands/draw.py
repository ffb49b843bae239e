"""``caffe-compat draw NET.prototxt OUT.png``: Caffe's ``python/draw_net.py``.

Same arguments: ``--rankdir`` (LR, TB, BT, RL; default LR), ``--phase``
(TRAIN, TEST or ALL, the default), ``--display_lrm``. The output format is the
file's extension; PNG/SVG/PDF need Graphviz's ``dot``, ``.raw``/``.dot`` do not.
V0/V1 prototxts are upgraded before drawing (draw_net.py drew nothing for them).
"""

from __future__ import annotations

import argparse
import logging

from ..cli import bool_flags, command, parse_bool

_log = logging.getLogger("caffe_compat")

_PHASES = {"TRAIN": 0, "TEST": 1, "ALL": None}


@command("draw", "draw a net as a graph (Caffe's draw_net.py)")
def setup(parser: argparse.ArgumentParser):
    parser.add_argument("input_net_proto_file", help="input net prototxt file")
    parser.add_argument("output_image_file", help="output image file (.png, .svg, .pdf, .dot, .raw)")
    parser.add_argument("--rankdir", default="LR",
                        help="one of TB (top-bottom), BT, LR (left-right, default), RL")
    parser.add_argument("--phase", default="ALL", type=str.upper, choices=sorted(_PHASES),
                        help="which phase's layers to draw: TRAIN, TEST or ALL (default)")
    parser.add_argument("--display_lrm", default=False, type=parse_bool,
                        help="show the learning rate multipliers of learning layers")
    bool_flags(parser, ["display_lrm"])

    def run(args: argparse.Namespace) -> int:
        from .. import draw

        net = draw.read_net(args.input_net_proto_file)
        draw.check_renderer(draw.file_format(args.output_image_file))  # before announcing it
        print(f"Drawing net to {args.output_image_file}")
        draw.draw_net_to_file(net, args.output_image_file, args.rankdir,
                              _PHASES[args.phase], args.display_lrm)
        return 0

    return run
