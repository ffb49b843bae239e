"""The CPU kernel choices (``caffe_compat/layers/vision/_cpu_kernels.py``).

* every vision golden fixture passes with the choices off as well as on (on is
  the default, run by test_vision_layers.py), and the wide-channel pooling and
  one-channel convolution fixtures really take the chosen kernels;
* pooling through the channels-last kernel is bit-identical to torch's NCHW
  kernel, values and gradients, ties and NaN included;
* the one-channel convolution passes float64 gradcheck and agrees with
  ``F.conv2d`` in float32;
* LRN across channels passes float64 gradcheck, agrees with the general formula
  (choices off) in float32, with and without a graph, and its golden fixtures take it;
* tracing, compilation, meta tensors and other dtypes take torch's own ops.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import caffe_compat as caffe
from caffe_compat.layers.vision import _cpu_kernels as K

from golden_harness import fixtures, load, run
from layer_util import with_input_layer

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def kernels(on: bool):
    was = K.set_enabled(on)
    try:
        yield
    finally:
        K.set_enabled(was)


@pytest.fixture(autouse=True)
def small_shapes_too(monkeypatch):
    """The fixtures' shapes are small: take the chosen kernels on them (see test_pool_size_rules)."""
    monkeypatch.setattr(K, "_MIN_POOL_OUTPUTS", 0)


@contextmanager
def spy():
    """Count the calls of the chosen kernels."""
    calls = {"pool": 0, "conv": 0, "lrn": 0}
    pool_apply, conv_apply, lrn = K._PoolChannelsLast.apply, K._ConvOneChannel.apply, K.lrn_across_channels

    def pool(*a):
        calls["pool"] += 1
        return pool_apply(*a)

    def conv(*a):
        calls["conv"] += 1
        return conv_apply(*a)

    def lrn_spy(*a):
        out = lrn(*a)
        calls["lrn"] += out is not None
        return out

    K._PoolChannelsLast.apply, K._ConvOneChannel.apply = pool, conv  # type: ignore[method-assign]
    K.lrn_across_channels = lrn_spy
    try:
        yield calls
    finally:
        K._PoolChannelsLast.apply, K._ConvOneChannel.apply = pool_apply, conv_apply  # type: ignore
        K.lrn_across_channels = lrn


@pytest.mark.parametrize("path", fixtures("net", ("vision",)), ids=lambda p: p.stem)
def test_golden_with_choices_off(path):
    with kernels(False):
        run(load(path))


@pytest.mark.parametrize("name,kind", [
    ("max_wide_channels_ties", "pool"), ("max_wide_channels_lenet", "pool"),
    ("ave_wide_channels_pad", "pool"), ("conv_one_channel", "conv"),
    ("conv_one_channel_pad_stride", "conv"), ("conv_one_channel_no_bias", "conv"),
    ("lrn_across_defaults", "lrn"), ("lrn_across_size_gt_channels", "lrn"), ("lrn_across_size1", "lrn"),
    ("lrn_across_caffenet", "lrn"), ("lrn_after_conv_inplace_relu", "lrn"),
])
def test_golden_takes_chosen_kernel(name, kind):
    path = next(p for p in fixtures("net", ("vision",)) if p.stem == name)
    with spy() as calls:
        run(load(path))
    assert calls[kind] == 1


POOLS = [((4, 20, 24, 24), (2, 2), (2, 2), (0, 0), False),
         ((3, 32, 17, 17), (3, 3), (2, 2), (1, 1), True),
         ((2, 9, 9, 11), (3, 2), (2, 1), (1, 0), True),
         ((2, 8, 8, 8), (8, 8), (1, 1), (0, 0), False), ((2, 8, 9, 9), (8, 8), (1, 1), (0, 0), True)]


@pytest.mark.parametrize("chunk", [None, 3000, 100000])  # default, 1 image or a few per chunk
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("is_max", [True, False])
@pytest.mark.parametrize("shape,k,s,p,ceil", POOLS)
def test_pool_bit_identical(shape, k, s, p, ceil, is_max, dtype, chunk, monkeypatch):
    if chunk is not None:
        monkeypatch.setattr(K, "_CHUNK_BYTES", chunk)
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 3, shape, generator=g).to(dtype)  # many ties
    x[0, 1, 0, 0] = float("nan")
    x[1, 2, 3, 3] = float("-inf")
    outs = []
    for on in (True, False):
        xi = x.clone().requires_grad_()
        with kernels(on), spy() as calls:
            y = K.pool2d(xi, is_max, k, s, p, ceil)
        assert calls["pool"] == int(on and not K._one_window(shape, k, p))
        gy = torch.arange(y.numel(), dtype=dtype).reshape(y.shape)
        outs.append((y.detach(), torch.autograd.grad(y, xi, gy)[0]))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


def test_pool_no_grad_and_few_channels():
    x = torch.randn(2, 8, 8, 8)
    with spy() as calls, torch.no_grad():
        y = K.pool2d(x, True, (2, 2), (2, 2), (0, 0), False)
    assert calls["pool"] == 1 and y.is_contiguous() and torch.equal(y, F.max_pool2d(x, 2, 2))
    with spy() as calls:
        K.pool2d(torch.randn(2, 7, 8, 8), True, (2, 2), (2, 2), (0, 0), False)
        K.pool2d(torch.randn(2, 8, 8, 8, dtype=torch.float16), True, (2, 2), (2, 2), (0, 0), False)
        K.pool2d(torch.randn(2, 8, 8, 8, device="meta"), True, (2, 2), (2, 2), (0, 0), False)
        K.pool2d(torch.randn(2, 8, 6, 8).transpose(2, 3), True, (2, 2), (2, 2), (0, 0), False)
        for is_max in (True, False):  # global pooling: one window per channel
            K.pool2d(torch.randn(2, 16, 7, 7), is_max, (7, 7), (1, 1), (0, 0), True)
            K.pool2d(torch.randn(2, 16, 5, 5), is_max, (7, 7), (1, 1), (1, 1), True)
    assert calls["pool"] == 0


@pytest.mark.parametrize("shape,is_max,k,s,taken", [
    ((1, 256, 13, 13), True, 3, 2, False),  # AlexNet pool5 at batch 1: 9216 outputs
    ((8, 256, 13, 13), True, 3, 2, True),
    ((1, 512, 14, 14), True, 2, 2, True),  # VGG-16 pool5 at batch 1: 25088 outputs
    ((8, 512, 14, 14), False, 5, 3, False),  # GoogLeNet's auxiliary AVE pooling
    ((100, 64, 8, 8), False, 3, 2, True),  # CIFAR10-quick pool3
], ids=["small output", "batch 8", "vgg pool5", "ave many channels", "cifar ave"])
def test_pool_size_rules(shape, is_max, k, s, taken, monkeypatch):
    monkeypatch.setattr(K, "_MIN_POOL_OUTPUTS", 1 << 14)
    with spy() as calls, torch.no_grad():
        K.pool2d(torch.randn(*shape), is_max, (k, k), (s, s), (0, 0), True)
    assert calls["pool"] == int(taken)


CONVS = [((3, 1, 9, 9), 4, (5, 5), (1, 1), (0, 0)),
         ((2, 1, 8, 7), 3, (3, 2), (2, 1), (1, 2))]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape,o,k,s,p", CONVS)
def test_conv_one_channel_gradcheck(shape, o, k, s, p, bias):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(*shape, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(o, 1, *k, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(o, dtype=torch.float64, generator=g, requires_grad=True) if bias else None
    with spy() as calls:
        torch.autograd.gradcheck(lambda x, w, *b: K.conv2d(x, w, b[0] if b else None, s, p, (1, 1), 1),
                                 (x, w, *([b] if bias else [])))
        torch.autograd.gradcheck(lambda w: K.conv2d(x.detach(), w, None, s, p, (1, 1), 1), (w,))
    assert calls["conv"] > 0


@pytest.mark.parametrize("shape,o,k,s,p", CONVS)
def test_conv_one_channel_matches_torch_float32(shape, o, k, s, p):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(*shape, generator=g, requires_grad=True)
    w = torch.randn(o, 1, *k, generator=g, requires_grad=True)
    b = torch.randn(o, generator=g, requires_grad=True)
    y1 = K.conv2d(x, w, b, s, p, (1, 1), 1)
    y2 = F.conv2d(x, w, b, s, p)
    gy = torch.randn(y1.shape, generator=g)
    torch.testing.assert_close(y1, y2, rtol=0, atol=0)
    for a, c in zip(torch.autograd.grad(y1, (x, w, b), gy), torch.autograd.grad(y2, (x, w, b), gy)):
        torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-5)


def test_conv_falls_back_where_not_chosen():
    x = torch.randn(2, 1, 8, 8)
    w = torch.randn(3, 1, 3, 3, requires_grad=True)
    with spy() as calls:
        K.conv2d(x, w.detach(), None, (1, 1), (0, 0), (1, 1), 1)  # no weight gradient wanted
        K.conv2d(x, w, None, (1, 1), (0, 0), (2, 2), 1)  # dilation
        K.conv2d(torch.randn(2, 2, 8, 8), torch.randn(3, 2, 3, 3, requires_grad=True), None,
                 (1, 1), (0, 0), (1, 1), 1)  # two channels
        with torch.no_grad():
            K.conv2d(x, w, None, (1, 1), (0, 0), (1, 1), 1)
        with kernels(False):
            K.conv2d(x, w, None, (1, 1), (0, 0), (1, 1), 1)
    assert calls["conv"] == 0


LRNS = [((2, 7, 3, 3), 5, 1.0, 0.75, 1.0), ((2, 6, 3, 2), 3, 0.5, 0.6, 2.0),
        ((1, 3, 2, 3), 7, 2.0, 1.5, 1.0), ((1, 4, 2, 2), 1, 3.0, 0.5, 0.5), ((2, 2, 3, 3), 9, 1.0, 0.75, 1.0)]


def _lrn_general(x, n, alpha, beta, k):
    """The layer's general formula (avg_pool3d over the channel window)."""
    with kernels(False):
        return caffe.layers.vision.lrn.LRN.forward(type("L", (), {
            "size": n, "pre_pad": (n - 1) // 2, "alpha": alpha, "beta": beta, "k": k,
            "region": caffe.caffe_pb2.LRNParameter.ACROSS_CHANNELS})(), x)


@pytest.mark.parametrize("shape,n,alpha,beta,k", LRNS)
def test_lrn_across_gradcheck_and_general_formula(shape, n, alpha, beta, k):
    g = torch.Generator().manual_seed(11)
    x = torch.randn(*shape, dtype=torch.float64, generator=g, requires_grad=True)
    with spy() as calls:
        torch.autograd.gradcheck(lambda x: K.lrn_across_channels(x, n, alpha, beta, k), (x,))
    assert calls["lrn"] > 0
    x32 = x.detach().float().requires_grad_()
    y = K.lrn_across_channels(x32, n, alpha, beta, k)
    ref = _lrn_general(x32, n, alpha, beta, k)
    gy = torch.randn(y.shape, generator=g)
    torch.testing.assert_close(y, ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(torch.autograd.grad(y, x32, gy)[0], torch.autograd.grad(ref, x32, gy)[0],
                               rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # the in-place forward
        torch.testing.assert_close(K.lrn_across_channels(x32, n, alpha, beta, k), ref.detach(),
                                   rtol=1e-6, atol=1e-7)


def test_lrn_falls_back_where_not_chosen():
    x = torch.randn(2, 5, 3, 3)
    assert K.lrn_across_channels(x.to(torch.float16), 5, 1.0, 0.75, 1.0) is None
    assert K.lrn_across_channels(x.to("meta"), 5, 1.0, 0.75, 1.0) is None
    with kernels(False):
        assert K.lrn_across_channels(x, 5, 1.0, 0.75, 1.0) is None


def test_compiled_and_exported_graphs_use_torch_ops():
    """Under torch.export (dynamo) the layers call torch's own ops."""
    x = torch.randn(2, 8, 8, 8)

    class M(torch.nn.Module):
        def forward(self, x):
            return K.pool2d(x, True, (2, 2), (2, 2), (0, 0), False)

    with spy() as calls:
        ep = torch.export.export(M(), (x,))
    assert calls["pool"] == 0
    assert torch.equal(ep.module()(x), F.max_pool2d(x, 2, 2))


def test_lenet_same_with_choices_on_and_off(tmp_path):
    rng = np.random.RandomState(0)
    x, label = rng.rand(8, 1, 28, 28).astype(np.float32), rng.randint(0, 10, 8).astype(np.float32)
    results = []
    for on in (True, False):
        caffe.set_random_seed(3)
        net = caffe.Net(str(with_input_layer(ROOT / "examples" / "nets" / "lenet_train_test.prototxt",
                                             tmp_path / "lenet.prototxt", (8, 1, 28, 28))), caffe.TRAIN)
        net.blobs["data"].data[...] = x
        net.blobs["label"].data[...] = label
        with kernels(on), spy() as calls:
            net.forward()
            net.backward()
        assert (calls["pool"], calls["conv"]) == ((2, 1) if on else (0, 0))
        got = {f"{k}.data": v.data.copy() for k, v in net.blobs.items()}
        got.update((f"{k}.{i}", p.diff.copy()) for k, ps in net.params.items() for i, p in enumerate(ps))
        results.append(got)
    for key in results[0]:
        np.testing.assert_allclose(results[0][key], results[1][key], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("beta", [0.75, 0.5, 1.0, 0.6])
def test_lrn_negative_power_is_pow_within_float_rounding(beta):
    """LRN's scale^-β without pow where β is a simple power (0.75: rsqrt · sqrt(rsqrt))."""
    scale = torch.rand(4, 7, 5, 3) * 50 + 1  # k + α/n·Σx² >= k = 1
    got = K._pow_neg_(scale.clone(), beta).double()
    want = scale.double().pow(-beta)
    assert ((got - want).abs() / want).max() < 4e-7
