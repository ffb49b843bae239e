"""Caffe's ``Datum`` records ↔ numpy arrays (``util/io.cpp``, ``data_transformer.cpp``).

A Datum holds one (C, H, W) item and an integer label in one of three ways:

* raw bytes: ``data`` = C·H·W uint8 values in CHW order (what
  ``convert_imageset`` writes without ``--encoded``, BGR for colour images);
* ``float_data``: C·H·W float32 values (``extract_features`` writes these);
* encoded: ``encoded: true`` and ``data`` = the bytes of an image file (JPEG,
  PNG...), decoded as OpenCV decodes them (BGR, see :mod:`.image`).

Functions here never skip a bad record: sizes that do not match the stated
shape are a :class:`~caffe_compat.errors.DataError` naming the record.

Differences from Caffe: none known (Caffe reads past the end of a short
record instead of failing).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import DataError
from ..proto import caffe_pb2
from . import image

__all__ = [
    "parse_datum",
    "datum_to_array",
    "array_to_datum",
    "image_to_datum",
    "encoded_datum",
    "decode_datum_image",
    "datum_image_flag",
    "datums_to_batch",
]


def parse_datum(value: bytes, what: str = "record") -> caffe_pb2.Datum:
    datum = caffe_pb2.Datum()
    try:
        datum.ParseFromString(value)
    except Exception as exc:
        raise DataError(f"{what}: not a serialized caffe.Datum ({len(value)} bytes): {exc}") from None
    return datum


def datum_image_flag(force_color: bool = False, force_gray: bool = False) -> int:
    """The OpenCV read flag Caffe decodes encoded Datums with."""
    if force_color and force_gray:
        raise DataError("cannot set both force_color and force_gray")
    if force_color:
        return image.IMREAD_COLOR
    if force_gray:
        return image.IMREAD_GRAYSCALE
    return image.IMREAD_UNCHANGED  # DecodeDatumToCVMatNative


def decode_datum_image(datum: caffe_pb2.Datum, flag: int = image.IMREAD_UNCHANGED,
                       what: str = "record") -> np.ndarray:
    """An encoded Datum's image as OpenCV decodes it: (H, W, C) uint8."""
    if not datum.encoded:
        raise DataError(f"{what}: Datum is not encoded")
    return image.decode(datum.data, flag, what)


def datum_to_array(datum: caffe_pb2.Datum, flag: int = image.IMREAD_UNCHANGED,
                   what: str = "record") -> np.ndarray:
    """The (C, H, W) array of a Datum: uint8 for bytes, float32 for float_data."""
    if datum.encoded:
        return np.ascontiguousarray(decode_datum_image(datum, flag, what).transpose(2, 0, 1))
    shape = (datum.channels, datum.height, datum.width)
    count = shape[0] * shape[1] * shape[2]
    if datum.channels <= 0 or datum.height <= 0 or datum.width <= 0:
        raise DataError(f"{what}: Datum has shape {list(shape)}; channels, height and width must be > 0")
    if len(datum.data):
        if len(datum.data) != count:
            raise DataError(f"{what}: Datum holds {len(datum.data)} bytes but its shape "
                            f"{list(shape)} needs {count}")
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape)
    if len(datum.float_data) != count:
        raise DataError(f"{what}: Datum holds {len(datum.float_data)} float_data values but its "
                        f"shape {list(shape)} needs {count}")
    return np.asarray(datum.float_data, dtype=np.float32).reshape(shape)


def array_to_datum(arr: np.ndarray, label: int | None = None) -> caffe_pb2.Datum:
    """pycaffe's ``caffe.io.array_to_datum``: a 3-d array → raw Datum.

    uint8 arrays go to ``data`` (bytes), anything else to ``float_data``.
    """
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise ValueError("Incorrect array shape.")
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = (int(d) for d in arr.shape)
    if arr.dtype == np.uint8:
        datum.data = np.ascontiguousarray(arr).tobytes()
    else:
        datum.float_data.extend(np.asarray(arr, dtype=np.float32).ravel().tolist())
    if label is not None:
        datum.label = int(label)
    return datum


def image_to_datum(img: np.ndarray, label: int = 0) -> caffe_pb2.Datum:
    """Caffe's ``CVMatToDatum``: an (H, W, C) uint8 image → raw CHW Datum."""
    img = np.asarray(img, dtype=np.uint8)
    if img.ndim == 2:
        img = img[..., None]
    datum = array_to_datum(np.ascontiguousarray(img.transpose(2, 0, 1)), label)
    return datum


def encoded_datum(data: bytes, label: int = 0) -> caffe_pb2.Datum:
    """Caffe's ``ReadFileToDatum``: file bytes, no shape, ``encoded: true``."""
    datum = caffe_pb2.Datum()
    datum.data = bytes(data)
    datum.label = int(label)
    datum.encoded = True
    return datum


def datums_to_batch(datums: Sequence[caffe_pb2.Datum], flag: int = image.IMREAD_UNCHANGED,
                    whats: Sequence[str] | None = None) -> np.ndarray:
    """Stack Datums of one shape into an (N, C, H, W) array (uint8 or float32).

    Like Caffe, the batch takes its shape from the first Datum; a later one of
    another shape is an error naming it.
    """
    whats = whats or [f"record {i}" for i in range(len(datums))]
    first = datums[0]
    if not first.encoded and len(first.data) and all(
            not d.encoded and d.channels == first.channels and d.height == first.height
            and d.width == first.width and len(d.data) == len(first.data) for d in datums):
        one = datum_to_array(first, flag, whats[0])  # validates the size
        flat = np.frombuffer(b"".join(d.data for d in datums), dtype=np.uint8)
        return flat.reshape((len(datums),) + one.shape)
    arrays = [datum_to_array(d, flag, w) for d, w in zip(datums, whats)]
    shape, dtype = arrays[0].shape, arrays[0].dtype
    for arr, what in zip(arrays[1:], whats[1:]):
        if arr.shape != shape:
            raise DataError(f"{what}: item of shape {list(arr.shape)} in a batch whose first "
                            f"item has shape {list(shape)} (all items of a batch must match)")
        if arr.dtype != dtype:
            raise DataError(f"{what}: mixes byte data and float_data in one batch")
    return np.stack(arrays)
