"""Caffe's DataTransformer, the Datum codec, OpenCV-style images and the databases.

Numbers against real Caffe are pinned by the ``data`` golden fixtures
(``tests/test_data_layers.py`` replays them); here the transformer is checked
against a per-pixel transcription of Caffe's ``Transform`` loop, TRAIN-phase
randomness by its invariants, and the helpers by round trips and errors.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from caffe_compat.data import datum as dm
from caffe_compat.data import image as im
from caffe_compat.data.db import DBReader, DBWriter, backend_name
from caffe_compat.data.transformer import DataTransformer, load_mean_file
from caffe_compat.errors import DataError, UnsupportedError
from caffe_compat.proto import caffe_pb2
from caffe_compat.proto.files import parse_text

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST


def tparam(text: str) -> caffe_pb2.TransformationParameter:
    return parse_text(text, caffe_pb2.TransformationParameter())


def caffe_loop(x: np.ndarray, p: caffe_pb2.TransformationParameter, mean: np.ndarray | None,
               h_off: int, w_off: int, mirror: bool) -> np.ndarray:
    """Caffe's DataTransformer::Transform(const Datum&, Dtype*), pixel by pixel."""
    c_, h_, w_ = x.shape
    cs = p.crop_size
    height, width = (cs, cs) if cs else (h_, w_)
    mv = list(p.mean_value) * (c_ if len(p.mean_value) == 1 else 1)
    out = np.zeros((c_, height, width), dtype=np.float32)
    scale = np.float32(p.scale)
    for c in range(c_):
        for h in range(height):
            for w in range(width):
                v = np.float32(x[c, h_off + h, w_off + w])
                if mean is not None:
                    v = np.float32(v - mean[c, h_off + h, w_off + w])
                elif mv:
                    v = np.float32(v - np.float32(mv[c]))
                out[c, h, width - 1 - w if mirror else w] = np.float32(v * scale)
    return out


MEAN = (np.arange(3 * 6 * 7, dtype=np.float32).reshape(3, 6, 7) * 1.37) % 255

TEST_CASES = [
    ("identity", "", None),
    ("scale", "scale: 0.00390625", None),
    ("mean_values", "mean_value: 104 mean_value: 117.5 mean_value: 123", None),
    ("one_mean_value", "mean_value: 127.25 scale: 0.017", None),
    ("crop_center", "crop_size: 4", None),
    ("crop_center_mean_file", "crop_size: 3 scale: 2", "mean"),
    ("mean_file", "", "mean"),
    ("crop_odd_margin", "crop_size: 5 mean_value: 3", None),
]


@pytest.mark.parametrize("dtype", [np.uint8, np.float32], ids=["bytes", "float_data"])
@pytest.mark.parametrize("name,text,mean", TEST_CASES, ids=[c[0] for c in TEST_CASES])
def test_test_phase_matches_caffe_loop(name, text, mean, dtype, tmp_path):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, size=(2, 3, 6, 7)).astype(dtype)
    if dtype == np.float32:
        x = x + rng.random(x.shape).astype(np.float32)
    p = tparam(text)
    if mean:
        path = tmp_path / "mean.binaryproto"
        blob = caffe_pb2.BlobProto(num=1, channels=3, height=6, width=7)
        blob.data.extend(MEAN.ravel().tolist())
        path.write_bytes(blob.SerializeToString())
        p.mean_file = str(path)
    t = DataTransformer(p, TEST)
    out = t.transform(x)
    cs = p.crop_size
    ho, wo = ((6 - cs) // 2, (7 - cs) // 2) if cs else (0, 0)
    for i in range(2):
        want = caffe_loop(x[i], p, MEAN if mean else None, ho, wo, False)
        np.testing.assert_array_equal(out[i], want)


def test_train_crop_and_mirror_are_random_but_valid_windows():
    x = np.arange(64 * 1 * 5 * 6, dtype=np.float32).reshape(64, 1, 5, 6)
    t = DataTransformer(tparam("crop_size: 3 mirror: true"), TRAIN, np.random.default_rng(0))
    out = t.transform(x)
    seen_offsets, mirrored = set(), 0
    for i in range(64):
        found = False
        for ho in range(3):
            for wo in range(4):
                win = x[i, :, ho:ho + 3, wo:wo + 3]
                for flip in (False, True):
                    if np.array_equal(out[i], win[..., ::-1] if flip else win):
                        seen_offsets.add((ho, wo))
                        mirrored += flip
                        found = True
        assert found, f"item {i} is not a (mirrored) 3x3 window of its input"
    assert len(seen_offsets) > 6, "TRAIN crops should use many offsets"
    assert 10 < mirrored < 54, "about half of the items should be mirrored"


def test_mirror_is_random_at_test_too_and_crop_is_central():
    x = np.random.default_rng(1).integers(0, 256, size=(40, 2, 4, 4)).astype(np.uint8)
    out = DataTransformer(tparam("mirror: true crop_size: 2"), TEST, np.random.default_rng(2)).transform(x)
    centre = x[:, :, 1:3, 1:3].astype(np.float32)
    flipped = [np.array_equal(out[i], centre[i][..., ::-1]) and not np.array_equal(out[i], centre[i])
               for i in range(40)]
    same = [np.array_equal(out[i], centre[i]) for i in range(40)]
    assert all(f or s for f, s in zip(flipped, same))
    assert any(flipped), "Caffe mirrors at random in TEST phase as well"


def test_same_seed_same_choices():
    x = np.random.default_rng(1).integers(0, 256, size=(8, 3, 9, 9)).astype(np.uint8)
    p = tparam("mirror: true crop_size: 5")
    a = DataTransformer(p, TRAIN, np.random.default_rng(42)).transform(x)
    b = DataTransformer(p, TRAIN, np.random.default_rng(42)).transform(x)
    c = DataTransformer(p, TRAIN, np.random.default_rng(43)).transform(x)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_infer_shape():
    t = DataTransformer(tparam("crop_size: 4"), TEST)
    assert t.infer_shape((3, 10, 8)) == (1, 3, 4, 4)
    assert DataTransformer(tparam(""), TEST).infer_shape((1, 5, 6)) == (1, 1, 5, 6)


ERRORS = [
    ("force_both", "force_color: true force_gray: true", None, "force_color and force_gray"),
    ("mean_file_and_value", 'mean_file: "m" mean_value: 1', None, "mean_file and mean_value"),
    ("mean_file_missing", 'mean_file: "no/such.binaryproto"', None, "no/such.binaryproto"),
    ("two_means_for_three_channels", "mean_value: 1 mean_value: 2", (1, 3, 4, 4), "1 mean_value or as many"),
    ("crop_too_big", "crop_size: 5", (1, 3, 4, 4), "crop_size 5 is larger"),
]


@pytest.mark.parametrize("name,text,shape,match", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors(name, text, shape, match):
    with pytest.raises(DataError, match=match):
        t = DataTransformer(tparam(text), TEST)
        t.transform(np.zeros(shape, dtype=np.uint8))


def test_mean_file_shape_must_match(tmp_path):
    path = tmp_path / "m.binaryproto"
    path.write_bytes(caffe_pb2.BlobProto(num=1, channels=3, height=2, width=2, data=[0.0] * 12)
                     .SerializeToString())
    assert load_mean_file(str(path)).shape == (3, 2, 2)
    t = DataTransformer(tparam(f'mean_file: "{path}"'), TEST)
    with pytest.raises(DataError, match=r'mean_file ".*m\.binaryproto" has shape \[3, 2, 2\]'):
        t.transform(np.zeros((1, 3, 4, 4), np.uint8))


# -------------------------------------------------------------------- datums
def test_datum_round_trips():
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    d = dm.array_to_datum(a, 7)
    assert (d.channels, d.height, d.width, d.label, len(d.data)) == (2, 3, 4, 7, 24)
    np.testing.assert_array_equal(dm.datum_to_array(d), a)
    f = np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 4)
    d = dm.array_to_datum(f)
    assert not d.data and len(d.float_data) == 24
    np.testing.assert_array_equal(dm.datum_to_array(d), f)
    with pytest.raises(ValueError, match="Incorrect array shape"):
        dm.array_to_datum(np.zeros((2, 2)))


def test_encoded_datum_decodes_bgr(image_backend):
    rgb = np.random.default_rng(0).integers(0, 256, size=(5, 6, 3)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    d = dm.encoded_datum(buf.getvalue(), 3)
    arr = dm.datum_to_array(d)
    assert arr.shape == (3, 5, 6)
    np.testing.assert_array_equal(arr, rgb.transpose(2, 0, 1)[::-1])


@pytest.mark.parametrize("field,value", [("data", b"\x00" * 5), ("float_data", [1.0] * 5)])
def test_datum_size_mismatch_is_an_error(field, value):
    d = caffe_pb2.Datum(channels=1, height=2, width=3)
    if field == "data":
        d.data = value
    else:
        d.float_data.extend(value)
    with pytest.raises(DataError, match="needs 6"):
        dm.datum_to_array(d, what="record b'k'")


def test_batch_of_mixed_shapes_names_the_item():
    a = dm.array_to_datum(np.zeros((1, 2, 2), np.uint8))
    b = dm.array_to_datum(np.zeros((1, 3, 2), np.uint8))
    with pytest.raises(DataError, match="second"):
        dm.datums_to_batch([a, b], whats=["first", "second"])


# -------------------------------------------------------------------- images
def _png(arr: np.ndarray, mode: str | None = None, **info) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format="PNG", **info)
    return buf.getvalue()


def test_decode_modes_follow_opencv(image_backend):
    rgba = np.random.default_rng(0).integers(0, 256, size=(3, 4, 4)).astype(np.uint8)
    data = _png(rgba)
    assert im.decode(data, im.IMREAD_UNCHANGED).shape == (3, 4, 4)  # BGRA
    np.testing.assert_array_equal(im.decode(data, im.IMREAD_UNCHANGED)[..., 3], rgba[..., 3])
    np.testing.assert_array_equal(im.decode(data, im.IMREAD_COLOR), rgba[..., 2::-1])
    gray = rgba[..., 0]
    g = _png(gray)
    assert im.decode(g, im.IMREAD_UNCHANGED).shape == (3, 4, 1)
    np.testing.assert_array_equal(im.decode(g, im.IMREAD_COLOR), np.repeat(gray[..., None], 3, -1))
    la = Image.fromarray(np.stack([gray, rgba[..., 3]], -1), mode="LA")
    buf = io.BytesIO()
    la.save(buf, format="PNG")
    assert im.decode(buf.getvalue(), im.IMREAD_UNCHANGED).shape == (3, 4, 4)
    np.testing.assert_array_equal(im.decode(buf.getvalue(), im.IMREAD_GRAYSCALE)[..., 0], gray)


def test_sixteen_bit_png_keeps_the_high_byte(image_backend):
    a = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000).astype(np.uint16)
    img = Image.fromarray(a)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    np.testing.assert_array_equal(im.decode(buf.getvalue(), im.IMREAD_GRAYSCALE)[..., 0], a >> 8)
    with pytest.raises(DataError, match="16-bit"):
        im.decode(buf.getvalue(), im.IMREAD_UNCHANGED)


def test_bad_image_data_and_missing_file(image_backend):
    with pytest.raises(DataError, match="cannot decode"):
        im.decode(b"not an image", what="x.png")
    with pytest.raises(DataError, match="no/such.png"):
        im.read("no/such.png")


def test_resize_same_size_is_a_copy_and_2x_is_area_average(image_backend):
    a = np.random.default_rng(0).integers(0, 256, size=(4, 6, 3)).astype(np.uint8)
    b = im.resize_linear(a, 4, 6)
    assert b is not a and np.array_equal(a, b)
    half = im.resize_linear(a, 2, 3).astype(int)
    s = a.astype(int)
    want = (s[0::2, 0::2] + s[1::2, 0::2] + s[0::2, 1::2] + s[1::2, 1::2] + 2) >> 2
    np.testing.assert_array_equal(half, want)


def test_resize_constant_stays_constant_and_range_holds(image_backend):
    a = np.full((7, 5, 1), 200, np.uint8)
    assert (im.resize_linear(a, 13, 3) == 200).all()
    r = np.random.default_rng(1).integers(0, 256, size=(9, 11, 3)).astype(np.uint8)
    out = im.resize_linear(r, 20, 4)
    assert out.shape == (20, 4, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("ext", ["png", "bmp", "jpg"])
def test_encode_round_trip(ext, image_backend):
    y, x, c = np.mgrid[0:8, 0:8, 0:3]
    a = (20 * x + 10 * y + 5 * c).astype(np.uint8)  # smooth, so JPEG stays close
    back = im.decode(im.encode(a, ext), im.IMREAD_COLOR)
    tol = 8 if ext == "jpg" else 0
    assert np.abs(back.astype(int) - a.astype(int)).max() <= tol
    with pytest.raises(DataError, match="cannot encode"):
        im.encode(a, "xyz")


# ----------------------------------------------------------------- databases
@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
def test_db_round_trip_in_key_order_and_loop(backend, tmp_path):
    path = tmp_path / "db"
    with DBWriter(path, backend) as w:
        for k in (b"b", b"a", b"c"):
            w.put(k, k * 2)
    with pytest.raises(DataError, match="already exists"):
        DBWriter(path, backend)
    r = DBReader(path, backend)
    assert list(r) == [(b"a", b"aa"), (b"b", b"bb"), (b"c", b"cc")]
    assert len(r) == 3 and r.first() == (b"a", b"aa")
    it = r.records(skip=2)
    assert [next(it)[0] for _ in range(4)] == [b"c", b"a", b"b", b"c"]
    other = DBReader(path, backend)  # a second reader shares the open database
    assert other.first() == (b"a", b"aa")
    other.close()
    r.close()


def test_lmdb_map_grows(tmp_path):
    w = DBWriter(tmp_path / "db", "lmdb", map_size=1 << 16)
    for i in range(50):
        w.put(f"{i:04d}", os.urandom(4096))
    w.close()
    assert len(DBReader(tmp_path / "db", "lmdb")) == 50


def test_db_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        DBReader(tmp_path / "nothing", "lmdb")
    with pytest.raises(DataError, match="unknown database backend"):
        backend_name("sqlite")
    assert backend_name(caffe_pb2.DataParameter.LMDB) == "lmdb"
    DBWriter(tmp_path / "empty", "lmdb").close()
    with pytest.raises(DataError, match="is empty"):
        DBReader(tmp_path / "empty", "lmdb").first()


def test_pillow_path_resizes_as_opencv_does():
    """The numpy INTER_LINEAR of the Pillow path against OpenCV's own resize, many shapes."""
    if im._cv2() is None:
        pytest.skip("opencv-python-headless is not installed")
    rng = np.random.RandomState(11)
    for _ in range(60):
        h, w = rng.randint(1, 40, 2)
        nh, nw = rng.randint(1, 60, 2)
        channels = rng.choice([1, 3, 4])
        img = rng.randint(0, 256, (h, w, channels)).astype(np.uint8)
        with im.use_backend("opencv"):
            want = im.resize_linear(img, nh, nw)
        with im.use_backend("pillow"):
            got = im.resize_linear(img, nh, nw)
        np.testing.assert_array_equal(got, want, err_msg=f"{h}x{w}x{channels} -> {nh}x{nw}")


def test_backend_choice(monkeypatch):
    monkeypatch.setenv(im.BACKEND_ENV, "pillow")
    assert im.backend() == "pillow"
    monkeypatch.setenv(im.BACKEND_ENV, "gif")
    with pytest.raises(UnsupportedError, match="expected one of opencv, pillow"):
        im.backend()
    monkeypatch.delenv(im.BACKEND_ENV)
    assert im.backend() == ("opencv" if im._cv2() is not None else "pillow")
    with pytest.raises(UnsupportedError):
        im.set_backend("tiff")
    monkeypatch.setattr(im, "_cv2", lambda: None)
    assert im.backend() == "pillow"
    with pytest.raises(UnsupportedError, match="caffe-compat\\[opencv\\]"):
        im.set_backend("opencv")
