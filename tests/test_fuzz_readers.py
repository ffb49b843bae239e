"""Fuzzing the two readers: prototxt text (and the net built from it) and .caffemodel binary.

The promise: whatever the bytes, reading (and building a net from what was
read) either succeeds or raises a ``CaffeCompatError``, quickly, and a build
that fails leaves no thread behind. Never another exception, a crash, a hang
or memory that grows without bound.

Mutations start from real files (LeNet's prototxt and a .caffemodel of it)
and insert, delete, replace and duplicate bytes, with tokens that have hurt
before: braces (deep nesting), quotes, comments, Latin-1 and NUL bytes, huge
numbers (batch sizes, dims, num_output at and beyond INT_MAX). A structured
strategy builds nets whose sizes are fuzzed. ``make test`` runs a small
sample of each; ``make test-long`` (the ``slow`` marker) a few thousand.
"""

from __future__ import annotations

import re
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import caffe_compat as caffe
from caffe_compat import sizes
from caffe_compat.errors import CaffeCompatError
from caffe_compat.proto import caffe_pb2
from caffe_compat.proto.files import decode_text, parse_binary, parse_text
from caffe_compat.weights import read_weights

ROOT = Path(__file__).resolve().parent.parent
LENET = (ROOT / "examples" / "nets" / "lenet_train_test.prototxt").read_bytes()

SMALL_NET = b"""name: "fuzz"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 1 dim: 8 dim: 8 } shape { dim: 2 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 3 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip" inner_product_param { num_output: 4 } }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""

TOKENS = [b"{", b"}", b"<", b">", b'"', b"'", b"#", b"\n", b" ", b":", b"\xe9", b"\x00", b"\xff",
          b"{" * 200, b"}" * 200, b"layer {", b"shape { dim: 2147483647 }", b"dim: 2147483647",
          b"num_output: 2147483647", b"num_output: 4294967295", b"batch_size: 2147483647", b"dim: -1",
          b"dim: 0", b"kernel_size: 0", b"stride: 0", b"1e400", b"nan", b"-inf", b"0x7fffffff",
          b"type: \"Data\"", b"type: \"DummyData\"", b"type: \"Python\"", b"fork_field { x: 1 }",
          b"bottom: \"nope\"", b"top: \"data\"", b"engine: MKLDNN", b"phase: TRAIN",
          b"include { phase: TEST }"]


NUMBERS = [b"0", b"-1", b"1", b"3", b"65536", b"2147483647", b"2147483648", b"4294967295",
           b"4294967296", b"9223372036854775807", b"99999999999999999999", b"1e10", b"-0.5"]
_DIGITS = re.compile(rb"\d+")


@st.composite
def mutated(draw, seed: bytes, tokens: list[bytes], most: int = 6) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, most))):
        pos = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "duplicate", "flip", "number", "number"]))
        if kind == "number":  # keeps the syntax: a value becomes an interesting one
            runs = list(_DIGITS.finditer(bytes(data)))
            if runs:
                m = runs[draw(st.integers(0, len(runs) - 1))]
                data[m.start():m.end()] = draw(st.sampled_from(NUMBERS))
        elif kind == "insert":
            chunk = draw(st.one_of(st.sampled_from(tokens), st.binary(min_size=1, max_size=8)))
            data[pos:pos] = chunk
        elif kind == "delete":
            del data[pos:pos + draw(st.integers(1, 32))]
        elif kind == "replace" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif kind == "duplicate":
            n = draw(st.integers(1, 64))
            data[pos:pos] = data[pos:pos + n] * draw(st.integers(1, 4))
        elif kind == "flip" and pos < len(data):
            data[pos] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


def _build(text: str) -> None:
    """Build a net from ``text``: success or a CaffeCompatError, no thread left after a failure."""
    before = set(threading.enumerate())
    try:
        net = caffe.Net(text, caffe.TRAIN)
    except CaffeCompatError as exc:
        event(f"build refused: {type(exc).__name__}")
        leftover = [t for t in set(threading.enumerate()) - before if t.name.startswith("caffe_compat")]
        assert not leftover, f"a failed build left {leftover}"
        return
    event("built")
    for layer in net.layers:  # don't leave prefetch threads to the garbage collector
        close = getattr(layer, "close", None)
        if callable(close):
            close()


def check_text(data: bytes) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            text = decode_text(data, "fuzz.prototxt")
            param = parse_text(text, caffe_pb2.NetParameter(), "fuzz.prototxt")
        except CaffeCompatError as exc:
            event(f"read refused: {type(exc).__name__}")
            return
        del param
        _build(text)


@st.composite
def sized_net(draw) -> str:
    """A net whose sizes are fuzzed: each product either small or beyond INT_MAX."""
    big = st.sampled_from([2**31 - 1, 2**31, 10**10, 2**62])
    small = st.integers(2, 5)
    size = st.one_of(small, small, small, big)
    dims = draw(st.lists(size, min_size=1, max_size=4))
    if any(d > 1000 for d in dims) and len(dims) == 1:
        dims.append(2)  # INT_MAX itself is legal, and 8 GB: keep every big product over it
    layers = [f'layer {{ name: "in" type: "Input" top: "data" input_param {{ shape {{ '
              f'{" ".join(f"dim: {d}" for d in dims)} }} }} }}']
    kind = draw(st.sampled_from(["ip", "conv", "tile", "dummy", "embed"]))
    n = draw(st.one_of(small, st.sampled_from([2**31 - 1, 2**32 - 1])))
    if kind == "ip":
        layers.append(f'layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "y" '
                      f"inner_product_param {{ num_output: {n} }} }}")
    elif kind == "conv":
        layers.append(f'layer {{ name: "c" type: "Convolution" bottom: "data" top: "y" convolution_param {{ '
                      f"num_output: {n} kernel_size: {draw(st.integers(1, 3))} }} }}")
    elif kind == "tile":
        layers.append(f'layer {{ name: "t" type: "Tile" bottom: "data" top: "y" '
                      f"tile_param {{ tiles: {n} }} }}")
    elif kind == "dummy":
        layers.append(f'layer {{ name: "dd" type: "DummyData" top: "z" dummy_data_param {{ shape {{ '
                      f"dim: {n} dim: {draw(size)} }} }} }}")
    else:
        layers.append(f'layer {{ name: "e" type: "Embed" bottom: "data" top: "y" embed_param {{ '
                      f"input_dim: {n} num_output: {draw(st.one_of(small, big))} }} }}")
    return "\n".join(layers)


@st.composite
def data_net(draw, db: str) -> str:
    batch = draw(st.one_of(st.integers(1, 4), st.sampled_from([2**31 - 1, 2**30, 10**9, 2**28])))
    prefetch = draw(st.integers(0, 6))
    return (f'layer {{ name: "d" type: "Data" top: "data" top: "label" data_param {{ source: "{db}" '
            f"backend: LMDB batch_size: {batch} prefetch: {prefetch} }} }}")


@pytest.fixture(autouse=True)
def small_machine(monkeypatch):
    """As if the machine had 256 MiB: a mutant that is legal but huge (num_output 44444444)
    is refused by the memory check instead of being allocated, and each example stays fast."""
    monkeypatch.setattr(sizes, "memory_limit", lambda: 256 << 20)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    from caffe_compat.data import DBWriter
    from caffe_compat.io import array_to_datum

    path = tmp_path_factory.mktemp("fuzz") / "db"
    with DBWriter(path, "lmdb") as w:
        for i in range(3):
            w.put(f"{i:08d}", array_to_datum(np.zeros((1, 2, 2), np.uint8), i).SerializeToString())
    return str(path)


@pytest.fixture(scope="module")
def caffemodel(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "small.caffemodel"
    caffe.Net(SMALL_NET.decode(), caffe.TEST).save(str(path))
    return path.read_bytes()


def check_binary(data: bytes, tmp: Path) -> None:
    path = tmp / "fuzz.caffemodel"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            read_weights(path)
        except CaffeCompatError:
            pass
        try:
            caffe.Net(SMALL_NET.decode(), caffe.TEST).copy_from(str(path))
        except CaffeCompatError:
            pass
        for message in (caffe_pb2.SolverState(), caffe_pb2.BlobProto()):
            try:
                parse_binary(data, message, "fuzz")
            except CaffeCompatError:
                pass


BINARY_TOKENS = [b"\x00", b"\xff" * 10, b"\x0a\xff\xff\xff\xff\x0f", b"\x12\x80\x80\x80\x80\x08"]
FAST = settings(max_examples=60, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
LONG = settings(FAST, max_examples=2000, derandomize=False)


# ------------------------------------------------------------------ fast
@FAST
@given(mutated(LENET, TOKENS))
def test_fuzz_prototxt_reader(data):
    check_text(data)


@FAST
@given(mutated(SMALL_NET, TOKENS, most=3))
def test_fuzz_prototxt_to_net(data):
    check_text(data)


@FAST
@given(sized_net())
def test_fuzz_sizes(text):
    _build(text)


@FAST
@given(st.data())
def test_fuzz_data_layer_sizes(db, data):
    _build(data.draw(data_net(db)))


@FAST
@given(data=st.data())
def test_fuzz_caffemodel_reader(caffemodel, tmp_path, data):
    check_binary(data.draw(mutated(caffemodel, BINARY_TOKENS)), tmp_path)


# ------------------------------------------------------------------ long
@pytest.mark.slow
@LONG
@given(mutated(LENET, TOKENS))
def test_fuzz_prototxt_reader_long(data):
    check_text(data)


@pytest.mark.slow
@LONG
@given(mutated(SMALL_NET, TOKENS, most=3))
def test_fuzz_prototxt_to_net_long(data):
    check_text(data)


@pytest.mark.slow
@settings(LONG, max_examples=500)
@given(sized_net())
def test_fuzz_sizes_long(text):
    _build(text)


@pytest.mark.slow
@settings(LONG, max_examples=300)
@given(st.data())
def test_fuzz_data_layer_sizes_long(db, data):
    _build(data.draw(data_net(db)))


@pytest.mark.slow
@LONG
@given(data=st.data())
def test_fuzz_caffemodel_reader_long(caffemodel, tmp_path, data):
    check_binary(data.draw(mutated(caffemodel, BINARY_TOKENS)), tmp_path)
