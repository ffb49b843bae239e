"""Logging in glog's line format and with glog's environment variables.

Lines look like Caffe's, so Caffe's log tools read our logs:
``I1128 18:35:16.976142  2521 solver.py:210] Iteration 100, lr = 0.01`` —
the severity letter, month and day, time with microseconds, thread id,
source file and line, then the message. ``tools/extra/parse_log.py`` takes
the date and time from the first two fields and matches the message text.

glog reads its flags from the environment, and Caffe users set them there;
:class:`GlogFlags` reads the same variables with glog's parsing rules:

``GLOG_minloglevel``
    0 INFO, 1 WARNING, 2 ERROR, 3 FATAL: messages below it are dropped
    everywhere (``GLOG_minloglevel=2`` is how scripts and CI silence Caffe).
``GLOG_logtostderr``
    log to stderr only, no log files.
``GLOG_alsologtostderr``
    log to stderr as well as to the files (``caffe`` forces it on).
``GLOG_stderrthreshold``
    messages at or above this severity also go to stderr (default 2, ERROR).
``GLOG_log_dir`` (or ``GOOGLE_LOG_DIR``)
    write glog's files there: ``<program>.<host>.<user>.log.<SEVERITY>.<yyyymmdd-hhmmss>.<pid>``,
    one per severity (each holds the messages of that severity and above),
    each starting with glog's three header lines, and the symlinks
    ``<program>.INFO``, ``<program>.WARNING`` ... to the newest of each.
``GLOG_v``
    1 or more also shows caffe_compat's debug messages (glog's ``VLOG(1)``),
    as INFO lines.

Where they apply: the ``caffe-compat`` command behaves like Caffe's ``caffe``
tool (:func:`setup_cli_logging`), a library script like pycaffe before
``caffe.init_log()`` (:func:`configure_from_env`, run when caffe_compat is
imported), and :func:`init_glog` like pycaffe's ``caffe.init_log()``.

Difference from Caffe: log files are written only when ``GLOG_log_dir`` is
set (glog falls back to ``/tmp`` and so leaves files there on every run).
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import sys
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Mapping, TextIO

__all__ = [
    "GlogFormatter",
    "GlogFileHandler",
    "GlogFlags",
    "setup_logging",
    "setup_cli_logging",
    "configure_from_env",
    "init_glog",
    "python_level",
    "logger",
    "STDERR_ONLY",
    "FILES_ONLY",
]

logger = logging.getLogger("caffe_compat")

_LETTER = {
    logging.DEBUG: "I",
    logging.INFO: "I",
    logging.WARNING: "W",
    logging.ERROR: "E",
    logging.CRITICAL: "F",
}
SEVERITIES = ("INFO", "WARNING", "ERROR", "FATAL")
# A glog severity (0..3) as the lowest Python level it lets through.
_LEVEL_OF = (logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)

# ``logger.error(msg, extra=FILES_ONLY)``: the record goes to the log files, not
# to stderr (the command line prints its own line for it).
FILES_ONLY = {"glog_destination": "files"}
STDERR_ONLY = {"glog_destination": "stderr"}


def severity(levelno: int) -> int:
    """The glog severity (0 INFO .. 3 FATAL) of a Python log level."""
    if levelno >= logging.CRITICAL:
        return 3
    if levelno >= logging.ERROR:
        return 2
    if levelno >= logging.WARNING:
        return 1
    return 0


class GlogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created)
        letter = _LETTER.get(record.levelno, "I" if record.levelno < logging.WARNING else "E")
        tid = threading.get_native_id() if record.thread else 0
        # glog: ' ' << setw(5) << thread id << ' '.
        head = f"{letter}{when:%m%d %H:%M:%S}.{when.microsecond:06d} {tid:>5} " \
               f"{record.filename}:{record.lineno}] "
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        return head + msg


# ------------------------------------------------------------------ the flags
def _env_bool(value: str | None, default: bool) -> bool:
    """glog's BoolFromEnv: set and starting with t, T, y, Y, 1 (or empty) is true."""
    if value is None:
        return default
    return value[:1] in ("", "t", "T", "y", "Y", "1")


def _env_int(value: str | None, default: int) -> int:
    """glog's EnvToInt: ``strtol(value, NULL, 10)`` (0 when there are no digits)."""
    if value is None:
        return default
    text = value.strip()
    sign, digits = (-1, text[1:]) if text[:1] == "-" else (1, text[1:] if text[:1] == "+" else text)
    n = 0
    for ch in digits:
        if not ch.isdigit():
            break
        n = n * 10 + int(ch)
    return sign * n


_NAMES = ("GLOG_minloglevel", "GLOG_logtostderr", "GLOG_alsologtostderr", "GLOG_stderrthreshold",
          "GLOG_log_dir", "GOOGLE_LOG_DIR", "GLOG_v")


@dataclass(frozen=True)
class GlogFlags:
    """glog's logging flags, as its ``GLOG_*`` environment variables set them."""

    minloglevel: int = 0
    logtostderr: bool = False
    alsologtostderr: bool = False
    stderrthreshold: int = 2
    log_dir: str = ""
    v: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "GlogFlags":
        env = os.environ if environ is None else environ
        return cls(
            minloglevel=_env_int(env.get("GLOG_minloglevel"), 0),
            logtostderr=_env_bool(env.get("GLOG_logtostderr"), False),
            alsologtostderr=_env_bool(env.get("GLOG_alsologtostderr"), False),
            stderrthreshold=_env_int(env.get("GLOG_stderrthreshold"), 2),
            log_dir=env.get("GLOG_log_dir", env.get("GOOGLE_LOG_DIR", "")),
            v=_env_int(env.get("GLOG_v"), 0),
        )

    @staticmethod
    def any_set(environ: Mapping[str, str] | None = None) -> bool:
        env = os.environ if environ is None else environ
        return any(name in env for name in _NAMES)


def python_level(flags: GlogFlags) -> int:
    """The lowest Python level that ``flags`` let through (DEBUG with ``GLOG_v`` >= 1)."""
    if flags.minloglevel <= 0:
        return logging.DEBUG if flags.v >= 1 else logging.INFO
    if flags.minloglevel >= len(_LEVEL_OF):
        return logging.CRITICAL + 1  # nothing
    return _LEVEL_OF[flags.minloglevel]


class _Destination(logging.Filter):
    """Lets records through to one kind of destination ("stderr" or "files")."""

    def __init__(self, kind: str, threshold: int = logging.NOTSET) -> None:
        super().__init__()
        self.kind = kind
        self.threshold = threshold

    def filter(self, record: logging.LogRecord) -> bool:
        where = getattr(record, "glog_destination", None)
        return (where is None or where == self.kind) and record.levelno >= self.threshold


# ------------------------------------------------------------------ log files
def _hostname() -> str:
    try:
        return os.uname().nodename or "(unknown)"
    except AttributeError:  # pragma: no cover - not POSIX
        return socket.gethostname() or "(unknown)"


def _username() -> str:
    user = os.environ.get("USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry
        return "invalid-user"


class GlogFileHandler(logging.Handler):
    """glog's log files in one directory, one per severity, created on first use.

    The INFO file holds every message, the WARNING file warnings and worse,
    and so on; each starts with glog's header lines, and ``<program>.<SEVERITY>``
    is a symlink to it. A directory that cannot be written is reported once
    on stderr and logging goes on without files (as glog does).
    """

    def __init__(self, log_dir: str, program: str = "caffe", links: bool = True) -> None:
        super().__init__()
        self.log_dir = log_dir
        self.program = program
        self.links = links and bool(program)  # glog links only a named program's files
        self.files: dict[int, IO[str]] = {}
        self.paths: dict[int, str] = {}
        self.failed = False
        self.setFormatter(GlogFormatter())
        self.addFilter(_Destination("files"))

    def _open(self, sev: int, when: datetime) -> IO[str] | None:
        if sev in self.files:
            return self.files[sev]
        if self.failed:
            return None
        name = (f"{self.program}.{_hostname()}.{_username()}.log.{SEVERITIES[sev]}."
                f"{when:%Y%m%d-%H%M%S}.{os.getpid()}")
        path = os.path.join(self.log_dir, name)
        try:
            f = open(path, "w", encoding="utf-8")
        except OSError as exc:
            self.failed = True
            print(f"caffe-compat: could not create a log file in GLOG_log_dir={self.log_dir}: "
                  f"{exc.strerror or exc}; logging to stderr only", file=sys.stderr)
            return None
        f.write(f"Log file created at: {when:%Y/%m/%d %H:%M:%S}\n"
                f"Running on machine: {_hostname()}\n"
                "Log line format: [IWEF]mmdd hh:mm:ss.uuuuuu threadid file:line] msg\n")
        self.files[sev], self.paths[sev] = f, path
        if self.links:
            link = os.path.join(self.log_dir, f"{self.program}.{SEVERITIES[sev]}")
            try:
                if os.path.lexists(link):
                    os.unlink(link)
                os.symlink(name, link)
            except OSError:
                pass  # glog ignores a link it cannot make
        return f

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
            when = datetime.fromtimestamp(record.created)
            top = severity(record.levelno)
            self.acquire()
            try:
                for sev in range(top, -1, -1):
                    f = self._open(sev, when)
                    if f is None:
                        return
                    f.write(line)
                    f.flush()
            finally:
                self.release()
        except Exception:  # noqa: BLE001 - logging must not raise
            self.handleError(record)

    def close(self) -> None:
        self.acquire()
        try:
            for f in self.files.values():
                f.close()
            self.files.clear()
        finally:
            self.release()
        super().close()


# ------------------------------------------------------------------ set-ups
_handlers: list[logging.Handler] = []
_handler: logging.Handler | None = None  # the stderr handler (setup_logging's)


def _reset() -> None:
    global _handler
    for h in _handlers:
        logger.removeHandler(h)
        if isinstance(h, GlogFileHandler):
            h.close()
    _handlers.clear()
    _handler = None


def _stderr_handler(stream: TextIO | None, threshold: int = logging.NOTSET) -> logging.Handler:
    global _handler
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(GlogFormatter())
    handler.addFilter(_Destination("stderr", threshold))
    _handler = handler
    return handler


def _install(level: int, handlers: list[logging.Handler]) -> None:
    _reset()
    for h in handlers:
        logger.addHandler(h)
        _handlers.append(h)
    logger.setLevel(level)
    logger.propagate = False


def setup_logging(level: int = logging.INFO, stream: TextIO | None = None) -> logging.Handler:
    """Send caffe_compat's log to ``stream`` (stderr, like glog) in glog format."""
    handler = _stderr_handler(stream)
    _install(level, [handler])
    return handler


def _handlers_for(flags: GlogFlags, program: str, stream: TextIO | None,
                  always_stderr: bool) -> list[logging.Handler]:
    # In data-parallel training every rank writes its own files (its own pid); the
    # <program>.INFO links point at rank 0's, the one that logs the training.
    links = os.environ.get("RANK", "0").strip() in ("", "0")
    files = [] if flags.logtostderr or not flags.log_dir else [GlogFileHandler(flags.log_dir, program, links)]
    if flags.logtostderr or flags.alsologtostderr or always_stderr:
        threshold = logging.NOTSET
    else:
        threshold = _LEVEL_OF[min(max(flags.stderrthreshold, 0), 3)]
    return [_stderr_handler(stream, threshold), *files]


def setup_cli_logging(program: str = "caffe", stream: TextIO | None = None,
                      environ: Mapping[str, str] | None = None) -> GlogFlags:
    """Logging for the ``caffe-compat`` command, as Caffe's ``caffe`` tool sets up glog.

    ``caffe`` forces ``alsologtostderr`` on, so every message at or above
    ``GLOG_minloglevel`` goes to stderr, and to the files in ``GLOG_log_dir``
    unless ``GLOG_logtostderr`` is set. Files are named after ``program``.
    """
    flags = GlogFlags.from_env(environ)
    _install(python_level(flags), _handlers_for(flags, program, stream, always_stderr=True))
    return flags


def configure_from_env(environ: Mapping[str, str] | None = None) -> GlogFlags | None:
    """Apply ``GLOG_*`` variables to a library user's logging (run when caffe_compat is imported).

    pycaffe logs before ``caffe.init_log()`` like uninitialised glog: every
    message at or above ``GLOG_minloglevel`` to stderr, no files. With no
    ``GLOG_*`` variable set, nothing is changed: caffe_compat's messages go
    through Python's logging as configured (by default warnings and errors
    reach stderr). With any set, they go to stderr in glog's format at that
    level, as pycaffe's would.
    """
    env = os.environ if environ is None else environ
    if not GlogFlags.any_set(env) or _handlers:
        return None
    flags = GlogFlags.from_env(env)
    _install(python_level(flags), [_stderr_handler(None)])
    return flags


def init_glog(program: str = "", stream: TextIO | None = None,
              environ: Mapping[str, str] | None = None, minloglevel: int | None = None,
              logtostderr: bool | None = None, default_log_dir: str | None = None) -> GlogFlags:
    """pycaffe's ``caffe.init_log()`` (``InitGoogleLogging``): glog's files and thresholds.

    After it, messages go to the files in ``GLOG_log_dir`` (if set; glog would
    use ``/tmp``) and to stderr only from ``GLOG_stderrthreshold`` up, unless
    ``GLOG_logtostderr`` or ``GLOG_alsologtostderr`` says otherwise. ``minloglevel``/``logtostderr``
    override the environment (pycaffe's ``init_log(level, stderr)``). Files are
    named after ``program`` (pycaffe passes an empty one: ``.<host>.<user>.log...``).
    ``default_log_dir`` is where files go when ``GLOG_log_dir`` is unset (glog: the
    temporary directory).
    """
    flags = GlogFlags.from_env(environ)
    flags = GlogFlags(flags.minloglevel if minloglevel is None else int(minloglevel),
                      flags.logtostderr if logtostderr is None else bool(logtostderr),
                      flags.alsologtostderr, flags.stderrthreshold,
                      flags.log_dir or default_log_dir or "", flags.v)
    _install(python_level(flags), _handlers_for(flags, program, stream, always_stderr=False))
    return flags
