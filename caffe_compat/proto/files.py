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
    "decode_text",
    "check_nesting",
    "MAX_NESTING",
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

#: Deepest nesting of ``{ }`` / ``< >`` read. Caffe's schema nests at most about
#: 10 levels (a solver's net_param ... filler); deeper files come only from
#: unknown fields, which the tolerant reader skips recursively. protobuf's C++
#: text parser has no limit (it overflows the stack at some 10,000 levels);
#: its binary parser stops at 100, and so do we, with the place named.
MAX_NESTING = 100
_TOKENS = re.compile(r'"(?:[^"\\\n]|\\.)*"?|\'(?:[^\'\\\n]|\\.)*\'?|#[^\n]*|[{<]|[}>]|\n')


def check_nesting(text: str, path: str, limit: int = MAX_NESTING) -> None:
    """Raise :class:`ProtoSyntaxError` at the first brace nested deeper than ``limit``."""
    if text.count("{") + text.count("<") <= limit:
        return
    depth, line, line_start = 0, 1, 0
    for m in _TOKENS.finditer(text):
        tok = m.group()
        if tok == "\n":
            line, line_start = line + 1, m.end()
        elif tok in "{<":
            depth += 1
            if depth > limit:
                col = m.start() - line_start + 1
                raise ProtoSyntaxError(
                    f"{path}:{line}:{col}: messages nested deeper than {limit} levels "
                    "(Caffe's own files nest about 10; is the file corrupt?)", path, line, col)
        elif tok in "}>":
            depth = max(depth - 1, 0)


def parse_text(text: str, message: M, path: str = "<string>") -> M:
    """Merge text-format ``text`` into ``message``; errors carry path:line:col."""
    check_nesting(text, path)
    try:
        merge_text(text, message, path)  # unknown (fork) fields: a warning each, see tolerant.py
    except text_format.ParseError as exc:
        line, col = exc.GetLine(), exc.GetColumn()
        detail = _LINE_COL.sub("", str(exc))
        raise ProtoSyntaxError(f"{path}:{line}:{col}: {detail}", path, line, col) from None
    except RecursionError:  # called from a very deep stack: still no raw RecursionError
        raise ProtoSyntaxError(f"{path}: messages nested too deeply for the text parser", path) from None
    return message


def _comment_start(line: bytes) -> int:
    """Byte index of the ``#`` that starts a comment in ``line`` (outside quotes), or its length."""
    quote = 0
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if quote:
            if c == 0x5C:  # backslash: skip the escaped byte
                i += 1
            elif c == quote:
                quote = 0
        elif c in (0x22, 0x27):
            quote = c
        elif c == 0x23:
            return i
        i += 1
    return n


def decode_text(data: bytes, path: str) -> str:
    """The text of a prototxt: UTF-8, except that comments may hold any bytes.

    Old European files often have Latin-1 letters in comments, and Caffe's C++
    parser skips comments as bytes. Bytes that are not UTF-8 outside a comment
    (a Latin-1 layer name, say) are a :class:`ProtoSyntaxError` at their line
    and column; a file with NUL bytes is taken for a binary file.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as first:
        if b"\0" in data:
            raise ProtoError(
                f"{path}: not a text file ({first.reason} at byte {first.start}); "
                "is it a binary .caffemodel given where a .prototxt is expected?"
            ) from None
    lines = []
    for number, line in enumerate(data.split(b"\n"), 1):
        try:
            lines.append(line.decode("utf-8"))
            continue
        except UnicodeDecodeError:
            pass
        end = _comment_start(line)
        try:
            code = line[:end].decode("utf-8")
        except UnicodeDecodeError as exc:
            col = len(line[:exc.start].decode("utf-8", "replace")) + 1
            raise ProtoSyntaxError(
                f"{path}:{number}:{col}: byte 0x{line[exc.start]:02x} is not UTF-8 (prototxt files are "
                "UTF-8 outside comments; re-save the file as UTF-8)", path, number, col) from None
        lines.append(code + line[end:].decode("utf-8", "replace"))
    return "\n".join(lines)


def read_text(path: PathLike, message: M) -> M:
    """Read a text-format proto file into ``message``."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ProtoError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise ProtoError(f"{p}: is a directory, expected a text proto file") from None
    except OSError as exc:
        raise ProtoError(f"{p}: cannot read: {exc.strerror or exc}") from None
    return parse_text(decode_text(data, str(p)), message, str(p))


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
