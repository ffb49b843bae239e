"""Caffe's data machinery: Datum codec, image decoding, databases, transformer, prefetching.

* :mod:`.datum` — Datum records ↔ arrays (raw bytes, float_data, encoded images);
* :mod:`.image` — OpenCV-compatible image decode / resize / encode;
* :mod:`.db` — LMDB and LevelDB readers and writers;
* :mod:`.transformer` — Caffe's DataTransformer (scale, mean, crop, mirror);
* :mod:`.sources` — image lists, HDF5 lists, window files;
* :mod:`.prefetch` — the background thread that keeps batches ready.
"""

from __future__ import annotations

from .datum import array_to_datum, datum_to_array, encoded_datum, image_to_datum, parse_datum
from .db import DBReader, DBWriter, backend_name
from .image import decode, encode, read_image, resize_linear
from .prefetch import Prefetcher
from .transformer import DataTransformer, load_mean_file

__all__ = [
    "DBReader",
    "DBWriter",
    "DataTransformer",
    "Prefetcher",
    "array_to_datum",
    "backend_name",
    "datum_to_array",
    "decode",
    "encode",
    "encoded_datum",
    "image_to_datum",
    "load_mean_file",
    "parse_datum",
    "read_image",
    "resize_linear",
]
