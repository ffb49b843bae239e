"""``caffe-compat compute_image_mean``: Caffe's ``tools/compute_image_mean.cpp``.

    caffe-compat compute_image_mean [--backend=lmdb|leveldb] INPUT_DB [OUTPUT_FILE]

Averages every Datum of the database (encoded ones decoded as stored, raw
bytes or float_data) into a 1 × C × H × W BlobProto, written to OUTPUT_FILE
as a binaryproto (``transform_param { mean_file: ... }`` reads it), and logs
the mean of each channel (``mean_value channel [c]: v``). As in Caffe the
sums are accumulated in float32, one image at a time, then divided by the
count, so the file has the same values as Caffe's.

Differences from Caffe: none known; a Datum of another size is a DataError
naming its key.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
from tqdm import tqdm

from ..cli import command
from ..data.datum import datum_to_array, parse_datum
from ..data.db import DBReader
from ..errors import DataError
from ..proto import caffe_pb2
from ..proto.files import write_binary

__all__ = ["compute_image_mean"]

_log = logging.getLogger("caffe_compat")


def compute_image_mean(db_path: str, output: str | None = None, backend: str = "lmdb",
                       progress: bool | None = None) -> np.ndarray:
    """The (1, C, H, W) float32 mean of a database's Datums (written to ``output``)."""
    with DBReader(db_path, backend) as reader:
        total = None
        count = 0
        for key, value in tqdm(reader, desc="compute_image_mean", unit="img",
                               total=len(reader) if reader.backend == "lmdb" else None,
                               disable=None if progress is None else not progress):
            what = f'{reader.backend.upper()} "{db_path}" record {key!r}'
            arr = datum_to_array(parse_datum(value, what), what=what)
            if total is None:
                total = np.zeros(arr.shape, dtype=np.float32)
                _log.info("Starting iteration")
            elif arr.shape != total.shape:
                raise DataError(f"{what}: item of shape {list(arr.shape)}, the first has "
                                f"{list(total.shape)}")
            total += arr  # float32 running sum, as Caffe's BlobProto holds it
            count += 1
            if count % 10000 == 0:
                _log.info("Processed %d files.", count)
        if total is None:
            raise DataError(f'{reader.backend.upper()} database "{db_path}" is empty')
    _log.info("Processed %d files.", count)
    mean = (total / np.float32(count)).astype(np.float32)[None]
    if output:
        _log.info("Write to %s", output)
        blob = caffe_pb2.BlobProto()
        blob.num, blob.channels, blob.height, blob.width = mean.shape
        blob.data.extend(mean.ravel().tolist())
        write_binary(output, blob)
    _log.info("Number of channels: %d", mean.shape[1])
    for c in range(mean.shape[1]):
        # Caffe sums a channel's values one by one in float before dividing.
        channel_sum = np.add.accumulate(mean[0, c].ravel(), dtype=np.float32)[-1]
        _log.info("mean_value channel [%d]: %g", c, channel_sum / np.float32(mean[0, c].size))
    return mean


@command("compute_image_mean", "compute the mean image of a Datum database")
def setup(parser: argparse.ArgumentParser):
    parser.usage = "caffe-compat compute_image_mean [FLAGS] INPUT_DB [OUTPUT_FILE]"
    parser.add_argument("input_db")
    parser.add_argument("output_file", nargs="?", default=None)
    parser.add_argument("--backend", default="lmdb", choices=("lmdb", "leveldb"),
                        help="the backend of the database (default lmdb)")

    def run(args: argparse.Namespace) -> int:
        compute_image_mean(args.input_db, args.output_file, args.backend)
        return 0

    return run
