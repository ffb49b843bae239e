"""The protobuf wire format at the level of field boundaries.

Protobuf's own parser is the reader of record for every file; this module only
finds where fields lie in a serialized message, for the two jobs the parser
does not do: naming the byte offset of a field our schema lacks
(:mod:`.tolerant`) and handing a large packed payload to numpy without a copy
(:mod:`caffe_compat.weights`; upb copies a ``bytes`` field once while parsing and
again on every access).
"""

from __future__ import annotations

from typing import Iterator

__all__ = ["varint", "skip", "fields"]


def varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    """The base-128 varint at ``pos`` and the position after it."""
    result = shift = 0
    while True:
        if pos >= end:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise ValueError("varint too long")


def skip(buf: memoryview, pos: int, end: int, wire: int) -> int:
    """The position after a value of wire type ``wire`` that starts at ``pos``."""
    if wire == 0:
        return varint(buf, pos, end)[1]
    if wire == 1:
        return pos + 8
    if wire == 5:
        return pos + 4
    if wire == 2:
        n, pos = varint(buf, pos, end)
        return pos + n
    raise ValueError(f"unsupported wire type {wire}")


def fields(buf: memoryview, start: int, end: int) -> Iterator[tuple[int, int, int, int, int]]:
    """``(number, wire type, key start, value start, value end)`` of each field of the
    message in ``buf[start:end]``; a length-delimited value's start is past its length."""
    pos = start
    while pos < end:
        at = pos
        key, pos = varint(buf, pos, end)
        wire = key & 7
        if wire == 2:
            n, pos = varint(buf, pos, end)
            value, pos = pos, pos + n
        else:
            value, pos = pos, skip(buf, pos, end, wire)
        if pos > end:
            raise ValueError("field runs past the end of its message")
        yield key >> 3, wire, at, value, pos
