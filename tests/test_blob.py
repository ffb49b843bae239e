"""Blob semantics: numpy views on the CPU, Caffe's SyncedMemory on devices.

The device path (host mirrors synchronised lazily) is exercised on CPU tensors
by switching ``blob._MIRROR_CPU`` on, so it is tested on machines without a GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import caffe_compat as caffe
from caffe_compat import blob as blob_mod
from caffe_compat.blob import Blob, ParamBlob, flush_host_writes
from caffe_compat.errors import ShapeError

NET = """
name: "b" force_backward: true
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }
"""


@pytest.fixture
def mirrored():
    blob_mod._MIRROR_CPU = True
    yield
    blob_mod._MIRROR_CPU = False
    blob_mod._pending_uploads.clear()


def test_views_share_memory_on_cpu():
    t = torch.zeros(2, 3)
    b = Blob.wrap(t)
    b.data[...] = 4
    assert (t == 4).all()
    assert np.shares_memory(b.data, b.data)


def test_legacy_accessors_and_count():
    b = Blob((2, 3, 4, 5))
    assert (b.num, b.channels, b.height, b.width, b.count) == (2, 3, 4, 5, 120)
    b.reshape(7)
    assert (b.num, b.channels, b.height, b.width) == (7, 1, 1, 1)
    b.reshape(1, 2, 3, 4, 5)
    with pytest.raises(ShapeError, match="legacy accessors"):
        b.num


@pytest.mark.parametrize("dims", [(-1, 2), (2, -3)], ids=["first", "second"])
def test_negative_reshape_dims_rejected(dims):
    with pytest.raises(ShapeError, match="negative dimension"):
        Blob((2, 2)).reshape(*dims)


def test_reshape_keeps_data_when_shape_unchanged():
    b = Blob((2, 2))
    b.data[...] = 3
    b.reshape(2, 2)
    assert (b.data == 3).all()
    b.reshape(4)  # Caffe's Blob::Reshape keeps the buffer when the count fits
    assert b.data.shape == (4,) and (b.data == 3).all()
    b.reshape(5)  # past the capacity: a fresh, zeroed buffer
    assert b.data.shape == (5,) and not b.data.any()


def test_param_blob_diff_is_grad_in_place():
    p = torch.nn.Parameter(torch.zeros(3))
    pb = ParamBlob(p)
    assert p.grad is None  # allocated on first use: a deploy net holds its weights once
    assert (pb.diff == 0).all()
    g = p.grad
    pb.diff[...] = 2
    assert p.grad is g and (g == 2).all()


def test_mirror_reads_fresh_device_values(mirrored):
    net = caffe.Net(NET, caffe.TEST)
    net.blobs["x"].data[...] = 1
    net.forward()
    y1 = net.blobs["y"].data.copy()
    net.blobs["x"].data[...] = 2
    net.forward()
    y2 = net.blobs["y"].data
    assert not np.allclose(y1, y2)


def test_mirror_host_writes_uploaded_before_use(mirrored):
    net = caffe.Net(NET, caffe.TEST)
    w = net.params["ip"][0].data
    w[...] = 0
    net.params["ip"][1].data[...] = 5
    net.blobs["x"].data[...] = 1
    net.forward()
    np.testing.assert_array_equal(net.blobs["y"].data, np.full((2, 2), 5, np.float32))


def test_mirror_does_not_clobber_pending_host_writes(mirrored):
    b = Blob.wrap(torch.zeros(3))
    b.data[...] = 7
    assert (b.data == 7).all()  # second read must not re-download the stale device copy
    flush_host_writes()
    assert (b.tensor == 7).all()


def test_mirror_sees_in_place_device_updates(mirrored):
    p = torch.nn.Parameter(torch.zeros(2))
    pb = ParamBlob(p)
    assert not pb.data.any()
    flush_host_writes()
    with torch.no_grad():
        p.add_(1)  # e.g. a solver update on the device
    assert (pb.data == 1).all()


def test_mirror_diff_round_trip(mirrored):
    net = caffe.Net(NET, caffe.TEST)
    net.blobs["x"].data[...] = 1
    net.forward()
    net.blobs["y"].diff[...] = 1
    net.backward()
    w = net.params["ip"][0].data
    np.testing.assert_allclose(net.blobs["x"].diff, np.ones((2, 2)).dot(w), rtol=1e-6)
