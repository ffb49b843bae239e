"""One exception hierarchy for everything caffe_compat reports.

Where Caffe would ``LOG(FATAL)`` (and abort the interpreter) we raise one of
these instead. Each class also derives from the built-in exception a Python
user would expect to catch (``ValueError`` for bad values, ``KeyError`` for
unknown names, ...), so ``except ValueError`` keeps working in old scripts.

Messages follow one pattern: *where* (file:line:column, or the layer as
``Type layer "name"``, or the blob), *what was expected* and *what was
received*.
"""

from __future__ import annotations

__all__ = [
    "CaffeCompatError",
    "ProtoError",
    "ProtoSyntaxError",
    "UnknownLayerTypeError",
    "NetError",
    "LayerError",
    "ShapeError",
    "BlobNotFoundError",
    "BlobReleasedError",
    "WeightsError",
    "SolverError",
    "DataError",
    "UnsupportedError",
    "layer_where",
]


class CaffeCompatError(Exception):
    """Base class of every error caffe_compat raises on purpose."""


class ProtoError(CaffeCompatError, ValueError):
    """A prototxt / binary proto file cannot be read or is inconsistent."""


class ProtoSyntaxError(ProtoError):
    """Text-format syntax error; the message starts with ``file:line:column``."""

    def __init__(self, message: str, path: str | None = None,
                 line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.column = column


class UnknownLayerTypeError(CaffeCompatError, KeyError):
    """A layer ``type`` that no registered layer (or Python layer) provides."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class NetError(CaffeCompatError, ValueError):
    """The net's wiring is wrong: missing bottoms, duplicate tops, bad rules."""


class LayerError(CaffeCompatError, ValueError):
    """A layer's parameters or inputs are invalid."""


class ShapeError(LayerError):
    """Blob shapes do not fit what a layer expects."""


class BlobNotFoundError(CaffeCompatError, KeyError):
    """A blob or layer name that the net does not have."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class BlobReleasedError(CaffeCompatError, RuntimeError):
    """A blob whose data a lean training step released (opt-in) was read."""


class WeightsError(CaffeCompatError, ValueError):
    """A weights / snapshot file is missing, truncated or does not fit the net."""


class SolverError(CaffeCompatError, ValueError):
    """A solver definition Caffe would reject."""


class DataError(CaffeCompatError, ValueError):
    """A data source (LMDB, image list, HDF5 file) is missing or corrupt."""


class UnsupportedError(CaffeCompatError, NotImplementedError):
    """A Caffe feature caffe_compat does not provide (yet)."""


def layer_where(type_: str, name: str) -> str:
    """The canonical way messages name a layer: ``Pooling layer "pool1"``."""
    return f'{type_} layer "{name}"'
