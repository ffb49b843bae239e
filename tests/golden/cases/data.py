"""Data layers on real storage, replayed against a real Caffe (Python 3.9 + numpy).

A *data case* builds its sources (LMDB, LevelDB, images and lists, HDF5
files, binaryproto means) in an empty directory with the real Caffe's own
tools (pycaffe's ``caffe.io``, ``lmdb``, ``plyvel``, ``h5py``, Pillow), runs
the net there (relative paths) ``forwards`` times and records every top.
The fixture stores the directory's files byte for byte, so the replay
(``tests/test_data_layers.py``) reads exactly what Caffe read.

Fixture keys: ``file/<relpath>`` (uint8 bytes of each file), ``out/<i>/<top>``
(tops after forward i), ``memory/data`` + ``memory/labels`` (arrays given to
``set_input_arrays``), ``input/<blob>`` and ``h5/<dataset>`` (HDF5Output:
inputs fed and the file Caffe wrote).

Only deterministic behaviour is pinned here: TEST-phase crops, no mirror,
WindowData with one window per pool. Colour JPEGs use 4:4:4 sampling (see
``caffe_compat/data/image.py`` on chroma upsampling).
"""

import io
import json
import os
import tempfile
import zlib

import numpy as np


def data_case(name, prototxt, build, phase="TEST", forwards=3, tol=1e-6, memory=None,
              inputs=None, h5out=None, note=""):
    return {
        "kind": "data", "name": name, "prototxt": prototxt.strip() + "\n", "build": build,
        "phase": phase, "forwards": forwards, "tol": tol, "memory": memory, "inputs": inputs,
        "h5out": h5out, "note": note, "seed": zlib.crc32(name.encode()),
    }


# ------------------------------------------------------------ source builders
def _images(rng, n, h, w, c=3, smooth=True):
    if smooth:
        base = np.cumsum(rng.randint(-12, 13, size=(n, h, w, c)), axis=2) + rng.randint(60, 190, (n, 1, 1, c))
        return np.clip(base, 0, 255).astype(np.uint8)
    return rng.randint(0, 256, size=(n, h, w, c)).astype(np.uint8)


def _encode(arr_rgb, fmt, **kw):
    from PIL import Image

    buf = io.BytesIO()
    img = arr_rgb[..., 0] if arr_rgb.shape[-1] == 1 else arr_rgb
    Image.fromarray(img).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _write_lmdb(path, records):
    import lmdb

    env = lmdb.open(path, map_size=1 << 24)
    with env.begin(write=True) as txn:
        for k, v in records:
            txn.put(k, v)
    env.close()


def _write_leveldb(path, records):
    import plyvel

    db = plyvel.DB(path, create_if_missing=True)
    for k, v in records:
        db.put(k, v)
    db.close()


def _raw_records(caffe, arrays, labels):
    return [(b"%08d" % i, caffe.io.array_to_datum(a, int(l)).SerializeToString())
            for i, (a, l) in enumerate(zip(arrays, labels))]


def _encoded_records(caffe, blobs, labels):
    out = []
    for i, (data, label) in enumerate(zip(blobs, labels)):
        d = caffe.proto.caffe_pb2.Datum()
        d.data, d.label, d.encoded = data, int(label), True
        out.append((b"%08d" % i, d.SerializeToString()))
    return out


def build_lmdb_raw(d, rng, caffe):
    arrays = rng.randint(0, 256, size=(7, 3, 5, 6)).astype(np.uint8)
    _write_lmdb("db", _raw_records(caffe, arrays, rng.randint(0, 10, 7)))


def build_lmdb_raw_mean(d, rng, caffe):
    build_lmdb_raw(d, rng, caffe)
    mean = (rng.rand(1, 3, 5, 6) * 255).astype(np.float32)
    with open("mean.binaryproto", "wb") as f:
        f.write(caffe.io.array_to_blobproto(mean).SerializeToString())


def build_leveldb_float(d, rng, caffe):
    arrays = rng.randn(5, 2, 3, 4).astype(np.float32)
    _write_leveldb("ldb", _raw_records(caffe, arrays, rng.randint(0, 5, 5)))


def build_lmdb_png(d, rng, caffe):
    imgs = _images(rng, 5, 7, 9)
    blobs = [_encode(im, "PNG") for im in imgs]
    _write_lmdb("db", _encoded_records(caffe, blobs, range(5)))


def build_lmdb_gray_png(d, rng, caffe):
    imgs = _images(rng, 4, 6, 5, c=1)
    _write_lmdb("db", _encoded_records(caffe, [_encode(im, "PNG") for im in imgs], range(4)))


def build_lmdb_jpeg(d, rng, caffe):
    imgs = _images(rng, 4, 8, 8)
    blobs = [_encode(im, "JPEG", quality=90, subsampling=0) for im in imgs]
    _write_lmdb("db", _encoded_records(caffe, blobs, range(4)))


def build_lmdb_jpeg_420(d, rng, caffe):
    # Random pixels: sharp colour edges everywhere, where chroma upsampling matters most.
    imgs = _images(rng, 4, 13, 15, smooth=False)
    blobs = [_encode(im, "JPEG", quality=90, subsampling=2) for im in imgs]
    _write_lmdb("db", _encoded_records(caffe, blobs, range(4)))


def build_image_list_jpeg_422(d, rng, caffe):
    imgs = _images(rng, 3, 14, 11, smooth=False)
    _image_list(rng, ["c%d.jpg" % i for i in range(3)], imgs, "JPEG", [4, 5, 6], quality=80,
                subsampling=1)


def _image_list(rng, names, imgs, fmt, labels, folder="img", **kw):
    os.makedirs(folder, exist_ok=True)
    lines = []
    for name, im, label in zip(names, imgs, labels):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(_encode(im, fmt, **kw))
        lines.append("%s %d" % (name, label))
    with open("list.txt", "w") as f:
        f.write("\n".join(lines) + "\n")


def build_image_list_png(d, rng, caffe):
    imgs = _images(rng, 5, 11, 13, smooth=False)
    _image_list(rng, ["a %d.png" % i for i in range(5)], imgs, "PNG", rng.randint(0, 9, 5))


def build_image_list_2x(d, rng, caffe):
    imgs = _images(rng, 3, 12, 16, smooth=False)
    _image_list(rng, ["s%d.png" % i for i in range(3)], imgs, "PNG", [1, 2, 3])


def build_image_list_mixed(d, rng, caffe):
    png = _images(rng, 2, 9, 10, smooth=False)
    jpg = _images(rng, 2, 9, 10)
    os.makedirs("img", exist_ok=True)
    entries = []
    for i, im in enumerate(png):
        entries.append(("p%d.png" % i, _encode(im, "PNG")))
    for i, im in enumerate(jpg):
        entries.append(("j%d.jpg" % i, _encode(im, "JPEG", quality=85, subsampling=2)))
    for name, data in entries:
        with open(os.path.join("img", name), "wb") as f:
            f.write(data)
    with open("list.txt", "w") as f:
        f.write("".join("%s %d\n" % (n, i) for i, (n, _) in enumerate(entries)))


def build_hdf5(d, rng, caffe):
    import h5py

    names = []
    for k, rows in enumerate((5, 3)):
        name = "part%d.h5" % k
        with h5py.File(name, "w") as f:
            f["data"] = rng.randn(rows, 2, 3).astype(np.float32)
            f["label"] = rng.randint(0, 4, size=rows).astype(np.float64)
            f["extra"] = rng.randint(-5, 5, size=(rows, 4)).astype(np.int32)
        names.append(name)
    with open("h5list.txt", "w") as f:
        f.write("\n".join(names) + "\n")


def build_nothing(d, rng, caffe):
    pass


def build_windows(d, rng, caffe):
    os.makedirs("img", exist_ok=True)
    imgs = _images(rng, 2, 20, 24, smooth=False)
    for i, im in enumerate(imgs):
        with open("img/w%d.png" % i, "wb") as f:
            f.write(_encode(im, "PNG"))
    with open("windows.txt", "w") as f:
        f.write("# 0\nw0.png\n3\n20\n24\n2\n3 0.9 2 3 13 15\n1 0.1 0 0 23 19\n")
        f.write("# 1\nw1.png\n3\n20\n24\n1\n2 0.3 4 4 9 9\n")
    mean = (rng.rand(1, 3, 12, 12) * 255).astype(np.float32)
    with open("wmean.binaryproto", "wb") as f:
        f.write(caffe.io.array_to_blobproto(mean).SerializeToString())


# --------------------------------------------------------------------- cases
CASES = [
    data_case("lmdb_raw_scale_mean_values", """
name: "data" layer { name: "d" type: "Data" top: "data" top: "label"
  data_param { source: "db" backend: LMDB batch_size: 3 }
  transform_param { scale: 0.25 mean_value: 10 mean_value: 20.5 mean_value: 30 } }
""", build_lmdb_raw, forwards=4, note="raw uint8 Datums, per-channel means, wrap-around after 7 records"),
    data_case("lmdb_raw_crop_test_mean_file", """
name: "data" layer { name: "d" type: "Data" top: "data" top: "label"
  data_param { source: "db" backend: LMDB batch_size: 4 }
  transform_param { crop_size: 3 mean_file: "mean.binaryproto" scale: 0.5 } }
""", build_lmdb_raw_mean, forwards=2,
              note="TEST crop is central ((5-3)/2, (6-3)/2); mean at uncropped positions"),
    data_case("lmdb_raw_one_mean_value_no_label", """
name: "data" layer { name: "d" type: "Data" top: "data"
  data_param { source: "db" backend: LMDB batch_size: 2 }
  transform_param { mean_value: 128 crop_size: 4 } }
""", build_lmdb_raw, forwards=2, note="one mean_value for every channel; single top (no label)"),
    data_case("leveldb_float_data", """
name: "data" layer { name: "d" type: "Data" top: "data" top: "label"
  data_param { source: "ldb" backend: LEVELDB batch_size: 2 }
  transform_param { scale: 3 mean_value: 0.5 } }
""", build_leveldb_float, forwards=3, note="float_data Datums from LevelDB"),
    data_case("lmdb_encoded_png", """
name: "data" layer { name: "d" type: "Data" top: "data" top: "label"
  data_param { source: "db" backend: LMDB batch_size: 2 }
  transform_param { crop_size: 5 mean_value: 100 mean_value: 110 mean_value: 120 } }
""", build_lmdb_png, forwards=3, note="encoded PNG decoded to BGR"),
    data_case("lmdb_encoded_png_force_gray", """
name: "data" layer { name: "d" type: "Data" top: "data" top: "label"
  data_param { source: "db" backend: LMDB batch_size: 2 }
  transform_param { force_gray: true scale: 0.1 } }
""", build_lmdb_png, forwards=2, note="libpng's rgb_to_gray on colour PNGs"),
    data_case("lmdb_encoded_gray_png_force_color", """
name: "data" layer { name: "d" type: "Data" top: "data" top: "label"
  data_param { source: "db" backend: LMDB batch_size: 2 }
  transform_param { force_color: true } }
""", build_lmdb_gray_png, forwards=2, note="gray PNG read as 3 equal channels"),
    data_case("lmdb_encoded_gray_png_native", """
name: "data" layer { name: "d" type: "Data" top: "data" top: "label"
  data_param { source: "db" backend: LMDB batch_size: 2 } }
""", build_lmdb_gray_png, forwards=1, note="unchanged decode keeps 1 channel"),
    data_case("lmdb_encoded_jpeg_444", """
name: "data" layer { name: "d" type: "Data" top: "data" top: "label"
  data_param { source: "db" backend: LMDB batch_size: 2 }
  transform_param { scale: 0.00390625 } }
""", build_lmdb_jpeg, forwards=2, note="JPEG without chroma subsampling decodes bit-exactly"),
    data_case("lmdb_encoded_jpeg_force_gray", """
name: "data" layer { name: "d" type: "Data" top: "data" top: "label"
  data_param { source: "db" backend: LMDB batch_size: 4 }
  transform_param { force_gray: true } }
""", build_lmdb_jpeg, forwards=1, note="JPEG read as gray is libjpeg's Y plane"),
    data_case("lmdb_encoded_jpeg_420", """
name: "data" layer { name: "d" type: "Data" top: "data" top: "label"
  data_param { source: "db" backend: LMDB batch_size: 2 } }
""", build_lmdb_jpeg_420, forwards=2,
              note="colour JPEG with 4:2:0 chroma: OpenCV's upsampling (exact with the OpenCV backend)"),
    data_case("image_data_jpeg_422_resize", """
name: "data" layer { name: "d" type: "ImageData" top: "data" top: "label"
  image_data_param { source: "list.txt" root_folder: "img/" batch_size: 3 new_height: 9 new_width: 16 } }
""", build_image_list_jpeg_422, forwards=1, note="colour 4:2:2 JPEGs decoded and resized"),
    data_case("image_data_resize_color", """
name: "data" layer { name: "d" type: "ImageData" top: "data" top: "label"
  image_data_param { source: "list.txt" root_folder: "img/" batch_size: 2 new_height: 7 new_width: 17 }
  transform_param { mean_value: 104 mean_value: 117 mean_value: 123 crop_size: 6 } }
""", build_image_list_png, forwards=3, note="cv::resize INTER_LINEAR (bit-exact), paths with spaces, wrap"),
    data_case("image_data_resize_gray", """
name: "data" layer { name: "d" type: "ImageData" top: "data" top: "label"
  image_data_param { source: "list.txt" root_folder: "img/" batch_size: 3 is_color: false
                     new_height: 19 new_width: 8 }
  transform_param { scale: 0.5 } }
""", build_image_list_png, forwards=2, note="gray read, upscaled in one direction, downscaled in the other"),
    data_case("image_data_2x_shrink", """
name: "data" layer { name: "d" type: "ImageData" top: "data" top: "label"
  image_data_param { source: "list.txt" root_folder: "img/" batch_size: 3
                     new_height: 6 new_width: 8 } }
""", build_image_list_2x, forwards=1, note="an exact 2x shrink is OpenCV's area average"),
    data_case("image_data_gray_png_jpeg", """
name: "data" layer { name: "d" type: "ImageData" top: "data" top: "label"
  image_data_param { source: "list.txt" root_folder: "img/" batch_size: 2 is_color: false } }
""", build_image_list_mixed, forwards=2, note="gray reads of PNG (libpng) and 4:2:0 JPEG (Y plane)"),
    data_case("hdf5_data_across_files", """
name: "data" layer { name: "h" type: "HDF5Data" top: "data" top: "label" top: "extra"
  hdf5_data_param { source: "h5list.txt" batch_size: 3 } }
""", build_hdf5, forwards=4, note="batches span files; three tops by dataset name; int/double to float"),
    data_case("memory_data", """
name: "data" layer { name: "m" type: "MemoryData" top: "data" top: "label"
  memory_data_param { batch_size: 2 channels: 2 height: 3 width: 1 } }
""", build_nothing, forwards=3,
              memory=lambda rng: (rng.randn(4, 2, 3, 1).astype(np.float32), np.arange(4, dtype=np.float32)),
              note="set_input_arrays; label top becomes N x 1 x 1 x 1; wraps after 2 batches"),
    data_case("hdf5_output", """
name: "data"
layer { name: "in" type: "Input" top: "a" top: "b"
        input_param { shape { dim: 3 dim: 2 dim: 2 } shape { dim: 3 } } }
layer { name: "out" type: "HDF5Output" bottom: "a" bottom: "b" hdf5_output_param { file_name: "out.h5" } }
""", build_nothing, forwards=1, inputs={"a": (3, 2, 2), "b": (3,)}, h5out="out.h5",
              note="datasets data/label in legacy 4-d shape"),
    data_case("window_data_warp", """
name: "data" layer { name: "w" type: "WindowData" top: "data" top: "label"
  window_data_param { source: "windows.txt" root_folder: "img/" batch_size: 4 fg_fraction: 0.5 scale: 0.5
                      bg_threshold: 0.2 }
  transform_param { crop_size: 8 mean_value: 50 } }
""", build_windows, forwards=1, note="one fg and one bg window: sampling is deterministic"),
    data_case("window_data_context_square_mean_file", """
name: "data" layer { name: "w" type: "WindowData" top: "data" top: "label"
  window_data_param { source: "windows.txt" root_folder: "img/" batch_size: 3 fg_fraction: 0.34
                      context_pad: 2 crop_mode: "square" fg_threshold: 0.8 bg_threshold: 0.2 }
  transform_param { crop_size: 10 mean_file: "wmean.binaryproto" } }
""", build_windows, forwards=1, note="context padding past the image border, squared box, centred mean crop"),
]


# ----------------------------------------------------------------- generator
def _collect_files(root):
    files = {}
    for base, _, names in os.walk(root):
        for n in names:
            full = os.path.join(base, n)
            rel = os.path.relpath(full, root)
            if n == "out.h5" or n.endswith(".prototxt"):
                continue
            with open(full, "rb") as f:
                files["file/" + rel] = np.frombuffer(f.read(), dtype=np.uint8)
    return files


def generate(case, caffe, rng):
    """Build the case's sources with the real Caffe's tools and record its tops."""
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        try:
            case["build"](d, rng, caffe)
            arrays = _collect_files(d)
            with open("net.prototxt", "w") as f:
                f.write(case["prototxt"])
            phase = caffe.TRAIN if case["phase"] == "TRAIN" else caffe.TEST
            net = caffe.Net("net.prototxt", phase)
            if case["memory"] is not None:
                data, labels = case["memory"](rng)
                arrays["memory/data"], arrays["memory/labels"] = data, labels
                net.set_input_arrays(data, labels)
            for name, shape in (case["inputs"] or {}).items():
                value = rng.randn(*shape).astype(np.float32)
                net.blobs[name].data[...] = value
                arrays["input/" + name] = value
            tops = [t for lname in net._layer_names for t in net.top_names[lname]]
            inputs = case["inputs"] or {}
            for i in range(case["forwards"]):
                net.forward()
                for t in tops:
                    if t not in inputs:
                        arrays["out/%d/%s" % (i, t)] = net.blobs[t].data.copy()
            del net
            if case["h5out"]:
                import h5py

                with h5py.File(case["h5out"], "r") as f:
                    for k in f:
                        arrays["h5/" + k] = f[k][()]
        finally:
            os.chdir(cwd)
    meta = {k: case[k] for k in ("kind", "name", "prototxt", "phase", "forwards", "tol", "h5out", "note")}
    meta["memory"] = case["memory"] is not None
    meta["inputs"] = sorted(case["inputs"] or {})
    json.dumps(meta)
    return meta, arrays
