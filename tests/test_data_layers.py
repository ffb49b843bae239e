"""Data, ImageData, HDF5Data, HDF5Output, MemoryData and WindowData layers.

* every ``data`` golden fixture (made by a real Caffe on the same stored
  files) is replayed: the tops of each forward must match;
* behaviour Caffe does not pin deterministically (TRAIN crops, shuffles,
  random window sampling) is checked by invariants and reproducibility;
* prefetching: the queue holds ``prefetch`` batches and reading overlaps compute;
* every missing or corrupt source is a DataError naming the layer and source.
"""

from __future__ import annotations

import gc
import io
import os
import time

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

import caffe_compat as caffe
from caffe_compat import mode
from caffe_compat.data import array_to_datum
from caffe_compat.data.db import DBWriter
from caffe_compat.data.prefetch import Prefetcher
from caffe_compat.errors import DataError, LayerError
from golden_harness import assert_close, fixtures, load

GOLDEN = fixtures("data")


def replay(fx, tmp_path, monkeypatch):
    for key in fx.keys("file"):
        path = tmp_path / key.split("/", 1)[1]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(fx.arrays[key].tobytes())
    monkeypatch.chdir(tmp_path)
    net = caffe.Net(fx.meta["prototxt"], caffe.TEST if fx.meta["phase"] == "TEST" else caffe.TRAIN)
    if fx.meta.get("memory"):
        net.set_input_arrays(fx.arrays["memory/data"], fx.arrays["memory/labels"])
    for key in fx.keys("input"):
        net.blobs[key.split("/", 1)[1]].data[...] = fx.arrays[key]
    for i in range(fx.meta["forwards"]):
        net.forward()
        for key in fx.keys(f"out/{i}"):
            top = key.split("/", 2)[2]
            assert_close(net.blobs[top].data, fx.arrays[key], fx.meta["tol"], f"{fx.id}: {key}")
    if fx.meta.get("h5out"):
        with h5py.File(fx.meta["h5out"], "r") as f:
            for key in fx.keys("h5"):
                got = f[key.split("/", 1)[1]][()]
                assert got.dtype == fx.arrays[key].dtype
                assert_close(got, fx.arrays[key], 0.0, f"{fx.id}: {key}")


IMAGES = [p for p in GOLDEN if any(w in p.stem for w in ("image", "encoded", "window"))]
# Colour JPEGs with subsampled chroma: the pip Caffe's OpenCV 4.5.1 is built on IJG libjpeg 9d,
# which upsamples chroma by scaled IDCTs; OpenCV's wheels and Pillow use libjpeg-turbo (as the
# OpenCV of Linux distributions does), which interpolates. Both of our backends decode these
# like libjpeg-turbo, so the pixels differ from this Caffe's (labels and shapes do not).
LIBJPEG9_CHROMA = {"lmdb_encoded_jpeg_420": (55, 9.8), "image_data_jpeg_422_resize": (51, 6.3)}


@pytest.mark.parametrize("path", [p for p in GOLDEN if p not in IMAGES and p.stem not in LIBJPEG9_CHROMA],
                         ids=lambda p: p.stem)
def test_matches_caffe(path, tmp_path, monkeypatch):
    replay(load(path), tmp_path, monkeypatch)


@pytest.mark.parametrize("path", [p for p in IMAGES if p.stem not in LIBJPEG9_CHROMA], ids=lambda p: p.stem)
def test_images_match_caffe_with_each_backend(path, image_backend, tmp_path, monkeypatch):
    replay(load(path), tmp_path, monkeypatch)


@pytest.mark.parametrize("name", sorted(LIBJPEG9_CHROMA))
def test_subsampled_colour_jpegs_differ_as_libjpeg_turbo_does(name, image_backend, tmp_path, monkeypatch):
    fx = load(next(p for p in GOLDEN if p.stem == name))
    worst, mean = LIBJPEG9_CHROMA[name]
    for key in fx.keys("file"):
        path = tmp_path / key.split("/", 1)[1]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(fx.arrays[key].tobytes())
    monkeypatch.chdir(tmp_path)
    net = caffe.Net(fx.meta["prototxt"], caffe.TEST)
    for i in range(fx.meta["forwards"]):
        net.forward()
        np.testing.assert_array_equal(net.blobs["label"].data, fx.arrays[f"out/{i}/label"])
        err = np.abs(net.blobs["data"].data - fx.arrays[f"out/{i}/data"])
        assert net.blobs["data"].data.shape == fx.arrays[f"out/{i}/data"].shape
        assert err.max() <= worst and err.mean() <= mean, (err.max(), err.mean())


def test_both_backends_decode_jpegs_alike():
    """OpenCV's wheel and Pillow both decode with libjpeg-turbo: identical pixels, any sampling."""
    from caffe_compat.data import image

    if image._cv2() is None:
        pytest.skip("opencv-python-headless is not installed")
    rng = np.random.RandomState(4)
    for subsampling in (0, 1, 2):
        for flag in (image.IMREAD_COLOR, image.IMREAD_GRAYSCALE):
            arr = rng.randint(0, 256, (13, 17, 3)).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format="JPEG", quality=85, subsampling=subsampling)
            with image.use_backend("opencv"):
                a = image.decode(buf.getvalue(), flag)
            with image.use_backend("pillow"):
                b = image.decode(buf.getvalue(), flag)
            np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ helpers
def make_db(path, arrays, labels=None, backend="lmdb", keys=None):
    with DBWriter(path, backend) as w:
        for i, a in enumerate(arrays):
            key = keys[i] if keys else f"{i:08d}"
            label = int(labels[i]) if labels is not None else i
            w.put(key, array_to_datum(a, label).SerializeToString())
    return str(path)


def data_net(source, extra="", tp="", backend="LMDB", batch=4, phase=caffe.TRAIN, tops=("data", "label")):
    top = " ".join(f'top: "{t}"' for t in tops)
    return caffe.Net(f"""
layer {{ name: "d" type: "Data" {top}
  data_param {{ source: "{source}" backend: {backend} batch_size: {batch} {extra} }}
  transform_param {{ {tp} }} }}""", phase)


def png_bytes(arr):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def small_db(tmp_path):
    arrays = [np.full((1, 4, 5), i, np.uint8) for i in range(10)]
    return make_db(tmp_path / "db", arrays)


# ---------------------------------------------------------------- Data layer
@pytest.mark.parametrize("backend", ["LMDB", "LEVELDB"])
def test_data_reads_in_key_order_and_wraps(backend, tmp_path):
    src = make_db(tmp_path / "db", [np.full((2, 3, 3), i, np.uint8) for i in range(5)],
                  keys=[f"k{4 - i}" for i in range(5)], backend=backend.lower())
    net = data_net(src, backend=backend, batch=3)
    assert net.blobs["data"].shape == (3, 2, 3, 3) and net.blobs["label"].shape == (3,)
    labels = [net.forward()["label"].tolist() for _ in range(3)]
    assert labels == [[4, 3, 2], [1, 0, 4], [3, 2, 1]]  # keys k0..k4 hold labels 4..0


def test_one_top_means_no_label(small_db):
    net = data_net(small_db, tops=("data",))
    assert list(net.blobs) == ["data"]
    assert net.forward()["data"].shape == (4, 1, 4, 5)


def test_train_crop_mirror_reproducible_from_seed(tmp_path):
    arrays = [np.random.default_rng(i).integers(0, 256, (3, 8, 9)).astype(np.uint8) for i in range(6)]
    src = make_db(tmp_path / "db", arrays)

    def run(seed):
        caffe.set_random_seed(seed)
        net = data_net(src, tp="crop_size: 5 mirror: true", batch=6)
        return np.concatenate([net.forward()["data"].copy() for _ in range(3)])

    a, b, c = run(5), run(5), run(6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    for k, out in enumerate(a):
        x = arrays[k % 6].astype(np.float32)
        assert any(np.array_equal(out, w) or np.array_equal(out, w[..., ::-1])
                   for w in (x[:, h:h + 5, v:v + 5] for h in range(4) for v in range(5)))


def test_solver_random_seed_fixes_the_data_choices(tmp_path):
    arrays = [np.random.default_rng(i).integers(0, 256, (1, 6, 6)).astype(np.uint8) for i in range(4)]
    src = make_db(tmp_path / "db", arrays)
    (tmp_path / "net.prototxt").write_text(f"""
layer {{ name: "d" type: "Data" top: "data" top: "label" transform_param {{ crop_size: 4 mirror: true }}
  data_param {{ source: "{src}" backend: LMDB batch_size: 4 }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param {{ num_output: 4 }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }}""")

    def batches(seed):
        (tmp_path / "solver.prototxt").write_text(
            f'net: "{tmp_path}/net.prototxt" base_lr: 0.1 lr_policy: "fixed" random_seed: {seed} '
            f'snapshot_after_train: false solver_mode: CPU')
        solver = caffe.SGDSolver(str(tmp_path / "solver.prototxt"))
        out = []
        for _ in range(3):
            solver.step(1)
            out.append(solver.net.blobs["data"].data.copy())
        return np.stack(out)

    np.testing.assert_array_equal(batches(7), batches(7))
    assert not np.array_equal(batches(7), batches(8))


def test_rand_skip_starts_below_it(tmp_path, small_db):
    starts = set()
    for seed in range(12):
        caffe.set_random_seed(seed)
        starts.add(int(data_net(small_db, extra="rand_skip: 5", batch=1).forward()["label"][0]))
    assert starts <= set(range(5)) and len(starts) > 1


def test_data_parallel_readers_take_every_nth_record(small_db):
    mode.set_multiprocess(1, 2)
    try:
        train = data_net(small_db, batch=3).forward()["label"].tolist()
        test = data_net(small_db, batch=3, phase=caffe.TEST).forward()["label"].tolist()
    finally:
        mode.set_multiprocess(0, 1)
    assert train == [1, 3, 5] and test == [0, 1, 2]


@pytest.mark.parametrize("count", [1, 3])
def test_prefetch_count_is_honoured(count, small_db):
    net = data_net(small_db, extra=f"prefetch: {count}", batch=1)
    pf = net.layers[0]._prefetcher
    deadline = time.time() + 10
    while pf.ready() < count and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert pf.ready() == count
    assert net.forward()["label"].tolist() == [0]


def test_prefetch_zero_reads_in_forward(small_db):
    net = data_net(small_db, extra="prefetch: 0", batch=2)
    assert net.layers[0]._prefetcher.ready() == 0
    assert net.forward()["label"].tolist() == [0, 1]


class SlowSource:
    def __init__(self, delay):
        self.delay, self.n = delay, 0

    def next_batch(self):
        time.sleep(self.delay)
        self.n += 1
        return (np.full(2, self.n, np.float32),)

    def close(self):
        pass


def test_reading_overlaps_compute():
    delay, steps = 0.1, 6
    pf = Prefetcher(SlowSource(delay), 2)
    start = time.perf_counter()
    got = []
    for _ in range(steps):
        got.append(float(pf.get()[0][0]))
        time.sleep(delay)  # the "forward/backward" of the net
    elapsed = time.perf_counter() - start
    pf.close()
    assert got == list(range(1, steps + 1))
    assert elapsed < 0.8 * 2 * delay * steps, f"no overlap: {elapsed:.2f}s"


def test_dropping_the_net_stops_its_thread(small_db):
    net = data_net(small_db)
    net.forward()
    thread = net.layers[0]._prefetcher._thread
    assert thread.is_alive() and thread.daemon
    del net
    gc.collect()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_error_in_the_thread_comes_after_the_good_batches(tmp_path):
    path = tmp_path / "db"
    with DBWriter(path, "lmdb") as w:
        for i in range(4):
            w.put(f"{i:08d}", array_to_datum(np.zeros((1, 2, 2), np.uint8), i).SerializeToString())
        w.put("99999999_bad", b"\xff\xff not a datum")
    net = data_net(str(path), batch=2)
    assert net.forward()["label"].tolist() == [0, 1]
    assert net.forward()["label"].tolist() == [2, 3]
    with pytest.raises(DataError, match=r'Data layer "d".*99999999_bad.*not a serialized caffe.Datum'):
        net.forward()


def test_datum_shape_change_inside_a_batch(tmp_path):
    src = make_db(tmp_path / "db", [np.zeros((1, 2, 2), np.uint8), np.zeros((1, 3, 2), np.uint8)])
    net = data_net(src, batch=2)
    with pytest.raises(DataError, match=r"record b'00000001'.*shape \[1, 3, 2\].*first item has shape"):
        net.forward()


def test_encoded_datums_of_varying_size_reshape_per_batch(tmp_path):
    from caffe_compat.data import encoded_datum

    path = tmp_path / "db"
    with DBWriter(path, "lmdb") as w:
        for i, (h, wd) in enumerate([(4, 5), (4, 5), (6, 3), (6, 3)]):
            w.put(f"{i:08d}", encoded_datum(png_bytes(np.full((h, wd, 3), i, np.uint8)), i)
                  .SerializeToString())
    net = data_net(str(path), batch=2)
    assert net.forward()["data"].shape == (2, 3, 4, 5)
    assert net.forward()["data"].shape == (2, 3, 6, 3)


SETUP_ERRORS = [
    ("missing_db", 'source: "no_such_db" backend: LMDB batch_size: 2', DataError,
     r'Data layer "d".*no_such_db.*no such file'),
    ("zero_batch", 'source: "{db}" backend: LMDB', DataError, r'Data layer "d".*batch_size must be > 0'),
    ("no_source", "backend: LMDB batch_size: 2", DataError, r"source is not set"),
    ("wrong_backend", 'source: "{db}" backend: LEVELDB batch_size: 2', DataError, r"LEVELDB.*cannot open"),
]


@pytest.mark.parametrize("name,dp,exc,match", SETUP_ERRORS, ids=[e[0] for e in SETUP_ERRORS])
def test_setup_errors(name, dp, exc, match, small_db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(exc, match=match):
        caffe.Net(f'layer {{ name: "d" type: "Data" top: "data" top: "label" '
                  f'data_param {{ {dp.format(db=small_db)} }} }}', caffe.TRAIN)


def test_empty_db(tmp_path):
    DBWriter(tmp_path / "db", "lmdb").close()
    with pytest.raises(DataError, match=r'Data layer "d".*is empty'):
        data_net(str(tmp_path / "db"))


@pytest.mark.parametrize("tp,match", [("crop_size: 9", "crop_size 9 is larger"),
                                      ("force_color: true force_gray: true", "force_color and force_gray"),
                                      ("mean_value: 1 mean_value: 2", "1 mean_value or as many")])
def test_transform_param_errors_name_the_layer(tp, match, small_db):
    with pytest.raises(DataError, match=rf'Data layer "d".*{match}'):
        data_net(small_db, tp=tp).forward()


@pytest.mark.parametrize("layer", [
    'type: "Data" bottom: "x" top: "data" data_param { source: "db" batch_size: 1 }',
    'type: "Data" top: "a" top: "b" top: "c" data_param { source: "db" batch_size: 1 }',
    'type: "MemoryData" top: "a" memory_data_param { batch_size: 1 channels: 1 height: 1 width: 1 }',
    'type: "HDF5Output" bottom: "x" hdf5_output_param { file_name: "o.h5" }',
], ids=["data_with_bottom", "data_three_tops", "memory_one_top", "hdf5_output_one_bottom"])
def test_blob_counts(layer):
    text = ('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 } } }\n'
            f'layer {{ name: "L" {layer} }}')
    with pytest.raises(LayerError, match=r'layer "L": expected'):
        caffe.Net(text, caffe.TEST)


# ----------------------------------------------------------------- ImageData
@pytest.fixture
def image_list(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    lines = []
    for i in range(6):
        (folder / f"im {i}.png").write_bytes(png_bytes(np.full((5, 7, 3), 10 * i, np.uint8)))
        lines.append(f"im {i}.png {i}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def image_net(tmp, params, tp=""):
    return caffe.Net(f"""layer {{ name: "img" type: "ImageData" top: "data" top: "label"
  image_data_param {{ source: "{tmp}/list.txt" root_folder: "{tmp}/imgs/" {params} }}
  transform_param {{ {tp} }} }}""", caffe.TRAIN)


def test_image_data_shuffles_each_pass(image_list):
    net = image_net(image_list, "batch_size: 6 shuffle: true")
    passes = [net.forward()["label"].tolist() for _ in range(3)]
    assert all(sorted(p) == list(range(6)) for p in passes)
    assert len({tuple(p) for p in passes}) > 1
    d = net.blobs["data"].data
    assert np.array_equal(d[:, 0, 0, 0], 10 * net.blobs["label"].data)


def test_image_data_rand_skip_and_gray(image_list):
    caffe.set_random_seed(3)
    net = image_net(image_list, "batch_size: 2 rand_skip: 4 is_color: false")
    out = net.forward()
    assert out["data"].shape == (2, 1, 5, 7) and out["label"][0] < 4


def test_image_data_resize(image_list):
    out = image_net(image_list, "batch_size: 1 new_height: 9 new_width: 3").forward()
    assert out["data"].shape == (1, 3, 9, 3)


IMAGE_ERRORS = [
    ("unreadable", "garbage", "batch_size: 1", r'could not load "im 0.png".*cannot decode'),
    ("size_differs", "size", "batch_size: 2",
     r"image \"im 1.png\" is 3x3x3 but the batch's first image is 5x7x3"),
    ("half_resize", None, "batch_size: 1 new_height: 4",
     "new_height and new_width must be set at the same time"),
    ("bad_label", "label", "batch_size: 1", r"list.txt:2: expected \"path label\" with an integer label"),
    ("missing_list", "nolist", "batch_size: 1", r"cannot open .*list.txt"),
]


@pytest.mark.parametrize("name,damage,params,match", IMAGE_ERRORS, ids=[e[0] for e in IMAGE_ERRORS])
def test_image_data_errors(name, damage, params, match, image_list):
    if damage == "garbage":
        (image_list / "imgs" / "im 0.png").write_bytes(b"nope")
    elif damage == "size":
        (image_list / "imgs" / "im 1.png").write_bytes(png_bytes(np.zeros((3, 3, 3), np.uint8)))
    elif damage == "label":
        (image_list / "list.txt").write_text("im 0.png 0\nim 1.png one\n")
    elif damage == "nolist":
        (image_list / "list.txt").unlink()
    with pytest.raises(DataError, match=match):
        image_net(image_list, params).forward()


def test_root_folder_without_slash_gets_a_hint(image_list):
    text = f"""layer {{ name: "img" type: "ImageData" top: "data" top: "label"
      image_data_param {{ source: "{image_list}/list.txt" root_folder: "{image_list}/imgs"
                          batch_size: 1 }} }}"""
    with pytest.raises(DataError, match="trailing"):
        caffe.Net(text, caffe.TRAIN)


# ------------------------------------------------------------------ HDF5Data
def write_h5(path, **arrays):
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f[k] = v


def h5_net(tmp, files, tops=("data", "label"), params="batch_size: 4"):
    (tmp / "list.txt").write_text("\n".join(files) + "\n")
    top = " ".join(f'top: "{t}"' for t in tops)
    return caffe.Net(f'layer {{ name: "h" type: "HDF5Data" {top} hdf5_data_param {{ '
                     f'source: "{tmp}/list.txt" {params} }} }}', caffe.TRAIN)


def test_hdf5_shuffle_is_a_permutation_each_pass(tmp_path):
    write_h5(tmp_path / "a.h5", data=np.arange(8, dtype=np.float32).reshape(8, 1), label=np.arange(8.0))
    net = h5_net(tmp_path, ["a.h5"], params="batch_size: 8 shuffle: true")
    passes = [net.forward()["label"].tolist() for _ in range(3)]
    assert all(sorted(p) == list(range(8)) for p in passes)
    assert len({tuple(p) for p in passes}) > 1
    np.testing.assert_array_equal(net.blobs["data"].data[:, 0], net.blobs["label"].data)


def test_hdf5_paths_relative_to_the_list_file(tmp_path, monkeypatch):
    write_h5(tmp_path / "a.h5", data=np.ones((2, 3), np.float32), label=np.zeros(2))
    monkeypatch.chdir("/")
    out = h5_net(tmp_path, ["a.h5"], params="batch_size: 3").forward()
    assert out["data"].shape == (3, 3) and out["label"].shape == (3,)


H5_ERRORS = [
    ("wrong_dataset", dict(data=np.ones((2, 2)), lbl=np.ones(2)),
     r'no dataset "label".*datasets: data, lbl'),
    ("row_counts", dict(data=np.ones((3, 2)), label=np.ones(2)),
     r'"label" in .* has 2 rows but "data" has 3'),
    ("strings", dict(data=np.array([b"a", b"b"]), label=np.ones(2)), "must be a numeric array"),
    ("missing_file", None, r"failed opening HDF5 file"),
]


@pytest.mark.parametrize("name,arrays,match", H5_ERRORS, ids=[e[0] for e in H5_ERRORS])
def test_hdf5_errors(name, arrays, match, tmp_path):
    if arrays is not None:
        write_h5(tmp_path / "a.h5", **arrays)
    with pytest.raises(DataError, match=r'HDF5Data layer "h".*' + match):
        h5_net(tmp_path, ["a.h5"])


def test_hdf5_later_file_with_other_row_shape(tmp_path):
    write_h5(tmp_path / "a.h5", data=np.ones((2, 3)), label=np.ones(2))
    write_h5(tmp_path / "b.h5", data=np.ones((2, 4)), label=np.ones(2))
    net = h5_net(tmp_path, [str(tmp_path / "a.h5"), str(tmp_path / "b.h5")], params="batch_size: 1")
    net.forward()
    with pytest.raises(DataError, match=r"rows of shape \[4\], the first file's have \[3\]"):
        net.forward()


# ---------------------------------------------------------------- HDF5Output
def test_hdf5_output_rewrites_each_forward(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    net = caffe.Net("""
layer { name: "in" type: "Input" top: "a" top: "b" input_param { shape { dim: 2 dim: 5 } shape { dim: 2 } } }
layer { name: "o" type: "HDF5Output" bottom: "a" bottom: "b" hdf5_output_param { file_name: "o.h5" } }""",
                    caffe.TEST)
    assert os.path.exists("o.h5")
    for k in range(2):
        net.forward(a=np.full((2, 5), k, np.float32), b=np.array([k, -k], np.float32))
        with h5py.File("o.h5", "r") as f:
            assert f["data"].shape == (2, 5, 1, 1) and f["label"].shape == (2, 1, 1, 1)
            assert (f["data"][()] == k).all()


def test_hdf5_output_checks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ('layer {{ name: "in" type: "Input" top: "a" top: "b" input_param {{ shape {{ {a} }} '
            'shape {{ dim: 2 }} }} }}\nlayer {{ name: "o" type: "HDF5Output" bottom: "a" bottom: "b" '
            'hdf5_output_param {{ file_name: "o.h5" }} }}')
    with pytest.raises(LayerError, match=r'HDF5Output layer "o".*5 axes'):
        caffe.Net(base.format(a="dim: 2 dim: 1 dim: 1 dim: 1 dim: 1"), caffe.TEST)
    net = caffe.Net(base.format(a="dim: 3"), caffe.TEST)
    with pytest.raises(LayerError, match="same batch size"):
        net.forward()


# ---------------------------------------------------------------- MemoryData
MEM = ('layer { name: "m" type: "MemoryData" top: "data" top: "label" '
       'memory_data_param { batch_size: 2 channels: 3 height: 2 width: 1 } }')


def good_arrays(n=4):
    return np.zeros((n, 3, 2, 1), np.float32), np.zeros(n, np.float32)


def _array_errors():
    f32 = np.float32
    return [
        ("not_contiguous", lambda d, lab: (np.zeros((4, 3, 2, 2), f32)[..., :1], lab),
         "data array must be C contiguous"),
        ("not_4d", lambda d, lab: (d.reshape(4, 6), lab), "data array must be 4-d"),
        ("float64", lambda d, lab: (d.astype(np.float64), lab), "data array must be float32"),
        ("channels", lambda d, lab: (np.zeros((4, 2, 2, 1), f32), lab),
         "data array has wrong number of channels"),
        ("height", lambda d, lab: (np.zeros((4, 3, 3, 1), f32), lab), "data array has wrong height"),
        ("width", lambda d, lab: (np.zeros((4, 3, 2, 2), f32), lab), "data array has wrong width"),
        ("labels_float64", lambda d, lab: (d, lab.astype(np.float64)), "labels array must be float32"),
        ("first_dims", lambda d, lab: (d, lab[:2]), "data and labels must have the same first dimension"),
        ("batch_multiple", lambda d, lab: (d[:3], lab[:3]),
         "first dimensions of input arrays must be a multiple"),
    ]


ARRAY_ERRORS = _array_errors()


@pytest.mark.parametrize("name,damage,match", ARRAY_ERRORS, ids=[e[0] for e in ARRAY_ERRORS])
def test_set_input_arrays_checks_like_pycaffe(name, damage, match):
    net = caffe.Net(MEM, caffe.TEST)
    with pytest.raises(RuntimeError, match=match):
        net.set_input_arrays(*damage(*good_arrays()))


def test_set_input_arrays_needs_memory_data_first():
    net = caffe.Net('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 } } }',
                    caffe.TEST)
    with pytest.raises(RuntimeError, match="first layer is a MemoryDataLayer"):
        net.set_input_arrays(*good_arrays())


def test_memory_data_uses_arrays_in_place_and_needs_them():
    net = caffe.Net(MEM, caffe.TEST)
    with pytest.raises(DataError, match="set_input_arrays"):
        net.forward()
    data, labels = good_arrays(4)
    labels[:] = [5, 6, 7, 8]
    net.set_input_arrays(data, labels)
    data[2:] = 9
    assert net.forward()["label"].ravel().tolist() == [5, 6]
    out = net.forward()
    assert (out["data"] == 9).all() and out["label"].shape == (2, 1, 1, 1)


def test_memory_data_add_datum_vector_transforms():
    net = caffe.Net(MEM.replace("memory_data_param", "transform_param { scale: 2 } memory_data_param"),
                    caffe.TEST)
    datums = [array_to_datum(np.full((3, 2, 1), i, np.uint8), i) for i in range(2)]
    net.layers[0].add_datum_vector(datums)
    out = net.forward()
    assert out["data"][1].ravel().tolist() == [2.0] * 6 and out["label"].ravel().tolist() == [0, 1]


def test_memory_data_param_must_be_positive():
    with pytest.raises(DataError, match="must be specified and positive"):
        caffe.Net(MEM.replace("height: 2", "height: 0"), caffe.TEST)


# ---------------------------------------------------------------- WindowData
@pytest.fixture
def windows(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (30, 40, 3)).astype(np.uint8)
    (tmp_path / "a.png").write_bytes(png_bytes(img))
    (tmp_path / "w.txt").write_text(
        "# 0\na.png\n3 30 40\n5\n1 0.9 0 0 9 9\n2 0.7 10 5 30 25\n3 0.6 5 5 15 15\n"
        "0 0.1 20 20 39 29\n0 0.0 0 10 20 29\n")
    return tmp_path


def window_net(tmp, params="", tp="crop_size: 6 mirror: true"):
    return caffe.Net(f"""layer {{ name: "w" type: "WindowData" top: "data" top: "label"
      window_data_param {{ source: "{tmp}/w.txt" root_folder: "{tmp}/" batch_size: 8 {params} }}
      transform_param {{ {tp} }} }}""", caffe.TRAIN)


def test_window_data_samples_fg_and_bg(windows):
    net = window_net(windows, "fg_fraction: 0.25 context_pad: 1")
    for _ in range(3):
        out = net.forward()
        assert out["data"].shape == (8, 3, 6, 6)
        labels = out["label"].tolist()
        assert labels[:6] == [0] * 6 and all(v in (1, 2, 3) for v in labels[6:])


def test_window_data_mirror_and_cache(windows):
    (windows / "w.txt").write_text("# 0\na.png\n3 30 40\n2\n4 0.9 3 2 20 17\n0 0.1 10 10 30 25\n")
    base = window_net(windows, "fg_fraction: 0.5", tp="crop_size: 7 mean_value: 9").forward()["data"].copy()
    for params in ("fg_fraction: 0.5", "fg_fraction: 0.5 cache_images: true"):
        out = window_net(windows, params, tp="crop_size: 7 mean_value: 9 mirror: true").forward()["data"]
        flips = [np.array_equal(o, b[..., ::-1]) and not np.array_equal(o, b) for o, b in zip(out, base)]
        assert all(f or np.array_equal(o, b) for f, o, b in zip(flips, out, base))
        assert any(flips) and not all(flips)


def test_window_data_errors(windows):
    with pytest.raises(DataError, match="crop_size must be > 0"):
        window_net(windows, tp="")
    with pytest.raises(DataError, match="no foreground windows"):
        window_net(windows, "fg_threshold: 0.95 fg_fraction: 0.5").forward()
    (windows / "w.txt").write_text("# 0\na.png\n3 30 40\n1\n0 0.9 0 0 9 9\n")
    with pytest.raises(DataError, match="foreground labels must be > 0"):
        window_net(windows)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.cuda
def test_data_tops_on_gpu(small_db):
    caffe.set_mode_gpu()
    net = data_net(small_db)
    net.forward()
    assert net.blobs["data"].tensor.is_cuda
