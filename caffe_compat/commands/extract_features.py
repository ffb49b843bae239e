"""``caffe-compat extract_features``: Caffe's ``tools/extract_features.cpp``.

    caffe-compat extract_features pretrained_net_param feature_extraction_proto_file \\
        extract_feature_blob_name1[,name2,...] save_feature_dataset_name1[,name2,...] \\
        num_mini_batches db_type [CPU/GPU] [DEVICE_ID=0]

Builds the net in TEST phase, loads the weights, runs ``num_mini_batches``
forwards (its data layer supplies the inputs) and stores every item of each
named blob as a ``float_data`` Datum (channels/height/width = the blob's
legacy axes 1-3) under the key ``%010d`` (the item's index) in a new
database per blob (db_type ``lmdb`` or ``leveldb``).

Differences from Caffe: "GPU" falls back to the CPU with a warning when
CUDA is not available.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
from tqdm import tqdm

from .. import mode
from ..cli import command
from ..data.db import DBWriter
from ..errors import BlobNotFoundError, CaffeCompatError
from ..net import TEST, Net
from ..proto import caffe_pb2

__all__ = ["extract_features"]

_log = logging.getLogger("caffe_compat")


def _legacy(shape: tuple[int, ...], name: str) -> tuple[int, int, int]:
    if len(shape) > 4:
        raise CaffeCompatError(f'blob "{name}" has {len(shape)} axes; extract_features stores '
                               "legacy blobs of at most 4 axes")
    full = tuple(shape) + (1,) * (4 - len(shape))
    return full[1], full[2], full[3]


def extract_features(weights: str, model: str, blob_names: list[str], dataset_names: list[str],
                     num_mini_batches: int, db_type: str, progress: bool | None = None) -> list[int]:
    """Write the features; returns how many items each database received."""
    if len(blob_names) != len(dataset_names):
        raise CaffeCompatError(" the number of blob names and dataset names must be equal: "
                               f"{len(blob_names)} vs {len(dataset_names)}")
    net = Net(model, TEST, weights=weights)
    for name in blob_names:
        if name not in net.blobs:
            raise BlobNotFoundError(f"Unknown feature blob name {name} in the network {model}")
    dbs = []
    try:
        for name in dataset_names:
            _log.info("Opening dataset %s", name)
            dbs.append(DBWriter(name, db_type))
        _log.info("Extracting Features")
        counts = [0] * len(blob_names)
        for _ in tqdm(range(num_mini_batches), desc="extract_features", unit="batch",
                      disable=None if progress is None else not progress):
            net.forward()
            for i, name in enumerate(blob_names):
                data = net.blobs[name].data
                channels, height, width = _legacy(data.shape, name)
                flat = np.asarray(data, dtype=np.float32).reshape(data.shape[0], -1)
                for row in flat:
                    datum = caffe_pb2.Datum(channels=channels, height=height, width=width)
                    datum.float_data.extend(row.tolist())
                    dbs[i].put(f"{counts[i]:010d}", datum.SerializeToString())
                    counts[i] += 1
                    if counts[i] % 1000 == 0:
                        dbs[i].commit()
                        _log.info("Extracted features of %d query images for feature blob %s",
                                  counts[i], name)
        for i, name in enumerate(blob_names):
            _log.info("Extracted features of %d query images for feature blob %s", counts[i], name)
        for db in dbs:
            db.close()
    except BaseException:
        for db in dbs:
            db.abort()  # a failed run leaves no partial database behind
        raise
    return counts


@command("extract_features", "store blobs of a net's forward passes in databases",
         python_layers=True)
def setup(parser: argparse.ArgumentParser):
    parser.usage = ("caffe-compat extract_features pretrained_net_param feature_extraction_proto_file "
                    "extract_feature_blob_name1[,name2,...] save_feature_dataset_name1[,name2,...] "
                    "num_mini_batches db_type [CPU/GPU] [DEVICE_ID=0]")
    parser.add_argument("pretrained_net_param")
    parser.add_argument("feature_extraction_proto_file")
    parser.add_argument("blob_names", help="blob names separated by ','")
    parser.add_argument("dataset_names", help="database names separated by ','")
    parser.add_argument("num_mini_batches", type=int)
    parser.add_argument("db_type", help="lmdb or leveldb")
    parser.add_argument("mode", nargs="?", default="CPU", help="CPU or GPU")
    parser.add_argument("device_id", nargs="?", type=int, default=0)

    def run(args: argparse.Namespace) -> int:
        if args.mode == "GPU":
            if args.device_id < 0:
                raise CaffeCompatError(f"DEVICE_ID must be >= 0, got {args.device_id}")
            _log.info("Using GPU, device %d", args.device_id)
            mode.set_device(args.device_id)
            mode.set_mode_gpu()
        else:
            _log.info("Using CPU")
            mode.set_mode_cpu()
        extract_features(args.pretrained_net_param, args.feature_extraction_proto_file,
                         args.blob_names.split(","), args.dataset_names.split(","),
                         args.num_mini_batches, args.db_type)
        return 0

    return run
