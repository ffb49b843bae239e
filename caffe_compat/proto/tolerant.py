"""Tolerant reading of files that carry fields our schema does not know.

Caffe forks add fields to ``caffe.proto`` (Intel's ``engine: MKLDNN``,
SSD's ``transform_param { resize_param { ... } }``, ...). Protobuf's text
parser rejects a prototxt holding one, and its binary parser keeps an unknown
field silently. Here both readers go on with one
:class:`UnknownFieldWarning` per unknown field, naming the field, the message
it sits in, and where it is: ``file:line:column`` for text, the field number,
wire type and byte offset (and the layer) for binary files. In strict mode
(:func:`caffe_compat.set_strict` or ``CAFFE_COMPAT_STRICT=1``) the first one
raises :class:`~caffe_compat.errors.ProtoError` instead.

Unknown values of an ``engine`` field (Intel's ``engine: MKL2017``/``MKLDNN``)
are tolerated the same way: the field is left unset (Caffe's default engine),
with a warning. Any other unknown enum value stays an error: ``pool:
MAXIMUM`` or a V1 layer ``type: REVERSE`` would silently change what the net
computes. So does an unknown field one edit away from a field of its message
(``tpye`` for ``type``): a typo, not a fork's field.

A binary field whose number our schema knows with another wire type counts as
unknown (protobuf would drop it silently). A fork field that reuses a number
of ours with the *same* wire type cannot be told apart from ours and reads as
ours (e.g. some forks' ``ceil_mode = 13`` reads as upstream's ``round_mode``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from google.protobuf import text_format

from ..errors import ProtoError
from .wire import skip, varint

__all__ = ["UnknownFieldWarning", "UnknownField", "merge_text", "check_binary", "scan_binary"]

_FD = _descriptor.FieldDescriptor


class UnknownFieldWarning(UserWarning):
    """A field the schema does not know was skipped while reading a file."""


@dataclass(frozen=True)
class UnknownField:
    message: str  # full name of the message holding it
    name: str  # field name (text) or number (binary)
    where: str  # "path:line:col", or "path: byte N"
    detail: str = ""
    value: str | None = None  # an unknown enum value of a known field

    def text(self) -> str:
        if self.value is not None:
            return (f'{self.where}: unknown value {self.value} of field "{self.name}" in '
                    f"{self.message}{self.detail}")
        return f'{self.where}: unknown field "{self.name}" in {self.message}{self.detail}'


def _strict() -> bool:
    from ..mode import is_strict

    return is_strict()


def _report(found: Sequence[UnknownField], hint_strict: bool = True) -> None:
    if not found:
        return
    if _strict():
        raise ProtoError(found[0].text() + " (strict mode: unknown fields are errors)")
    tail = (" was ignored (a field of a Caffe fork caffe_compat does not implement? upstream Caffe "
            "would refuse the file; caffe_compat.set_strict(True) or CAFFE_COMPAT_STRICT=1 makes this "
            "an error)")
    for item in found:
        warnings.warn(item.text() + tail, UnknownFieldWarning, stacklevel=4)


# ----------------------------------------------------------------- text
class _TolerantParser(text_format._Parser):  # noqa: SLF001  (protobuf's parser, hooked)
    """protobuf's text parser, recording the unknown fields it skips."""

    def __init__(self, path: str) -> None:
        super().__init__(allow_unknown_field=True)
        self.path = path
        self.found: list[UnknownField] = []

    def _where(self, tokenizer) -> str:  # type: ignore[no-untyped-def]
        line = getattr(tokenizer, "_line", -1) + 1
        col = getattr(tokenizer, "_column", -1) + 1
        return f"{self.path}:{line}:{col}"

    def _MergeField(self, tokenizer, message):  # type: ignore[no-untyped-def]  # noqa: N802
        name = tokenizer.token
        fields = message.DESCRIPTOR.fields_by_name
        if name and name != "[" and name not in fields:
            typo = _typo_of(name, fields)
            if typo is not None:  # a misspelt field of ours, not a fork's: still an error
                raise tokenizer.ParseError(
                    f'Message type "{message.DESCRIPTOR.full_name}" has no field named "{name}" '
                    f'(did you mean "{typo}"?)')
            self.found.append(UnknownField(message.DESCRIPTOR.full_name, name, self._where(tokenizer)))
        return super()._MergeField(tokenizer, message)

    def _MergeScalarField(self, tokenizer, message, field):  # type: ignore[no-untyped-def]  # noqa: N802
        if field.type == _FD.TYPE_ENUM and field.name == "engine":
            token = tokenizer.token
            values = field.enum_type
            known = token in values.values_by_name
            if not known:
                try:
                    known = int(token, 0) in values.values_by_number
                except ValueError:
                    known = False
            if not known:
                self.found.append(UnknownField(
                    message.DESCRIPTOR.full_name, field.name, self._where(tokenizer),
                    f" (known: {', '.join(values.values_by_name)})", value=token))
                tokenizer.NextToken()
                return None
        return super()._MergeScalarField(tokenizer, message, field)


def _typo_of(name: str, known: Sequence[str]) -> str | None:
    """The known field ``name`` is one edit away from (a swap, a missing, extra or wrong
    letter), if any: ``tpye`` is a typo of ``type``; a fork's field is not one edit from ours."""
    if len(name) < 4:
        return None
    for cand in known:
        if abs(len(cand) - len(name)) > 1:
            continue
        if len(cand) == len(name):
            diff = [i for i in range(len(name)) if name[i] != cand[i]]
            if len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and name[diff[0]] == cand[diff[1]] and name[diff[1]] == cand[diff[0]]):
                return cand
        else:
            short, long_ = (name, cand) if len(name) < len(cand) else (cand, name)
            if any(long_[:i] + long_[i + 1:] == short for i in range(len(long_))):
                return cand
    return None


def merge_text(text: str, message: _message.Message, path: str) -> None:
    """``text_format.Merge``, skipping unknown fields with a warning each.

    Syntax errors still raise ``text_format.ParseError``; in strict mode an
    unknown field raises it too (protobuf's own message and position).
    """
    if _strict():
        text_format.Merge(text, message)
        return
    parser = _TolerantParser(path)
    parser.MergeLines(text.split("\n"), message)
    _report(parser.found)


# --------------------------------------------------------------- binary
_WIRE = {  # field type -> the wire type protobuf writes it with
    _FD.TYPE_DOUBLE: 1, _FD.TYPE_FIXED64: 1, _FD.TYPE_SFIXED64: 1,
    _FD.TYPE_FLOAT: 5, _FD.TYPE_FIXED32: 5, _FD.TYPE_SFIXED32: 5,
    _FD.TYPE_STRING: 2, _FD.TYPE_BYTES: 2, _FD.TYPE_MESSAGE: 2, _FD.TYPE_GROUP: 3,
}
_WIRE_NAMES = {0: "varint", 1: "64-bit", 2: "length-delimited", 3: "group", 5: "32-bit"}


def _layer_name(buf: memoryview, start: int, end: int, number: int) -> str | None:
    """The string field ``number`` of the message in buf[start:end] (a layer's name)."""
    pos = start
    while pos < end:
        key, pos = varint(buf, pos, end)
        wire = key & 7
        if key >> 3 == number and wire == 2:
            n, pos = varint(buf, pos, end)
            return bytes(buf[pos:pos + n]).decode("utf-8", "replace")
        pos = skip(buf, pos, end, wire)
    return None


_NAME_FIELD = {"caffe.LayerParameter": 1, "caffe.V1LayerParameter": 4, "caffe.V0LayerParameter": 1}


def scan_binary(data: bytes, desc: _descriptor.Descriptor, what: str) -> list[UnknownField]:
    """Unknown fields of a serialized ``desc`` message (values are skipped by length)."""
    found: list[UnknownField] = []
    try:
        _walk(memoryview(data), desc, 0, len(data), "", what, found)
    except (ValueError, IndexError):
        pass  # malformed: the protobuf parser reports it
    return found


def _walk(buf: memoryview, d: _descriptor.Descriptor, start: int, end: int, context: str, what: str,
          found: list[UnknownField]) -> None:
    # A module-level function, not a closure: a closure that calls itself is a reference
    # cycle, which kept ``buf`` and the whole file (233 MB for AlexNet) alive until the
    # next garbage collection.
    by_number = d.fields_by_number
    name_no = _NAME_FIELD.get(d.full_name)
    if name_no is not None:
        layer = _layer_name(buf, start, end, name_no)
        if layer is not None:
            context = f' (layer "{layer}")'
    pos = start
    while pos < end:
        at = pos
        key, pos = varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        field = by_number.get(number)
        expected = None
        if field is not None:
            expected = _WIRE.get(field.type, 0)
            if wire != expected and not (wire == 2 and _is_packable(field)):
                expected = -1
        if field is None or expected == -1:
            detail = f" ({_WIRE_NAMES.get(wire, wire)})"
            if field is not None:
                detail = (f" (wire type {_WIRE_NAMES.get(wire, wire)}; our field {field.name} is "
                          f"{_WIRE_NAMES.get(_WIRE.get(field.type, 0))})")
            found.append(UnknownField(d.full_name, str(number), f"{what}: byte {at}",
                                      detail + context))
            pos = skip(buf, pos, end, wire)
            continue
        if field.type == _FD.TYPE_MESSAGE:
            n, pos = varint(buf, pos, end)
            _walk(buf, field.message_type, pos, pos + n, context, what, found)
            pos += n
        else:
            pos = skip(buf, pos, end, wire)


def _is_packable(field: _descriptor.FieldDescriptor) -> bool:
    repeated = (field.is_repeated if hasattr(field, "is_repeated")  # protobuf >= 5
                else field.label == _FD.LABEL_REPEATED)
    return repeated and field.type not in (_FD.TYPE_STRING, _FD.TYPE_BYTES, _FD.TYPE_MESSAGE,
                                           _FD.TYPE_GROUP)


def check_binary(data: bytes, desc: _descriptor.Descriptor, what: str) -> None:
    """Warn about (strict: raise on) fields of a binary ``desc`` file our schema lacks."""
    _report(scan_binary(data, desc, what))
