"""Weights files: .caffemodel (current, V1, V0, legacy 4-d dims, double) and HDF5.

Both directions are proven against real Caffe (fixtures in
``golden/data/formats/``, made by ``golden/cases/formats.py``):

* files real Caffe wrote load here with bit-identical parameters and the same
  outputs;
* files caffe_compat wrote (committed beside the fixtures, re-made here and
  required unchanged) were loaded by real Caffe, which recorded what it read.

Then errors (each a WeightsError naming the file, the layer, the blob index
and both shapes) and large files.

Regenerate the committed caffe_compat-written files with
``.venv/bin/python tests/test_weights_io.py write`` (then ``make golden
GROUPS=formats``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import caffe_compat as caffe
from caffe_compat.errors import WeightsError
from caffe_compat.proto import caffe_pb2
from caffe_compat.weights import is_hdf5_file, read_weights
from golden.cases import formats
from golden_harness import ROOT, assert_close, fixtures, load

DATA = ROOT / "formats"
WEIGHTS = fixtures("weights", ("formats",))


def ours_net(slash: bool) -> caffe.Net:
    """The net whose weights caffe_compat wrote for real Caffe to read."""
    net = caffe.Net(formats.weights_net(slash), caffe.TEST)
    rng = np.random.RandomState(2718)
    for blobs in net.params.values():
        for b in blobs:
            b.data[...] = (rng.randn(*b.data.shape) * 0.5).astype(np.float32)
    return net


def write_ours(directory: Path = DATA) -> None:
    ours_net(True).save(directory / formats.OURS_CAFFEMODEL)
    ours_net(False).save_hdf5(directory / formats.OURS_HDF5)


# ------------------------------------------------------ golden, both ways
def _weights_path(fx, tmp_path: Path) -> Path:
    if fx.meta["file"]:
        return DATA / fx.meta["file"]
    # Always a .caffemodel name: HDF5 must be recognised by content.
    path = tmp_path / "w.caffemodel"
    path.write_bytes(fx.arrays["weights_file"].tobytes())
    return path


@pytest.mark.parametrize("path", WEIGHTS, ids=[p.stem for p in WEIGHTS])
def test_weights_match_caffe(path, tmp_path):
    """Caffe's parameters after loading the file are ours, bit for bit; the
    forward pass agrees."""
    fx = load(path)
    wpath = _weights_path(fx, tmp_path)
    net = caffe.Net(fx.meta["prototxt"], caffe.TEST, weights=str(wpath))
    for key in fx.keys("param"):
        layer, i = key.split("/", 1)[1].rsplit("/", 1)  # layer names may hold '/'
        np.testing.assert_array_equal(net.params[layer][int(i)].data, fx.arrays[key], err_msg=key)
    net.blobs["data"].data[...] = fx.arrays["input/data"]
    net.forward()
    for key in fx.keys("blob"):
        name = key.split("/", 1)[1]
        assert_close(net.blobs[name].data, fx.arrays[key], fx.meta["tol"], f"{fx.id}: {name}")


@pytest.mark.parametrize("name", [formats.OURS_CAFFEMODEL, formats.OURS_HDF5])
def test_committed_ours_files_are_what_we_write(name, tmp_path):
    """Real Caffe read the committed files; they must be what Net.save() and
    Net.save_hdf5() write today (else regenerate, see the module docstring)."""
    write_ours(tmp_path)
    if name.endswith(".h5"):
        with h5py.File(tmp_path / name, "r") as new, h5py.File(DATA / name, "r") as old:
            items: dict[str, dict[str, np.ndarray]] = {"new": {}, "old": {}}
            for key, f in (("new", new), ("old", old)):
                f.visititems(lambda n, o, d=items[key]: d.__setitem__(n, o[()])
                             if isinstance(o, h5py.Dataset) else None)
            assert items["new"].keys() == items["old"].keys()
            for k in items["new"]:
                np.testing.assert_array_equal(items["new"][k], items["old"][k], err_msg=k)
    else:
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes()


def test_saved_layers_equal_caffes(tmp_path):
    """Net.save() writes the LayerParameters real Caffe's Net::ToProto writes."""
    fx = load(DATA / "caffe_written_current.npz")
    theirs = caffe_pb2.NetParameter.FromString(fx.arrays["weights_file"].tobytes())
    net = caffe.Net(fx.meta["prototxt"], caffe.TEST)
    net.save(str(tmp_path / "ours.caffemodel"))
    ours = caffe_pb2.NetParameter.FromString((tmp_path / "ours.caffemodel").read_bytes())
    shapes = [[list(b.shape.dim) for b in layer.blobs] for layer in theirs.layer]
    assert [[list(b.shape.dim) for b in layer.blobs] for layer in ours.layer] == shapes
    for m in (ours, theirs):
        for layer in m.layer:
            del layer.blobs[:]
    assert ours == theirs


# -------------------------------------------------------------- round trips
def test_caffemodel_round_trip_keeps_bits(tmp_path):
    src = ours_net(True)
    src.save(str(tmp_path / "a.caffemodel"))
    dst = caffe.Net(formats.weights_net(True), caffe.TEST, weights=str(tmp_path / "a.caffemodel"))
    for name, blobs in src.params.items():
        for a, b in zip(blobs, dst.params[name]):
            np.testing.assert_array_equal(a.data, b.data)


def test_hdf5_round_trip_with_slash_in_layer_names(tmp_path):
    """Layer names with '/' (GoogLeNet's "inception_3a/1x1") become nested
    HDF5 groups. Real Caffe cannot save such a net to HDF5 (it aborts) and
    ignores nested groups on load; we write and read them."""
    src = ours_net(True)
    path = tmp_path / "w.h5"
    src.save_hdf5(str(path))
    with h5py.File(path, "r") as f:
        assert f["data/conv1/3x3/0"].shape == (4, 3, 3, 3)
    dst = caffe.Net(formats.weights_net(True), caffe.TEST)
    dst.copy_from(str(path))  # detected as HDF5 by content
    for name, blobs in src.params.items():
        for a, b in zip(blobs, dst.params[name]):
            np.testing.assert_array_equal(a.data, b.data)


def test_hdf5_detected_by_content_not_name(tmp_path):
    net = ours_net(False)
    net.save_hdf5(str(tmp_path / "h5.caffemodel"))
    net.save(str(tmp_path / "proto.h5"))
    assert is_hdf5_file(tmp_path / "h5.caffemodel")
    assert not is_hdf5_file(tmp_path / "proto.h5")
    for name in ("h5.caffemodel", "proto.h5"):
        caffe.Net(formats.weights_net(False), caffe.TEST, weights=str(tmp_path / name))


def test_to_proto_write_diff():
    net = ours_net(False)
    net.params["ip1"][0].diff[...] = 3.0
    proto = net.to_proto(write_diff=True)
    ip1 = next(layer for layer in proto.layer if layer.name == "ip1")
    assert list(ip1.blobs[0].diff) == [3.0] * net.params["ip1"][0].count
    assert not len(next(layer for layer in net.to_proto().layer if layer.name == "ip1").blobs[0].diff)


def test_unpacked_and_split_float_runs_read(tmp_path):
    """protobuf allows repeated floats unpacked, or packed in several runs;
    such files take the slow path and still load (legacy dims kept)."""
    w = np.arange(18, dtype=np.float32).reshape(6, 3)
    blob = caffe_pb2.BlobProto(num=1, channels=1, height=6, width=3)
    blob.data.extend(w.reshape(-1))
    packed = blob.SerializeToString()
    # Re-encode field 5 (data) as one fixed32 per value.
    head = caffe_pb2.BlobProto(num=1, channels=1, height=6, width=3).SerializeToString()
    unpacked = head + b"".join(b"\x2d" + np.float32(v).tobytes() for v in w.reshape(-1))
    assert caffe_pb2.BlobProto.FromString(unpacked) == caffe_pb2.BlobProto.FromString(packed)
    layer = caffe_pb2.LayerParameter(name="ip", type="InnerProduct").SerializeToString()
    data = caffe_pb2.NetParameter().SerializeToString() + _field(100, layer + _field(7, unpacked))
    path = tmp_path / "unpacked.caffemodel"
    path.write_bytes(data)
    [(name, [(values, stored, legacy)])] = read_weights(path)
    assert (name, stored, legacy) == ("ip", (1, 1, 6, 3), True)
    np.testing.assert_array_equal(values.reshape(6, 3), w)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    key, n, out = (number << 3) | 2, len(payload), bytearray()
    for v in (key, n):
        while True:
            byte, v = v & 0x7F, v >> 7
            out.append(byte | (0x80 if v else 0))
            if not v:
                break
    return bytes(out) + payload


# ------------------------------------------------------------------- errors
IP_NET = """
name: "e"
layer { name: "input" type: "Input" top: "x" input_param { shape { dim: 2 dim: 8 } } }
layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 5 } }
"""


def _caffemodel(tmp_path: Path, *blobs: tuple[tuple[int, ...], bool, int | None]) -> Path:
    """A weights file for layer "fc": blobs as (dims, legacy?, value count)."""
    net = caffe_pb2.NetParameter()
    layer = net.layer.add(name="fc", type="InnerProduct")
    for dims, legacy, count in blobs:
        b = layer.blobs.add()
        if legacy:
            b.num, b.channels, b.height, b.width = dims
        else:
            b.shape.dim.extend(dims)
        b.data.extend([0.5] * (int(np.prod(dims)) if count is None else count))
    path = tmp_path / "w.caffemodel"
    path.write_bytes(net.SerializeToString())
    return path


def _hdf5(tmp_path: Path, **datasets: tuple[int, ...]) -> Path:
    path = tmp_path / "w.h5"
    with h5py.File(path, "w") as f:
        f.create_group("data")
        for key, shape in datasets.items():
            f[f"data/fc/{key[1:]}"] = np.zeros(shape, np.float32)
    return path


def _no_data_group(tmp_path: Path) -> Path:
    with h5py.File(tmp_path / "w.h5", "w") as f:
        f["weights/fc/0"] = np.zeros((5, 8), np.float32)
    return tmp_path / "w.h5"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncated(tmp_path: Path) -> Path:
    p = _caffemodel(tmp_path, ((5, 8), False, None), ((5,), False, None))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


# (id, make the file, words the message must hold). Real Caffe aborts the
# process on each of these (CAFFE_FACTS in the module docstring of formats.py).
ERRORS = [
    ("missing", lambda t: t / "nope.caffemodel", ["no such"]),
    ("directory", lambda t: t, ["directory"]),
    ("empty", lambda t: _write(t / "e.caffemodel", b""), ["empty"]),
    ("truncated", _truncated, ["cannot parse", "truncated"]),
    ("text_not_binary", lambda t: _write(t / "n.caffemodel", IP_NET.encode()),
     ["cannot parse", "NetParameter"]),
    ("solverstate_not_net", lambda t: _write(t / "s.solverstate", caffe_pb2.SolverState(
        iter=3, learned_net="x.caffemodel").SerializeToString()), ["cannot parse", "NetParameter"]),
    ("no_layers", lambda t: _write(t / "n.caffemodel", caffe_pb2.NetParameter(
        name="n").SerializeToString()), ["holds no layers"]),
    ("blob_count", lambda t: _caffemodel(t, ((5, 8), False, None)),
     ['"fc"', "number of blobs", "file has 1", "expects 2"]),
    ("shape", lambda t: _caffemodel(t, ((5, 4, 2), False, None), ((5,), False, None)),
     ['"fc"', "blob 0", "[5, 4, 2]", "[5, 8]"]),
    ("legacy_shape", lambda t: _caffemodel(t, ((5, 8, 1, 1), True, None), ((5,), False, None)),
     ['"fc"', "blob 0", "[5, 8, 1, 1]", "legacy", "[5, 8]"]),
    ("bias_shape", lambda t: _caffemodel(t, ((5, 8), False, None), ((6,), False, None)),
     ['"fc"', "blob 1", "[6]", "[5]"]),
    ("value_count", lambda t: _caffemodel(t, ((5, 8), False, 39), ((5,), False, None)),
     ['"fc"', "blob 0", "[5, 8]", "40", "39"]),
    ("hdf5_shape", lambda t: _hdf5(t, b0=(5, 4, 2), b1=(5,)),
     ['"fc"', "blob 0", "[5, 4, 2]", "[5, 8]"]),
    ("hdf5_legacy_shape_refused", lambda t: _hdf5(t, b0=(1, 1, 5, 8), b1=(5,)),
     ['"fc"', "blob 0", "[1, 1, 5, 8]", "[5, 8]"]),
    ("hdf5_blob_count", lambda t: _hdf5(t, b0=(5, 8), b1=(5,), b2=(5,)),
     ['"fc"', "number of blobs", "file has 3", "expects 2"]),
    ("hdf5_missing_blob", lambda t: _hdf5(t, b0=(5, 8)), ['"fc"', "blob 1", "missing"]),
    ("hdf5_no_data_group", _no_data_group, ['"data" group']),
]


@pytest.mark.parametrize("make,words", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_bad_weights_file(make, words, tmp_path):
    net = caffe.Net(IP_NET, caffe.TEST)
    before = [b.data.copy() for b in net.params["fc"]]
    path = make(tmp_path)
    with pytest.raises(WeightsError) as info:
        net.copy_from(str(path))
    msg = str(info.value)
    assert str(path) in msg
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    # Nothing was copied: the net is as it was.
    for b, old in zip(net.params["fc"], before):
        np.testing.assert_array_equal(b.data, old)


LEGACY_OK = [
    ("ip_weight_1x1xNxK", ((1, 1, 5, 8), True), ((1, 1, 1, 5), True)),
    ("nd_shapes", ((5, 8), False), ((5,), False)),
    ("mixed", ((5, 8), False), ((1, 1, 1, 5), True)),
]


@pytest.mark.parametrize("w,b", [c[1:] for c in LEGACY_OK], ids=[c[0] for c in LEGACY_OK])
def test_legacy_dims_accepted_where_they_align(w, b, tmp_path):
    """Caffe's Blob::ShapeEquals: legacy dims compare right-aligned."""
    net = caffe.Net(IP_NET, caffe.TEST)
    net.copy_from(str(_caffemodel(tmp_path, (w[0], w[1], None), (b[0], b[1], None))))
    assert (net.params["fc"][0].data == 0.5).all() and (net.params["fc"][1].data == 0.5).all()


def test_unknown_layers_in_file_are_ignored(tmp_path):
    net = caffe_pb2.NetParameter()
    net.layer.add(name="other", type="InnerProduct").blobs.add().data.extend([1.0])
    (tmp_path / "w.caffemodel").write_bytes(net.SerializeToString())
    caffe.Net(IP_NET, caffe.TEST, weights=str(tmp_path / "w.caffemodel"))


# -------------------------------------------------------------- large files
def _big_net(n_out: int, n_in: int) -> str:
    return f"""
name: "big"
layer {{ name: "input" type: "Input" top: "x" input_param {{ shape {{ dim: 1 dim: {n_in} }} }} }}
layer {{ name: "fc" type: "InnerProduct" bottom: "x" top: "y"
        inner_product_param {{ num_output: {n_out} bias_term: false }} }}
"""


def _time_load(n_out: int, n_in: int, tmp_path: Path) -> tuple[float, float, int]:
    text = _big_net(n_out, n_in)
    src = caffe.Net(text, caffe.TEST)
    w = src.params["fc"][0].data
    w[...] = np.arange(w.size, dtype=np.float32).reshape(w.shape) % 1000
    path = tmp_path / "big.caffemodel"
    src.save(str(path))
    size = path.stat().st_size
    dst = caffe.Net(text, caffe.TEST)
    t0 = time.perf_counter()
    path.read_bytes()
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    dst.copy_from(str(path))
    t_load = time.perf_counter() - t0
    np.testing.assert_array_equal(dst.params["fc"][0].data[-1], w[-1])
    return t_read, t_load, size


def test_70mb_caffemodel_loads_about_as_fast_as_reading_it(tmp_path):
    """Over protobuf's classic 64 MB limit (Caffe lifts it to 2 GB); the load
    is one read plus one copy, no per-value work."""
    t_read, t_load, size = _time_load(4352, 4096, tmp_path)
    assert size > 70_000_000
    print(f"\n{size / 1e6:.0f} MB: read {t_read * 1e3:.0f} ms, copy_from {t_load * 1e3:.0f} ms")
    assert t_load < 10 * t_read + 1.0


def test_blob_values_are_read_in_place_and_the_file_let_go(tmp_path):
    """Each blob's values are a view of the file's bytes (upb would copy every payload
    twice), and nothing keeps those bytes once the arrays are gone: loading AlexNet
    (233 MB) peaked at 3x the file above the net's weights, now at 1x."""
    import gc
    import tracemalloc

    text = _big_net(512, 1024)
    src = caffe.Net(text, caffe.TEST)
    src.params["fc"][0].data[...] = np.random.RandomState(0).randn(512, 1024)
    path = tmp_path / "w.caffemodel"
    src.save(str(path))
    size = path.stat().st_size
    dst = caffe.Net(text, caffe.TEST)
    gc.collect()
    gc.disable()  # a reference cycle (scan_binary's recursive closure was one) would show
    tracemalloc.start()
    try:
        [(_, []), (name, [(values, _, _)])] = read_weights(path)
        read_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert not values.flags.owndata
        np.testing.assert_array_equal(values.reshape(512, 1024), src.params["fc"][0].data)
        del values
        tracemalloc.start()
        dst.copy_from(str(path))
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        gc.enable()
    assert read_peak < 1.2 * size and peak < 1.2 * size, (read_peak, peak, size)  # the file, once
    assert current < 0.05 * size, (current, size)  # and let go
    np.testing.assert_array_equal(dst.params["fc"][0].data, src.params["fc"][0].data)


def test_deploy_net_allocates_no_parameter_gradients(tmp_path):
    """A net that never backpropagates holds its weights once: ``.grad`` appears on first
    use, reading as zeros like Caffe's diff."""
    net = caffe.Net(_big_net(8, 4), caffe.TEST)
    p = net.layer_dict["fc"].blobs[0]
    assert p.tensor.grad is None
    net.forward()
    assert p.tensor.grad is None
    assert (p.diff == 0).all() and p.tensor.grad is not None


@pytest.mark.slow
def test_large_caffemodel_loads(tmp_path):
    t_read, t_load, size = _time_load(16384, 12288, tmp_path)  # 805 MB
    print(f"\n{size / 1e6:.0f} MB: read {t_read:.2f} s, copy_from {t_load:.2f} s")
    assert t_load < 10 * t_read + 5.0


if __name__ == "__main__":
    if sys.argv[1:] == ["write"]:
        write_ours()
        print("wrote", DATA / formats.OURS_CAFFEMODEL, "and", DATA / formats.OURS_HDF5)
    else:
        print(__doc__)
