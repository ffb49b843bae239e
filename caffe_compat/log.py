"""Logging in glog's line format, so Caffe's log tools read our logs.

``I1128 18:35:16.976142  2521 solver.py:210] Iteration 100, lr = 0.01`` —
the severity letter, month and day, time with microseconds, thread id,
source file and line, then the message. ``tools/extra/parse_log.py`` takes
the date and time from the first two fields and matches the message text.
"""

from __future__ import annotations

import logging
import sys
import threading
from datetime import datetime
from typing import TextIO

__all__ = ["GlogFormatter", "setup_logging", "logger"]

logger = logging.getLogger("caffe_compat")

_LETTER = {
    logging.DEBUG: "I",
    logging.INFO: "I",
    logging.WARNING: "W",
    logging.ERROR: "E",
    logging.CRITICAL: "F",
}


class GlogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created)
        letter = _LETTER.get(record.levelno, "I")
        tid = threading.get_native_id() if record.thread else 0
        head = f"{letter}{when:%m%d %H:%M:%S}.{when.microsecond:06d} {tid:>6} " \
               f"{record.filename}:{record.lineno}] "
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        return head + msg


_handler: logging.Handler | None = None


def setup_logging(level: int = logging.INFO, stream: TextIO | None = None) -> logging.Handler:
    """Send caffe_compat's log to ``stream`` (stderr, like glog) in glog format."""
    global _handler
    if _handler is not None:
        logger.removeHandler(_handler)
    _handler = logging.StreamHandler(stream or sys.stderr)
    _handler.setFormatter(GlogFormatter())
    logger.addHandler(_handler)
    logger.setLevel(level)
    logger.propagate = False
    return _handler
