"""Reading and writing Caffe's protobuf files, with errors that point at the spot.

* Text files (``.prototxt``, solver files) go through protobuf's
  ``text_format``; a syntax error becomes :class:`ProtoSyntaxError` whose
  message starts with ``path:line:column``.
* Binary files (``.caffemodel``, ``.solverstate``, ``.binaryproto``) are read
  whole and parsed; missing or truncated files become :class:`WeightsError`.
* Fields the schema does not know (a fork's) are skipped with an
  ``UnknownFieldWarning`` naming each one and where it is; strict mode raises
  (see :mod:`.tolerant`).
* Every write goes through :mod:`caffe_compat.atomic`: a temporary file in
  the same directory renamed into place, so an interrupted write never leaves
  a corrupt file under the final name, and a failure is a ``WriteError``
  naming the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TypeVar, Union

from google.protobuf import message as _message
from google.protobuf import text_format

from ..errors import ProtoError, ProtoSyntaxError, WeightsError
from .tolerant import UnknownFieldWarning, check_binary, merge_text

__all__ = [
    "PathLike",
    "parse_text",
    "read_text",
    "read_binary",
    "parse_binary",
    "write_text",
    "write_binary",
    "atomic_write_bytes",
    "looks_like_text_path",
    "UnknownFieldWarning",
]

PathLike = Union[str, "os.PathLike[str]"]
M = TypeVar("M", bound=_message.Message)

_LINE_COL = re.compile(r"^(\d+):(\d+) : (?:'.*?': )?", re.S)


def parse_text(text: str, message: M, path: str = "<string>") -> M:
    """Merge text-format ``text`` into ``message``; errors carry path:line:col."""
    try:
        merge_text(text, message, path)  # unknown (fork) fields: a warning each, see tolerant.py
    except text_format.ParseError as exc:
        line, col = exc.GetLine(), exc.GetColumn()
        detail = _LINE_COL.sub("", str(exc))
        raise ProtoSyntaxError(f"{path}:{line}:{col}: {detail}", path, line, col) from None
    return message


def read_text(path: PathLike, message: M) -> M:
    """Read a text-format proto file into ``message``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProtoError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise ProtoError(f"{p}: is a directory, expected a text proto file") from None
    except UnicodeDecodeError as exc:
        raise ProtoError(
            f"{p}: not a text file ({exc.reason} at byte {exc.start}); "
            "is it a binary .caffemodel given where a .prototxt is expected?"
        ) from None
    return parse_text(text, message, str(p))


def parse_binary(data: bytes, message: M, what: str = "<bytes>") -> M:
    try:
        message.ParseFromString(data)
    except _message.DecodeError as exc:
        raise WeightsError(
            f"{what}: cannot parse as binary {message.DESCRIPTOR.name} "
            f"({len(data)} bytes; truncated or not a binary proto file?): {exc}"
        ) from None
    if message.DESCRIPTOR.file.package == "caffe":  # not the partial caffe_raw views
        check_binary(data, message.DESCRIPTOR, what)
    return message


def read_binary(path: PathLike, message: M) -> M:
    """Read a binary proto file (``.caffemodel``, ``.solverstate``, ...)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise WeightsError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise WeightsError(f"{p}: is a directory, expected a binary proto file") from None
    if not data:
        raise WeightsError(f"{p}: file is empty")
    return parse_binary(data, message, str(p))


def atomic_write_bytes(path: PathLike, data: bytes, what: str = "") -> None:
    """Write ``data`` to ``path`` via a temporary file and an atomic rename
    (:func:`caffe_compat.atomic.write_bytes`: errors name ``path``)."""
    from ..atomic import write_bytes

    write_bytes(path, data, what)


def write_binary(path: PathLike, message: _message.Message, what: str = "") -> None:
    atomic_write_bytes(path, message.SerializeToString(), what)


def write_text(path: PathLike, message: _message.Message, what: str = "") -> None:
    atomic_write_bytes(path, text_format.MessageToString(message).encode("utf-8"), what)


def looks_like_text_path(path: PathLike) -> bool:
    return str(path).endswith((".prototxt", ".pbtxt", ".txt"))
