"""Absurd sizes are refused when the net is built, before anything is allocated.

Caffe's limit is INT_MAX elements per blob (``Blob::Reshape``, blob.cpp). The
net checks every shape it will allocate — parameter blobs before their
filler runs, the tops a layer's formula gives, each data layer's batch — and
the total a net needs against the machine's memory (Caffe fills the same
buffers at setup). A net that fails leaves no prefetch thread behind.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import caffe_compat as caffe
from caffe_compat import sizes
from caffe_compat.data import DBWriter
from caffe_compat.errors import NetError, ShapeError
from caffe_compat.io import array_to_datum


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("limits") / "db"
    with DBWriter(path, "lmdb") as w:
        for i in range(4):
            w.put(f"{i:08d}", array_to_datum(np.zeros((1, 2, 2), np.uint8), i).SerializeToString())
    return str(path)


def _input(*dims: int) -> str:
    shape = " ".join(f"dim: {d}" for d in dims)
    return f'layer {{ name: "in" type: "Input" top: "data" input_param {{ shape {{ {shape} }} }} }}\n'


def _data(db: str, batch: int, extra: str = "") -> str:
    return (f'layer {{ name: "d" type: "Data" top: "data" top: "label" data_param {{ source: "{db}" '
            f"backend: LMDB batch_size: {batch} {extra} }} }}\n")


def _image_list(tmp_path) -> str:
    from PIL import Image

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'a.png'} 0\n")
    return str(tmp_path / "list.txt")


# (id, net text (may use {db} and {list}), words the message must carry: the layer, the blob, the count)
HUGE = [
    ("inner-product-weight",
     _input(1, 1000000) + 'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
     "inner_product_param { num_output: 1000000 } }",
     ['InnerProduct layer "ip"', "parameter blob 0", "[1000000, 1000000]", "1000000000000 elements"]),
    ("convolution-num-output",
     _input(1, 3, 8, 8) + 'layer { name: "c" type: "Convolution" bottom: "data" top: "c" '
     "convolution_param { num_output: 2147483647 kernel_size: 3 } }",
     ['Convolution layer "c"', "parameter blob 0", "[2147483647, 3, 3, 3]", "57982058469 elements"]),
    ("deconvolution-top",
     _input(1, 1, 1000, 1000) + 'layer { name: "up" type: "Deconvolution" bottom: "data" top: "big" '
     "convolution_param { num_output: 1 kernel_size: 100 stride: 100 } }",
     ['Deconvolution layer "up"', 'top blob "big"', "[1, 1, 100000, 100000]", "10000000000 elements"]),
    ("tile-top",
     _input(1, 100000) + 'layer { name: "t" type: "Tile" bottom: "data" top: "tiled" '
     "tile_param { tiles: 1000000 } }",
     ['Tile layer "t"', 'top blob "tiled"', "100000000000 elements"]),
    ("embed-weight",
     _input(4) + 'layer { name: "e" type: "Embed" bottom: "data" top: "e" '
     "embed_param { input_dim: 100000 num_output: 100000 } }",
     ['Embed layer "e"', "parameter blob 0", "10000000000 elements"]),
    ("data-batch",
     "{data}", ['Data layer "d"', 'top "data"', "[2147483647, 1, 2, 2]", "8589934588 elements"]),
    ("image-data-batch",
     'layer { name: "img" type: "ImageData" top: "data" top: "label" image_data_param { '
     'source: "{list}" batch_size: 2147483647 new_height: 100 new_width: 100 } }',
     ['ImageData layer "img"', 'top "data"', "64424509410000 elements"]),
    ("dummy-data",
     'layer { name: "dd" type: "DummyData" top: "x" dummy_data_param { shape { dim: 100000 dim: 100000 } } }',
     ['DummyData layer "dd"', "10000000000 elements"]),
    ("input",
     _input(100000, 100000), ['Input layer "in"', "10000000000 elements"]),
]


@pytest.mark.parametrize("text, words", [c[1:] for c in HUGE], ids=[c[0] for c in HUGE])
def test_blob_over_int_max_is_refused_at_build(text, words, db, tmp_path):
    text = text.replace("{data}", _data(db, 2147483647)).replace("{list}", _image_list(tmp_path))
    before = set(threading.enumerate())
    start = time.perf_counter()
    with pytest.raises(ShapeError) as info:
        caffe.Net(text, caffe.TRAIN)
    assert time.perf_counter() - start < 30
    message = str(info.value)
    for word in words + ["more than INT_MAX = 2147483647"]:
        assert word in message, message
    assert set(threading.enumerate()) <= before, "a failed build left a thread behind"


def test_a_net_caffe_cannot_fit_in_memory_is_refused(db):
    """Under INT_MAX per blob, but prefetch buffers (and blobs) beyond memory + swap."""
    batch = 500_000_000  # 2e9 elements per batch
    before = set(threading.enumerate())
    with pytest.raises(NetError) as info:
        caffe.Net(_data(db, batch), caffe.TRAIN)
    message = str(info.value)
    assert 'Data layer "d" prefetch buffers' in message and "memory and swap" in message
    assert set(threading.enumerate()) <= before


@pytest.mark.parametrize("total, limit, refused", [(10, 100, False), (100, 100, False), (101, 100, True)],
                         ids=["fits", "exactly", "over"])
def test_memory_check_names_the_largest_items(total, limit, refused):
    items = [("small", 1), ('Data layer "d" prefetch buffers', total - 1)]
    if not refused:
        sizes.check_host_memory(items, "net.prototxt", limit=limit)
        return
    with pytest.raises(NetError, match=r'net.prototxt: the net needs at least 101 bytes.*Data layer "d" '
                                       r"prefetch buffers: 100 bytes.*this machine's 100 bytes"):
        sizes.check_host_memory(items, "net.prototxt", limit=limit)


def test_memory_limit_is_known_here():
    limit = sizes.memory_limit()
    assert limit is None or limit > 2**26


def test_no_thread_before_the_whole_net_is_checked(db):
    """A Data layer followed by a layer that fails: the data layer was built, its thread never started."""
    text = _data(db, 2) + ('layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
                           "inner_product_param { num_output: 2147483647 } }")
    before = set(threading.enumerate())
    with pytest.raises(ShapeError, match=r'InnerProduct layer "ip": parameter blob 0'):
        caffe.Net(text, caffe.TRAIN)
    assert set(threading.enumerate()) <= before
    net = caffe.Net(_data(db, 2), caffe.TRAIN)  # a good net does start its thread
    assert net.layers[0]._prefetcher.started
    assert net.forward()["label"].tolist() == [0, 1]


def test_large_batch_needs_only_its_own_memory(db):
    """A big (legal) batch is filled a chunk at a time, as Caffe fills its prefetch buffer."""
    net = caffe.Net(_data(db, 300_000, "prefetch: 1"), caffe.TRAIN)
    out = net.forward()
    assert out["data"].shape == (300_000, 1, 2, 2)
    assert out["label"][:6].tolist() == [0, 1, 2, 3, 0, 1]


def test_closing_stops_a_long_batch(db):
    """close() interrupts a batch being read (between chunks) instead of waiting for it."""
    net = caffe.Net(_data(db, 2_000_000, "prefetch: 1"), caffe.TRAIN)
    layer = net.layers[0]
    thread = layer._prefetcher._thread
    time.sleep(0.2)
    start = time.perf_counter()
    layer.close()
    thread.join(timeout=30)
    assert not thread.is_alive() and time.perf_counter() - start < 10


def test_net_reshape_checks_int_max(tmp_path):
    import caffe_compat as caffe
    from caffe_compat.errors import ShapeError

    path = tmp_path / "n.prototxt"
    path.write_text('layer { name: "data" type: "Input" top: "data" '
                    'input_param { shape { dim: 1 dim: 4 } } }\n'
                    'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
                    'inner_product_param { num_output: 100000 } }\n')
    net = caffe.Net(str(path), caffe.TEST)
    net.blobs["data"].reshape(30000, 4)
    with pytest.raises(ShapeError, match='InnerProduct layer "ip": top blob "ip".*INT_MAX'):
        net.reshape()
