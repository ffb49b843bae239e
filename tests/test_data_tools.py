"""Caffe's data tools as ``caffe-compat`` subcommands: convert_imageset,
compute_image_mean, extract_features — on small data built in the test.

The pixel values they store come from the same decode/resize code that the
``data`` golden fixtures pin against a real Caffe; here the tools' own
contract is checked: keys, labels, flags, files, errors, and that a database
written by convert_imageset feeds a Data layer exactly as the list feeds an
ImageData layer.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import caffe_compat as caffe
from caffe_compat.cli import main
from caffe_compat.data import DBReader, datum_to_array, parse_datum
from caffe_compat.data.image import IMREAD_COLOR, decode
from caffe_compat.proto import caffe_pb2


def save(path, arr, fmt, **kw):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


@pytest.fixture
def images(tmp_path):
    """Five colour images (PNG and JPEG) of one size and a list file."""
    root = tmp_path / "root"
    root.mkdir()
    rng = np.random.default_rng(0)
    lines, files = [], {}
    for i in range(5):
        name = f"img{i}.{'png' if i % 2 else 'jpg'}"
        arr = rng.integers(0, 256, (6, 8, 3)).astype(np.uint8)
        files[name] = save(root / name, arr, "PNG" if i % 2 else "JPEG", quality=90)
        lines.append(f"{name} {i + 10}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    return tmp_path, files


def records(path, backend="lmdb"):
    with DBReader(path, backend) as r:
        return [(k.decode(), parse_datum(v)) for k, v in r]


def convert(tmp, *flags, db="db"):
    return main(["convert_imageset", *flags, f"{tmp}/root/", f"{tmp}/list.txt", f"{tmp}/{db}"])


# ----------------------------------------------------------- convert_imageset
@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
def test_convert_raw_keys_labels_pixels(images, backend):
    tmp, files = images
    assert convert(tmp, f"--backend={backend}") == 0
    recs = records(tmp / "db", backend)
    assert [k for k, _ in recs] == [f"{i:08d}_img{i}.{'png' if i % 2 else 'jpg'}" for i in range(5)]
    for i, (key, d) in enumerate(recs):
        assert d.label == i + 10 and not d.encoded and (d.channels, d.height, d.width) == (3, 6, 8)
        want = decode(files[key.split("_", 1)[1]], IMREAD_COLOR).transpose(2, 0, 1)
        np.testing.assert_array_equal(datum_to_array(d), want)


def test_convert_gray_resize(images):
    tmp, _ = images
    assert convert(tmp, "--gray", "--nocheck_size", "--resize_height=4", "-resize_width", "5") == 0
    assert all((d.channels, d.height, d.width) == (1, 4, 5) for _, d in records(tmp / "db"))


def test_convert_encoded_keeps_files_or_reencodes(images):
    tmp, files = images
    assert convert(tmp, "--encoded") == 0
    for key, d in records(tmp / "db"):
        assert d.encoded and d.data == files[key.split("_", 1)[1]]
    assert convert(tmp, "--encode_type=png", db="db2") == 0
    for key, d in records(tmp / "db2"):
        assert d.encoded and d.data[:4] == b"\x89PNG"
        want = decode(files[key.split("_", 1)[1]]).transpose(2, 0, 1)
        np.testing.assert_array_equal(datum_to_array(d), want)


def test_convert_shuffle_keeps_pairs(images):
    tmp, _ = images
    caffe.set_random_seed(4)
    assert convert(tmp, "--shuffle") == 0
    recs = records(tmp / "db")
    names = [k.split("_", 1)[1] for k, _ in recs]
    assert sorted(names) == sorted(f"img{i}.{'png' if i % 2 else 'jpg'}" for i in range(5))
    assert names != sorted(names)
    assert all(d.label == int(n[3]) + 10 for n, (_, d) in zip(names, recs))


def test_convert_skips_unreadable_and_reports(images, capsys):
    tmp, _ = images
    (tmp / "root" / "img2.jpg").write_bytes(b"broken")
    assert convert(tmp) == 0
    assert len(records(tmp / "db")) == 4
    err = capsys.readouterr().err
    assert "img2.jpg" in err and "1 of 5 images could not be read" in err


def test_convert_check_size_and_existing_db(images, capsys):
    tmp, _ = images
    save(tmp / "root" / "img3.png", np.zeros((2, 2, 3), np.uint8), "PNG")
    assert convert(tmp, "--check_size") == 1
    assert "img3.png" in capsys.readouterr().err
    (tmp / "db2").mkdir()
    assert convert(tmp, db="db2") == 1
    assert "already exists" in capsys.readouterr().err


def test_data_layer_over_converted_db_equals_image_data(images):
    tmp, _ = images
    assert convert(tmp, "--resize_height=5", "--resize_width=7") == 0
    tp = "transform_param { mean_value: 100 scale: 0.5 crop_size: 4 }"
    data = caffe.Net(f'layer {{ name: "d" type: "Data" top: "data" top: "label" {tp} '
                     f'data_param {{ source: "{tmp}/db" backend: LMDB batch_size: 5 }} }}', caffe.TEST)
    img = caffe.Net(f'layer {{ name: "d" type: "ImageData" top: "data" top: "label" {tp} '
                    f'image_data_param {{ source: "{tmp}/list.txt" root_folder: "{tmp}/root/" '
                    f"batch_size: 5 new_height: 5 new_width: 7 }} }}", caffe.TEST)
    a, b = data.forward(), img.forward()
    np.testing.assert_array_equal(a["data"], b["data"])
    np.testing.assert_array_equal(a["label"], b["label"])


# --------------------------------------------------------- compute_image_mean
def test_compute_image_mean(images, capsys):
    tmp, _ = images
    assert convert(tmp) == 0
    assert main(["compute_image_mean", "--backend=lmdb", f"{tmp}/db", f"{tmp}/mean.binaryproto"]) == 0
    blob = caffe_pb2.BlobProto()
    blob.ParseFromString((tmp / "mean.binaryproto").read_bytes())
    assert (blob.num, blob.channels, blob.height, blob.width) == (1, 3, 6, 8)
    stack = np.stack([datum_to_array(d) for _, d in records(tmp / "db")])
    total = np.zeros((3, 6, 8), np.float32)
    for item in stack:
        total += item
    np.testing.assert_array_equal(np.asarray(blob.data, np.float32).reshape(3, 6, 8), total / np.float32(5))
    err = capsys.readouterr().err
    assert "Number of channels: 3" in err and "mean_value channel [2]:" in err
    # The file works as a transform_param mean_file.
    net = caffe.Net(f'layer {{ name: "d" type: "Data" top: "data" '
                    f'transform_param {{ mean_file: "{tmp}/mean.binaryproto" }} '
                    f'data_param {{ source: "{tmp}/db" backend: LMDB batch_size: 5 }} }}', caffe.TEST)
    np.testing.assert_allclose(net.forward()["data"].mean(0), 0, atol=1e-4)


def test_compute_image_mean_of_encoded_and_errors(images, capsys):
    tmp, _ = images
    assert convert(tmp, "--encoded") == 0
    assert main(["compute_image_mean", f"{tmp}/db"]) == 0
    assert main(["compute_image_mean", f"{tmp}/nothing"]) == 1
    assert "no such file" in capsys.readouterr().err


# ----------------------------------------------------------- extract_features
NET = """
name: "feat"
layer {{ name: "d" type: "Data" top: "data" top: "label" transform_param {{ scale: 0.01 }}
  data_param {{ source: "{db}" backend: LMDB batch_size: 2 }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param {{ num_output: 4 weight_filler {{ type: "gaussian" std: 0.1 }} }} }}
layer {{ name: "relu" type: "ReLU" bottom: "ip" top: "relu" }}
"""


def test_extract_features(images):
    tmp, _ = images
    assert convert(tmp) == 0
    proto = tmp / "feat.prototxt"
    proto.write_text(NET.format(db=tmp / "db"))
    ref = caffe.Net(str(proto), caffe.TEST)
    ref.save(str(tmp / "w.caffemodel"))
    want = {"ip": [], "data": []}
    for _ in range(3):
        out = ref.forward(blobs=["ip", "data"])
        want["ip"].extend(out["ip"].copy())
        want["data"].extend(out["data"].copy())
    rc = main(["extract_features", str(tmp / "w.caffemodel"), str(proto), "ip,data",
               f"{tmp}/f_ip,{tmp}/f_data", "3", "lmdb", "CPU"])
    assert rc == 0
    for blob, shape in (("ip", (4, 1, 1)), ("data", (3, 6, 8))):
        recs = records(tmp / f"f_{blob}")
        assert [k for k, _ in recs] == [f"{i:010d}" for i in range(6)]
        for (_, d), w in zip(recs, want[blob]):
            assert (d.channels, d.height, d.width) == shape and not d.data
            np.testing.assert_array_equal(np.asarray(d.float_data, np.float32), w.ravel())


@pytest.mark.parametrize("blobs,dbs,match", [("nope", "x", "Unknown feature blob name nope"),
                                             ("ip,relu", "x", "must be equal")])
def test_extract_features_errors(images, blobs, dbs, match, capsys):
    tmp, _ = images
    assert convert(tmp) == 0
    proto = tmp / "feat.prototxt"
    proto.write_text(NET.format(db=tmp / "db"))
    caffe.Net(str(proto), caffe.TEST).save(str(tmp / "w.caffemodel"))
    assert main(["extract_features", str(tmp / "w.caffemodel"), str(proto), blobs, dbs, "1", "lmdb"]) == 1
    assert match in capsys.readouterr().err


# ---------------------------------------------------------------- make demo
def _demo_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / "demo.py"
    spec = importlib.util.spec_from_file_location("caffe_compat_demo", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_digits_are_mnist_shaped():
    pytest.importorskip("sklearn", reason="the demo's data set ships with scikit-learn")
    images, labels = _demo_module().digits_28x28()
    assert images.shape == (1797, 28, 28) and images.dtype == np.uint8
    assert sorted(set(labels.tolist())) == list(range(10))
    assert images[:, :4].max() == 0 and images[:, :, 24:].max() == 0 and images.max() > 200


@pytest.mark.slow
def test_demo_trains_lenet_above_95_percent():
    pytest.importorskip("sklearn", reason="the demo's data set ships with scikit-learn")
    assert _demo_module().main() == 0
