"""Data: batches of Datum records from LMDB or LevelDB (``data_layer.cpp``).

Bottoms: none. Tops: data (N, C, H, W) float32 after ``transform_param``,
and optionally label (N,) holding each Datum's label. N = ``batch_size``;
C, H, W come from the first Datum of each batch (raw, ``float_data`` or
encoded JPEG/PNG decoded as OpenCV does, BGR). Records are read in key order
and start again at the first after the last. A background thread keeps
``data_param.prefetch`` batches ready. In data-parallel training (more than
one solver) each TRAIN reader keeps every solver_count-th record.

Differences from Caffe: ``rand_skip`` is honoured (skips ``rand() %
rand_skip`` records at the start, as Caffe did before its data reader was
rewritten; Caffe 1.0 accepts the field and ignores it); a missing or empty
database, a record that is not a Datum, or a Datum whose shape changes
inside a batch is a DataError naming the database and record key.
"""

from __future__ import annotations

import logging
import threading
from typing import Generator, Iterator

import numpy as np

from ... import mode
from ...data.datum import datum_image_flag, datums_to_batch, parse_datum
from ...data.db import DBReader
from ...data.transformer import DataTransformer
from ...errors import DataError
from ...proto import caffe_pb2
from ..base import Shape
from ..registry import register_layer
from ._base import PrefetchingDataLayer

_log = logging.getLogger("caffe_compat")


_CHUNK = 1024  # datums decoded at once


class _Stopped(Exception):
    """The prefetcher was closed in the middle of a batch."""


class _DBSource:
    """Runs in the prefetch thread: read, decode and transform one batch."""

    def __init__(self, reader: DBReader, batch_size: int, transformer: DataTransformer,
                 flag: int, skip: int, keep: tuple[int, int], where: str) -> None:
        self.reader = reader
        self.batch_size = batch_size
        self.transformer = transformer
        self.flag = flag
        self.where = where
        self._records: Generator[tuple[bytes, bytes], None, None] = self._kept(reader.records(skip), *keep)
        self.stop_requested: threading.Event | None = None  # set by the Prefetcher

    @staticmethod
    def _kept(records: Iterator[tuple[bytes, bytes]], rank: int,
              count: int) -> Generator[tuple[bytes, bytes], None, None]:
        for offset, record in enumerate(records):
            if offset % count == rank:
                yield record

    def _what(self, key: bytes) -> str:
        return f'{self.where}: {self.reader.backend.upper()} "{self.reader.path}" record {key!r}'

    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        # A chunk at a time into the batch array, as Caffe fills its prefetch
        # buffer datum by datum: memory stays at the batch's own size however
        # large batch_size is, and a close() stops a long batch between chunks.
        data: np.ndarray | None = None
        labels = np.empty(self.batch_size, dtype=np.float32)
        for start in range(0, self.batch_size, _CHUNK):
            if self.stop_requested is not None and self.stop_requested.is_set():
                raise _Stopped()
            datums, whats = [], []
            for _ in range(min(_CHUNK, self.batch_size - start)):
                key, value = next(self._records)
                whats.append(self._what(key))
                datums.append(parse_datum(value, whats[-1]))
            part = self.transformer.transform(datums_to_batch(datums, self.flag, whats))
            if data is None:
                data = np.empty((self.batch_size,) + part.shape[1:], dtype=np.float32)
            elif part.shape[1:] != data.shape[1:]:
                raise DataError(f"{whats[0]}: item of shape {list(part.shape[1:])} in a batch whose first "
                                f"item has shape {list(data.shape[1:])} (all items of a batch must match)")
            data[start:start + len(datums)] = part
            labels[start:start + len(datums)] = [d.label for d in datums]
        assert data is not None
        return data, labels

    def close(self) -> None:
        self._records.close()  # ends the read transaction before the database closes
        self.reader.close()


@register_layer("Data")
class Data(PrefetchingDataLayer):
    def make_source(self) -> tuple[_DBSource, list[Shape]]:
        dp = self.layer_param.data_param
        if dp.batch_size <= 0:
            raise self.error("data_param.batch_size must be > 0", DataError)
        if not dp.source:
            raise self.error("data_param.source is not set", DataError)
        tp = self.transformer
        flag = datum_image_flag(tp.force_color, tp.force_gray)
        reader = DBReader(self.resolve(dp.source), dp.backend)
        try:
            key, value = reader.first()
            what = f'{self.where}: {reader.backend.upper()} "{reader.path}" record {key!r}'
            first = datums_to_batch([parse_datum(value, what)], flag, [what])
            shape = tp.infer_shape(first.shape[1:])
            skip = 0
            if dp.rand_skip:
                skip = int(self.rng.integers(2**32)) % dp.rand_skip
                _log.info("Skipping first %d data points.", skip)
            keep = (0, 1)
            if self.phase == caffe_pb2.TRAIN and mode.solver_count() > 1:
                keep = (mode.solver_rank(), mode.solver_count())
            source = _DBSource(reader, dp.batch_size, tp, flag, skip, keep, self.where)
        except BaseException:
            reader.close()
            raise
        _log.info("output data size: %d,%d,%d,%d", dp.batch_size, *shape[1:])
        return source, [(dp.batch_size,) + tuple(shape[1:]), (dp.batch_size,)]
