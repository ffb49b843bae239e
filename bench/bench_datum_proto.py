"""Benchmark: Datum ``float_data`` through the protobuf API vs hand-made wire bytes.

``caffe_compat.io.array_to_datum`` writes a float array into ``Datum.float_data`` by
parsing one hand-made packed run (tag, varint length, little-endian floats); this
compares it with the protobuf API on the installed runtime (``float_data.extend``
of a list or of a numpy array). For reading, the API (``np.array(datum.float_data)``,
what ``datum_to_array`` uses) is compared with parsing the serialized fixed32
records with ``np.frombuffer`` (what it did before protobuf's upb runtime).
Alternating rounds, for a CIFAR image, an ImageNet crop and a mean image; every
way is checked to give the same bytes and the same array first.

    python bench/bench_datum_proto.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from google.protobuf import __version__ as pb_version  # noqa: E402
from google.protobuf.internal import api_implementation  # noqa: E402

from caffe_compat import io as caffe_io  # noqa: E402
from caffe_compat.proto import caffe_pb2  # noqa: E402

SHAPES = {"CIFAR 3x32x32": (3, 32, 32), "crop 3x227x227": (3, 227, 227), "mean 3x256x256": (3, 256, 256)}


def api_encode(arr: np.ndarray) -> caffe_pb2.Datum:
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = arr.shape
    datum.float_data.extend(np.ascontiguousarray(arr, dtype=np.float32).ravel().tolist())
    return datum


def api_encode_numpy(arr: np.ndarray) -> caffe_pb2.Datum:
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = arr.shape
    datum.float_data.extend(np.ascontiguousarray(arr, dtype=np.float32).ravel())
    return datum


def records_decode(datum: caffe_pb2.Datum) -> np.ndarray:
    """float_data from the wire: a copy holding only float_data serializes to (tag, fixed32) pairs."""
    only = caffe_pb2.Datum()
    only.CopyFrom(datum)
    for name in ("channels", "height", "width", "data", "label", "encoded"):
        only.ClearField(name)
    records = np.frombuffer(only.SerializeToString(), dtype=[("tag", "u1"), ("value", "<f4")])
    assert (records["tag"] == (6 << 3) | 5).all()
    return records["value"].astype(np.float64).reshape(datum.channels, datum.height, datum.width)


def api_decode(datum: caffe_pb2.Datum) -> np.ndarray:
    return np.array(datum.float_data, dtype=np.float64).reshape(datum.channels, datum.height, datum.width)


def timed(fn: Callable[[], object], min_time: float = 0.2) -> float:
    """Seconds per call, over at least ``min_time`` seconds."""
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    print(f"protobuf {pb_version} ({api_implementation.Type()} backend)\n")
    print(f"{'':16s} {'encode: packed':>15s} {'API list':>10s} {'API numpy':>10s}   "
          f"{'decode: records':>16s} {'API':>10s}")
    for name, shape in SHAPES.items():
        arr = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        ours = caffe_io.array_to_datum(arr)
        for other in (api_encode(arr), api_encode_numpy(arr)):
            assert other.SerializeToString() == ours.SerializeToString()
        np.testing.assert_array_equal(api_decode(ours), caffe_io.datum_to_array(ours))
        np.testing.assert_array_equal(records_decode(ours), caffe_io.datum_to_array(ours))
        contenders = {
            "packed": lambda: caffe_io.array_to_datum(arr),
            "api_list": lambda: api_encode(arr),
            "api_numpy": lambda: api_encode_numpy(arr),
            "bytes": lambda: records_decode(ours),
            "api_decode": lambda: api_decode(ours),
        }
        results: dict[str, list[float]] = {k: [] for k in contenders}
        for r in range(args.rounds):
            for k in (list(contenders) if r % 2 == 0 else list(contenders)[::-1]):
                results[k].append(timed(contenders[k]))
        ms = {k: 1000 * float(np.median(v)) for k, v in results.items()}
        print(f"{name:16s} {ms['packed']:12.3f} ms {ms['api_list']:7.3f} ms {ms['api_numpy']:7.3f} ms   "
              f"{ms['bytes']:13.3f} ms {ms['api_decode']:7.3f} ms   "
              f"(API / hand-made: encode {min(ms['api_list'], ms['api_numpy']) / ms['packed']:.1f}x, "
              f"decode {ms['api_decode'] / ms['bytes']:.2f}x)")


if __name__ == "__main__":
    main()
