"""caffe.io against real pycaffe (golden fixtures in tests/golden/data/io) and its contracts.

Modelled on pycaffe's python/caffe/test/test_io.py, plus the Transformer, resizing,
oversampling and image loading that pycaffe's tests do not cover.
"""

from __future__ import annotations

import builtins
import time

import numpy as np
import pytest

import caffe_compat as caffe
from caffe_compat import io as cio
from caffe_compat.errors import BlobNotFoundError, CaffeCompatError, DataError, ShapeError, UnsupportedError
from caffe_compat.proto import caffe_pb2
from golden_harness import assert_close, fixtures, load

pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")


def _fixtures(kind: str) -> list:
    paths = fixtures(kind, groups=("io",))
    return [pytest.param(load(p), id=p.stem) for p in paths]


def _bytes(arr: np.ndarray) -> bytes:
    return np.asarray(arr, dtype=np.uint8).tobytes()


# ===================================================================== golden
@pytest.mark.parametrize("fx", _fixtures("io_resize"))
def test_resize_image_matches_pycaffe(fx):
    out = cio.resize_image(fx.arrays["input"], fx.meta["new_dims"], fx.meta["order"])
    assert out.dtype == np.float32
    assert_close(out, fx.arrays["output"], 1e-6, fx.id)


@pytest.mark.parametrize("fx", _fixtures("io_oversample"))
def test_oversample_matches_pycaffe(fx):
    images = [fx.arrays[f"image/{i}"] for i in range(fx.meta["count"])]
    out = cio.oversample(images, fx.meta["crop"])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, fx.arrays["output"])


def _transformer_from(fx) -> cio.Transformer:
    st = fx.meta["settings"]
    t = cio.Transformer({"data": tuple(fx.meta["blob_shape"])})
    if "transpose" in st:
        t.set_transpose("data", tuple(st["transpose"]))
    if "channel_swap" in st:
        t.set_channel_swap("data", tuple(st["channel_swap"]))
    if "raw_scale" in st:
        t.set_raw_scale("data", st["raw_scale"])
    if "mean" in st:
        t.set_mean("data", fx.arrays["mean"])
    if "input_scale" in st:
        t.set_input_scale("data", st["input_scale"])
    return t


@pytest.mark.parametrize("fx", _fixtures("io_transformer"))
def test_transformer_matches_pycaffe(fx):
    t = _transformer_from(fx)
    if "mean_set" in fx.arrays:
        assert_close(t.mean["data"], fx.arrays["mean_set"], 1e-6, f"{fx.id}: mean after set_mean")
    for i in range(fx.meta["count"]):
        data = fx.arrays[f"data/{i}"]
        before = data.copy()
        pre = t.preprocess("data", data)
        np.testing.assert_array_equal(data, before)  # the caller's array is left alone
        assert pre.dtype == np.float32
        assert_close(pre, fx.arrays[f"pre/{i}"], 1e-6, f"{fx.id}: preprocess {i}")
        if f"post/{i}" in fx.meta.get("errors", {}):
            with pytest.raises(ValueError):  # pycaffe squeezes the single channel, then fails
                t.deprocess("data", pre)
        else:
            assert_close(t.deprocess("data", pre), fx.arrays[f"post/{i}"], 1e-6,
                         f"{fx.id}: deprocess {i}")


@pytest.mark.parametrize("fx", _fixtures("io_blob"))
def test_blobproto_conversions_match_pycaffe(fx):
    arrays = []
    for i in range(fx.meta["count"]):
        arr = fx.arrays[f"arr/{i}"]
        arrays.append(arr)
        blob = cio.array_to_blobproto(arr, diff=arr * 0.5 if i == 0 else None)
        assert blob.SerializeToString() == _bytes(fx.arrays[f"blob/{i}"]), f"blob {i} bytes"
        back = cio.blobproto_to_array(caffe_pb2.BlobProto.FromString(blob.SerializeToString()))
        golden = fx.arrays[f"back/{i}"]
        assert back.dtype == golden.dtype == np.float64
        np.testing.assert_array_equal(back, golden)
        if f"back_diff/{i}" in fx.arrays:
            np.testing.assert_array_equal(cio.blobproto_to_array(blob, return_diff=True),
                                          fx.arrays[f"back_diff/{i}"])
    legacy = caffe_pb2.BlobProto.FromString(_bytes(fx.arrays["legacy_blob"]))
    np.testing.assert_array_equal(cio.blobproto_to_array(legacy), fx.arrays["legacy_back"])
    vec = cio.arraylist_to_blobprotovector_str(arrays[:3])
    assert vec == _bytes(fx.arrays["vector"])
    for i, a in enumerate(cio.blobprotovector_str_to_arraylist(vec)):
        np.testing.assert_array_equal(a, fx.arrays[f"vector_back/{i}"])
        assert a.dtype == np.float64


@pytest.mark.parametrize("fx", _fixtures("io_datum"))
def test_datum_conversions_match_pycaffe(fx):
    for name, label in fx.meta["labels"].items():
        datum = cio.array_to_datum(fx.arrays["arr/" + name], label)
        assert datum.SerializeToString() == _bytes(fx.arrays["datum/" + name]), name
        back = cio.datum_to_array(datum)
        golden = fx.arrays["back/" + name]
        assert back.dtype == golden.dtype, name
        np.testing.assert_array_equal(back, golden)


def _image_cases():
    out = []
    for p in fixtures("io_load_image", groups=("io",)):
        fx = load(p)
        for key in sorted(fx.arrays):
            if key.startswith("file/"):
                fname = key[5:]
                for color in (True, False):
                    out.append(pytest.param(fx, fname, color, id=f"{fname}-{'color' if color else 'gray'}"))
    return out


@pytest.mark.parametrize("fx, fname, color", _image_cases())
def test_load_image_matches_pycaffe(fx, fname, color, tmp_path):
    path = tmp_path / fname
    path.write_bytes(_bytes(fx.arrays["file/" + fname]))
    img = cio.load_image(str(path), color=color)
    key = ("color/" if color else "gray/") + fname
    assert img.dtype == np.float32
    assert img.shape[2] == (3 if color else 1)
    if key in fx.meta["errors"]:
        # pycaffe cannot grey a grey+alpha image (skimage's rgb2gray wants 3 channels);
        # we return its grey channel.
        colour = cio.load_image(str(path), color=True)
        np.testing.assert_array_equal(img[:, :, 0], colour[:, :, 0])
        return
    golden = fx.arrays[key]
    if golden.shape[2] == 2:
        # pycaffe hands back grey+alpha as 2 channels; we give the grey channel (×3).
        golden = np.repeat(golden[:, :, :1], img.shape[2], axis=2)
    tol = 2 / 255 if fname.endswith(".jpg") else 1e-7  # JPEG decoders may differ by a step
    assert_close(img, golden, tol, f"{fx.id}: {key}")


# ============================================================ pycaffe's tests
def test_blobproto_old_format_is_4d():
    blob = caffe_pb2.BlobProto()
    blob.data.extend(list(np.zeros((10, 10)).flatten()))
    blob.num, blob.channels, blob.height, blob.width = (1, 1, 10, 10)
    assert cio.blobproto_to_array(blob).shape == (1, 1, 10, 10)


def test_blobproto_new_format_keeps_shape():
    blob = caffe_pb2.BlobProto()
    blob.data.extend(list(np.zeros((10, 10)).flatten()))
    blob.shape.dim.extend([10, 10])
    assert cio.blobproto_to_array(blob).shape == (10, 10)


def test_blobproto_without_shape_is_an_error():
    blob = caffe_pb2.BlobProto()
    blob.data.extend(list(np.zeros(100)))
    with pytest.raises(ValueError, match="100 value"):
        cio.blobproto_to_array(blob)


def test_blobproto_scalar():
    blob = caffe_pb2.BlobProto()
    blob.data.extend([123.0])
    assert cio.blobproto_to_array(blob) == 123


def test_datum_label_adds_bytes():
    d1 = cio.array_to_datum(np.ones((10, 10, 3)), label=1)
    d2 = cio.array_to_datum(np.ones((10, 10, 3)))
    assert len(d1.SerializeToString()) > len(d2.SerializeToString())


# ==================================================================== contracts
def test_io_is_pycaffes_module_path():
    import caffe_compat.io

    assert caffe.io is caffe_compat.io
    for name in ("load_image", "resize_image", "oversample", "Transformer", "blobproto_to_array",
                 "array_to_blobproto", "arraylist_to_blobprotovector_str",
                 "blobprotovector_str_to_arraylist", "array_to_datum", "datum_to_array"):
        assert callable(getattr(caffe.io, name)), name


def test_double_data_blob_is_read():
    blob = caffe_pb2.BlobProto()
    blob.double_data.extend([1.5, 2.5])
    blob.shape.dim.append(2)
    np.testing.assert_array_equal(cio.blobproto_to_array(blob), [1.5, 2.5])


def test_unpacked_blob_vector_is_read():
    """Writers that stored floats unpacked (a tag per value) still read correctly."""
    def varint(n):
        out = bytearray()
        while True:
            b, n = n & 0x7F, n >> 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)

    values = np.array([1.0, -2.0, 3.5], dtype="<f4")
    shape = bytes([0x0A]) + varint(1) + bytes([3])   # BlobShape.dim packed: [3]
    body = bytes([0x3A]) + varint(len(shape)) + shape  # BlobProto.shape (field 7)
    body += b"".join(bytes([0x2D]) + v.tobytes() for v in values)  # data, unpacked
    vec = bytes([0x0A]) + varint(len(body)) + body
    (arr,) = cio.blobprotovector_str_to_arraylist(vec)
    np.testing.assert_array_equal(arr, values)


def test_float_datum_fast_path_agrees_with_the_field():
    arr = np.random.RandomState(0).randn(3, 17, 5)
    datum = cio.array_to_datum(arr, label=2)
    assert list(datum.float_data) == list(arr.astype(np.float32).reshape(-1))
    again = caffe_pb2.Datum.FromString(datum.SerializeToString())
    np.testing.assert_array_equal(cio.datum_to_array(again), arr.astype(np.float32))


def test_big_mean_file_converts_quickly():
    """A 3×512×512 mean (the size of ImageNet means, ×4) converts without per-value loops."""
    arr = np.random.RandomState(0).rand(3, 512, 512).astype(np.float32)
    start = time.perf_counter()
    blob = cio.array_to_blobproto(arr)
    data = blob.SerializeToString()
    back = cio.blobproto_to_array(caffe_pb2.BlobProto.FromString(data))
    elapsed = time.perf_counter() - start
    np.testing.assert_array_equal(back, arr)
    assert elapsed < 1.0, f"{elapsed:.2f}s for 786k values"


def test_encoded_datum_is_a_clear_error():
    datum = caffe_pb2.Datum(channels=3, height=2, width=2, data=b"\xff\xd8", encoded=True)
    with pytest.raises(DataError, match="encoded"):
        cio.datum_to_array(datum)


ERRORS = [
    ("unknown input", lambda t: t.preprocess("image", np.zeros((4, 4, 3))), BlobNotFoundError, "image"),
    ("transpose length", lambda t: t.set_transpose("data", (1, 0)), ShapeError, "3 axes"),
    ("channel swap length", lambda t: t.set_channel_swap("data", (1, 0)), ShapeError, "3"),
    ("mean channels", lambda t: t.set_mean("data", np.zeros(4)), ShapeError, "4 mean value"),
    ("mean rank", lambda t: t.set_mean("data", np.zeros((1, 3, 4, 4))), ShapeError, "shape"),
    ("raw scale unknown input", lambda t: t.set_raw_scale("x", 255), KeyError, "x"),
]


@pytest.mark.parametrize("what, call, exc, text", ERRORS, ids=[e[0] for e in ERRORS])
def test_transformer_errors(what, call, exc, text):
    t = cio.Transformer({"data": (1, 3, 4, 4)})
    with pytest.raises(exc, match=text) as info:
        call(t)
    assert isinstance(info.value, CaffeCompatError)


def test_array_to_datum_needs_3d():
    with pytest.raises(ValueError, match=r"\[4, 4\]"):
        cio.array_to_datum(np.zeros((4, 4)))


def test_load_image_missing_and_corrupt(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        cio.load_image(str(tmp_path / "missing.png"))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match="bad.jpg"):
        cio.load_image(str(bad))


def test_load_image_cmyk_is_converted_to_rgb(tmp_path):
    from PIL import Image

    rgb = (np.random.RandomState(1).rand(5, 6, 3) * 255).astype(np.uint8)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    img = cio.load_image(str(tmp_path / "cmyk.jpg"))
    assert img.shape == (5, 6, 3)
    assert np.abs(img * 255 - rgb).max() < 40  # JPEG in CMYK space is lossy; colours survive


def test_resize_bad_order():
    with pytest.raises(ValueError, match="0..5"):
        cio.resize_image(np.zeros((4, 4, 3)), (2, 2), interp_order=7)


def test_resize_spline_without_scipy_is_a_clear_error(monkeypatch):
    real_import = builtins.__import__

    def no_scipy(name, *args, **kwargs):
        if name.startswith("scipy"):
            raise ImportError("no scipy here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    with pytest.raises(UnsupportedError, match="SciPy"):
        cio.resize_image(np.random.rand(5, 5, 3), (3, 3), interp_order=3)
    cio.resize_image(np.random.rand(5, 5, 3), (3, 3), interp_order=1)  # no SciPy needed


def test_oversample_crop_too_big():
    with pytest.raises(ShapeError, match="larger"):
        cio.oversample([np.zeros((4, 4, 3))], (5, 4))


def test_oversample_mirrors_are_flipped_crops():
    im = np.random.RandomState(0).rand(7, 9, 2).astype(np.float32)
    crops = cio.oversample([im], (3, 4))
    np.testing.assert_array_equal(crops[5:], crops[:5, :, ::-1, :])
    np.testing.assert_array_equal(crops[0], im[:3, :4])
    np.testing.assert_array_equal(crops[3], im[4:, 5:])
    np.testing.assert_array_equal(crops[4], im[2:5, 2:6])  # centre (3.5, 4.5) ± (1.5, 2), truncated
