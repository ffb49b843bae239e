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

    @staticmethod
    def _kept(records: Iterator[tuple[bytes, bytes]], rank: int,
              count: int) -> Generator[tuple[bytes, bytes], None, None]:
        for offset, record in enumerate(records):
            if offset % count == rank:
                yield record

    def _what(self, key: bytes) -> str:
        return f'{self.where}: {self.reader.backend.upper()} "{self.reader.path}" record {key!r}'

    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        datums, whats = [], []
        for _ in range(self.batch_size):
            key, value = next(self._records)
            whats.append(self._what(key))
            datums.append(parse_datum(value, whats[-1]))
        batch = datums_to_batch(datums, self.flag, whats)
        data = self.transformer.transform(batch)
        labels = np.array([d.label for d in datums], dtype=np.float32)
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
