"""Convolution, Deconvolution, Pooling and LRN beyond the golden net fixtures.

* fillers of conv layers against the ``init`` fixtures real Caffe made;
* float64 gradchecks (tables of layer configurations);
* invariants the fixtures cannot express (STOCHASTIC pooling, which the CPU
  Caffe does not implement; the native torch path staying the common one;
  conv/deconv adjointness; output-size rules);
* errors: what Caffe aborts on raises, naming the layer.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import caffe_compat as caffe
from caffe_compat.errors import LayerError, ShapeError
from caffe_compat.layers.base import FLT_MAX, FLT_MIN
from caffe_compat.layers.vision import convolution as conv_mod
from caffe_compat.layers.vision import pooling as pool_mod
from caffe_compat.layers.vision.pooling import pooled_size
from caffe_compat.proto import caffe_pb2
from golden_harness import fixtures, load
from layer_util import build_layer, gradcheck_layer, run_layer

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST


def _distinct(*shape: int, seed: int = 0) -> torch.Tensor:
    """Distinct values ≥ 1e-2 apart: MAX pooling has no ties within gradcheck's eps."""
    n = int(np.prod(shape))
    perm = np.random.RandomState(seed).permutation(n).reshape(shape)
    return torch.tensor(perm / n * 4 - 2, dtype=torch.float64)


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.tensor(np.random.RandomState(seed).randn(*shape))


# ============================================================ fillers (init fixtures)
def _init_blobs():
    out = []
    for path in fixtures("init", groups=("vision",)):
        fx = load(path)
        for key in fx.keys("stats"):
            out.append(pytest.param(fx, key[len("stats/"):], id=f"{fx.path.stem}:{key[6:]}"))
    return out


_UNIFORM_KINDS = ("uniform", "xavier", "d_xavier")  # bounded: Caffe's min/max sit at the bounds


@functools.lru_cache(maxsize=None)
def _init_net(prototxt: str) -> caffe.Net:
    return caffe.Net(prototxt, caffe.TEST)


@pytest.mark.parametrize("fx,key", _init_blobs())
def test_filler_matches_caffe(fx, key):
    net = _init_net(fx.meta["prototxt"])
    layer, i = key.rsplit("/", 1)
    ours = net.params[layer][int(i)].data.astype(np.float64)
    assert list(ours.shape) == list(fx.arrays[f"shape/{key}"])
    mean, std, lo, hi = fx.arrays[f"stats/{key}"]
    if std == 0:  # constant fillers
        np.testing.assert_allclose(ours, np.full_like(ours, mean), rtol=1e-6)
        return
    if "bilinear" in layer:  # deterministic: every value
        np.testing.assert_allclose(ours, fx.arrays[f"value/{key}"], rtol=1e-6, atol=1e-7)
        return
    # Random fillers: same distribution (Caffe's RNG stream is not reproduced).
    assert ours.std() == pytest.approx(std, rel=0.06)
    assert abs(ours.mean() - mean) < 4 * std / np.sqrt(ours.size) + 0.01 * std
    if layer.startswith(_UNIFORM_KINDS):
        span = hi - lo
        assert ours.min() >= lo - 0.01 * span and ours.max() <= hi + 0.01 * span


# ============================================================ gradchecks
GRAD_CASES = [
    # (id, layer text, bottom shapes, bottoms maker, phase)
    ("conv_2d", 'type: "Convolution" convolution_param { num_output: 3 kernel_size: 3 pad: 1 stride: 2 }',
     [(2, 2, 5, 4)], _randn, TRAIN),
    ("conv_group_dilation", 'type: "Convolution" convolution_param { num_output: 4 kernel_size: 2 group: 2 '
     'dilation: 2 pad: 1 }', [(1, 4, 4, 3)], _randn, TRAIN),
    ("conv_no_bias_hw", 'type: "Convolution" convolution_param { num_output: 2 kernel_h: 3 kernel_w: 1 '
     'stride_h: 2 stride_w: 1 pad_w: 1 bias_term: false }', [(1, 2, 5, 3)], _randn, TRAIN),
    ("conv_1d", 'type: "Convolution" convolution_param { num_output: 2 kernel_size: 3 stride: 2 }',
     [(2, 2, 7)], _randn, TRAIN),
    ("conv_3d", 'type: "Convolution" convolution_param { num_output: 2 kernel_size: 2 pad: 1 stride: 2 }',
     [(1, 2, 3, 3, 3)], _randn, TRAIN),
    ("conv_4d", 'type: "Convolution" convolution_param { num_output: 2 kernel_size: 2 stride: 2 stride: 1 '
     'stride: 1 stride: 1 pad: 1 pad: 0 pad: 0 pad: 0 group: 2 }', [(1, 2, 3, 2, 3, 2)], _randn, TRAIN),
    ("conv_axis2", 'type: "Convolution" convolution_param { num_output: 2 kernel_size: 2 axis: 2 }',
     [(2, 2, 2, 3, 3)], _randn, TRAIN),
    ("conv_dilation_zero", 'type: "Convolution" convolution_param { num_output: 2 kernel_size: 3 '
     'dilation: 0 }',
     [(1, 2, 3, 3)], _randn, TRAIN),
    ("conv_kernel_overhang", 'type: "Convolution" convolution_param { num_output: 1 kernel_size: 3 '
     'stride: 2 }',
     [(1, 2, 2, 4)], _randn, TRAIN),
    ("conv_two_bottoms", 'type: "Convolution" convolution_param { num_output: 2 kernel_size: 2 }',
     [(1, 2, 3, 3), (1, 2, 3, 3)], _randn, TRAIN),
    ("deconv_2d", 'type: "Deconvolution" convolution_param { num_output: 3 kernel_size: 3 stride: 2 pad: 1 }',
     [(1, 2, 3, 3)], _randn, TRAIN),
    ("deconv_group_dilation", 'type: "Deconvolution" convolution_param { num_output: 4 kernel_size: 2 '
     'group: 2 dilation: 2 stride: 2 }', [(1, 2, 2, 3)], _randn, TRAIN),
    ("deconv_4d", 'type: "Deconvolution" convolution_param { num_output: 2 kernel_size: 2 stride: 2 pad: 1 '
     'pad: 0 pad: 0 pad: 0 }', [(1, 2, 2, 2, 2, 2)], _randn, TRAIN),
    ("deconv_1d_dilation_zero", 'type: "Deconvolution" convolution_param { num_output: 2 kernel_size: 3 '
     'stride: 2 dilation: 0 }', [(2, 2, 3)], _randn, TRAIN),
    ("max_native", 'type: "Pooling" pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }',
     [(1, 2, 5, 5)], _distinct, TRAIN),
    ("max_pad_gt_half", 'type: "Pooling" pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 2 }',
     [(1, 2, 5, 4)], _distinct, TRAIN),
    ("max_overhang_p0", 'type: "Pooling" pooling_param { pool: MAX kernel_size: 2 stride: 3 }',
     [(1, 1, 7, 7)], _distinct, TRAIN),
    ("max_rect_floor", 'type: "Pooling" pooling_param { pool: MAX kernel_h: 2 kernel_w: 3 stride_h: 1 '
     'stride_w: 2 round_mode: FLOOR }', [(1, 2, 4, 6)], _distinct, TRAIN),
    ("max_global", 'type: "Pooling" pooling_param { pool: MAX global_pooling: true }',
     [(2, 2, 3, 4)], _distinct, TRAIN),
    ("ave_native", 'type: "Pooling" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }',
     [(1, 2, 5, 5)], _randn, TRAIN),
    ("ave_pad_gt_half", 'type: "Pooling" pooling_param { pool: AVE kernel_size: 3 stride: 3 pad: 2 }',
     [(1, 2, 5, 4)], _randn, TRAIN),
    ("ave_global", 'type: "Pooling" pooling_param { pool: AVE global_pooling: true }',
     [(2, 2, 3, 4)], _randn, TRAIN),
    ("stochastic_test", 'type: "Pooling" pooling_param { pool: STOCHASTIC kernel_size: 2 stride: 2 }',
     [(1, 2, 5, 4)], lambda *s, seed: _randn(*s, seed=seed).abs() + 0.5, TEST),
    ("lrn_across", 'type: "LRN" lrn_param { local_size: 3 alpha: 0.7 beta: 0.75 k: 1.5 }',
     [(2, 4, 2, 3)], _randn, TRAIN),
    ("lrn_across_wide", 'type: "LRN" lrn_param { local_size: 7 alpha: 2 beta: 1.2 }',
     [(1, 3, 2, 2)], _randn, TRAIN),
    ("lrn_within", 'type: "LRN" lrn_param { norm_region: WITHIN_CHANNEL local_size: 3 alpha: 2 beta: 0.6 }',
     [(1, 2, 4, 3)], _randn, TRAIN),
]


@pytest.mark.parametrize("text,shapes,make,phase", [c[1:] for c in GRAD_CASES],
                         ids=[c[0] for c in GRAD_CASES])
def test_gradcheck(text, shapes, make, phase):
    layer = build_layer(text, shapes, phase=phase, n_top=len(shapes) if "Convolution" in text else 1)
    for p in layer.params:
        with torch.no_grad():
            p.normal_(0, 0.5)
    bottoms = [make(*s, seed=i) for i, s in enumerate(shapes)]
    assert gradcheck_layer(layer, bottoms)


def test_gradcheck_max_pool_with_mask_top():
    layer = build_layer('type: "Pooling" pooling_param { pool: MAX kernel_size: 2 stride: 3 }',
                        [(1, 1, 6, 6)], n_top=2)
    assert gradcheck_layer(layer, [_distinct(1, 1, 6, 6)])


# ============================================================ invariants: pooling
POOLED_SIZES = [
    # (H, k, s, p, ceil, Caffe's size): the cases where torch's rule differs are marked
    (6, 2, 3, 0, True, 3),    # torch: 2 (it clips the window starting at H even with p = 0)
    (6, 3, 2, 1, True, 4),
    (4, 3, 3, 2, True, 2),    # ceil gives 3; the clip rule (p > 0) drops the last window
    (5, 3, 1, 2, True, 7),    # p > k/2: torch refuses
    (7, 3, 2, 0, True, 3),
    (7, 3, 2, 0, False, 3),
    (8, 3, 2, 0, True, 4),
    (8, 3, 2, 0, False, 3),
    (2, 3, 2, 0, True, 1),    # kernel larger than the input, one window
    (2, 3, 1, 0, True, 0),    # empty: Caffe aborts, we raise
    (55, 3, 2, 0, True, 27),  # CaffeNet pool1
    (13, 3, 2, 0, True, 6),   # CaffeNet pool5
    (112, 3, 2, 0, True, 56),  # GoogLeNet pool1/3x3_s2 (ceil keeps the partial window)
]


@pytest.mark.parametrize("h,k,s,p,ceil,expected", POOLED_SIZES,
                         ids=[f"H{c[0]}_k{c[1]}_s{c[2]}_p{c[3]}_{'ceil' if c[4] else 'floor'}"
                              for c in POOLED_SIZES])
def test_pooled_size(h, k, s, p, ceil, expected):
    assert pooled_size(h, k, s, p, ceil) == expected


NATIVE_POOLING = [
    # (id, pooling_param, bottom shape, number of tops)
    ("lenet_pool", "pool: MAX kernel_size: 2 stride: 2", (2, 20, 24, 24), 1),
    ("caffenet_pool1", "pool: MAX kernel_size: 3 stride: 2", (1, 8, 55, 55), 1),
    ("googlenet_pool_s1_p1", "pool: MAX kernel_size: 3 stride: 1 pad: 1", (1, 4, 28, 28), 1),
    ("googlenet_pool_ceil", "pool: MAX kernel_size: 3 stride: 2", (1, 4, 112, 112), 1),
    ("cifar_ave", "pool: AVE kernel_size: 3 stride: 2", (1, 4, 16, 16), 1),
    ("ave_pad", "pool: AVE kernel_size: 3 stride: 2 pad: 1", (1, 4, 15, 15), 1),
    ("global_ave", "pool: AVE global_pooling: true", (1, 4, 7, 7), 1),
    ("max_with_mask_top", "pool: MAX kernel_size: 3 stride: 2 pad: 1", (1, 4, 8, 8), 2),
]


@pytest.mark.parametrize("params,shape,n_top", [c[1:] for c in NATIVE_POOLING],
                         ids=[c[0] for c in NATIVE_POOLING])
def test_pooling_common_configs_use_native_torch_call(params, shape, n_top, monkeypatch):
    """Where torch's size rule agrees with Caffe's, no padded copy of the input is made."""
    def no_pad(*args, **kwargs):
        raise AssertionError("explicit padding used for a configuration torch handles natively")

    monkeypatch.setattr(pool_mod.F, "pad", no_pad)
    layer = build_layer(f'type: "Pooling" pooling_param {{ {params} }}', [shape], n_top=n_top)
    assert len(run_layer(layer, torch.randn(shape))) == n_top


def test_stochastic_test_phase_formula():
    """Caffe's TEST kernel: Σx² / (FLT_MIN + Σx); an all-zero window gives 0, not NaN."""
    layer = build_layer('type: "Pooling" pooling_param { pool: STOCHASTIC kernel_size: 2 stride: 2 }',
                        [(1, 1, 3, 4)], phase=TEST)
    x = torch.tensor([[[[1., 2., 0., 0.], [3., 4., 0., 0.], [5., 0., 6., 7.]]]])
    y = run_layer(layer, x)[0]
    expected = torch.tensor([[[[30 / 10, 0.0], [25 / 5, 85 / 13]]]])
    assert y.shape == (1, 1, 2, 2)  # CEIL: the third row is a partial window
    torch.testing.assert_close(y, expected)
    assert y[0, 0, 0, 1].item() == 0.0 and FLT_MIN > 0


def test_stochastic_train_picks_window_values_in_proportion():
    layer = build_layer('type: "Pooling" pooling_param { pool: STOCHASTIC kernel_size: 2 stride: 2 }',
                        [(4000, 1, 2, 2)], phase=TRAIN)
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2).expand(4000, 1, 2, 2).contiguous()
    x.requires_grad_(True)
    y = run_layer(layer, x)[0]
    values, counts = torch.unique(y.detach(), return_counts=True)
    assert set(values.tolist()) <= {1.0, 2.0, 3.0, 4.0}
    freq = dict(zip(values.tolist(), (counts.double() / 4000).tolist()))
    for v in (1.0, 2.0, 3.0, 4.0):
        assert freq.get(v, 0.0) == pytest.approx(v / 10, abs=0.03)
    y.sum().backward()
    # The gradient goes to the sampled element only, and it holds the output's value.
    assert torch.equal(x.grad.sum(dim=(2, 3)), torch.ones(4000, 1))
    picked = (x.grad * x).sum(dim=(2, 3))
    torch.testing.assert_close(picked, y.detach().view(4000, 1))


def test_stochastic_train_every_output_is_in_its_window():
    layer = build_layer('type: "Pooling" pooling_param { pool: STOCHASTIC kernel_size: 3 stride: 2 }',
                        [(3, 2, 7, 6)], phase=TRAIN)
    x = torch.rand(3, 2, 7, 6) + 0.1
    y = run_layer(layer, x)[0]
    assert y.shape == (3, 2, 3, 3)
    for i in range(3):
        for j in range(3):
            window = x[:, :, 2 * i: 2 * i + 3, 2 * j: 2 * j + 3].reshape(3, 2, -1)
            assert ((window == y[:, :, i, j, None]).any(dim=2)).all()


def test_max_pool_empty_window_is_minus_flt_max_with_mask_minus_one():
    layer = build_layer('type: "Pooling" pooling_param { pool: MAX kernel_size: 2 stride: 3 }',
                        [(1, 1, 6, 6)], n_top=2)
    y, mask = run_layer(layer, torch.randn(1, 1, 6, 6))
    assert y.shape == (1, 1, 3, 3)
    assert (y[0, 0, 2, :] == -FLT_MAX).all() and (y[0, 0, :, 2] == -FLT_MAX).all()
    assert (mask[0, 0, 2, :] == -1).all() and mask.dtype == torch.float32


# ============================================================ invariants: convolution
def test_deconvolution_is_the_adjoint_of_convolution():
    conv = build_layer('type: "Convolution" convolution_param { num_output: 4 kernel_size: 3 stride: 2 '
                       'pad: 1 dilation: 1 group: 2 bias_term: false }', [(2, 6, 7, 7)]).double()
    conv.refresh_params()
    deconv = build_layer('type: "Deconvolution" convolution_param { num_output: 6 kernel_size: 3 stride: 2 '
                         'pad: 1 group: 2 bias_term: false }', [(2, 4, 4, 4)]).double()
    deconv.refresh_params()
    with torch.no_grad():
        deconv.params[0].copy_(conv.params[0])
    x, y = _randn(2, 6, 7, 7), _randn(2, 4, 4, 4, seed=1)
    lhs = (run_layer(conv, x)[0] * y).sum()
    rhs = (x * run_layer(deconv, y)[0]).sum()
    torch.testing.assert_close(lhs, rhs)


DECONV_SIZES = [((3, 3), "kernel_size: 3 stride: 2 pad: 1", (5, 5)),
                ((4,), "kernel_size: 4 stride: 2 pad: 1", (8,)),
                ((2, 3), "kernel_size: 3 stride: 3 dilation: 2", (8, 11)),
                ((2, 2, 2, 2), "kernel_size: 2 stride: 2", (4, 4, 4, 4))]


@pytest.mark.parametrize("spatial,params,expected", DECONV_SIZES, ids=lambda v: str(v).replace(" ", ""))
def test_deconvolution_output_size(spatial, params, expected):
    layer = build_layer(f'type: "Deconvolution" convolution_param {{ num_output: 2 {params} }}',
                        [(1, 2, *spatial)])
    assert run_layer(layer, torch.randn(1, 2, *spatial))[0].shape[2:] == expected


def test_bilinear_deconvolution_upsamples_a_constant_to_a_constant_interior():
    layer = build_layer('type: "Deconvolution" convolution_param { num_output: 3 kernel_size: 4 stride: 2 '
                        'pad: 1 group: 3 bias_term: false weight_filler { type: "bilinear" } }',
                        [(1, 3, 5, 5)])
    y = run_layer(layer, torch.full((1, 3, 5, 5), 2.0))[0]
    assert y.shape == (1, 3, 10, 10)
    torch.testing.assert_close(y[:, :, 1:-1, 1:-1], torch.full((1, 3, 8, 8), 2.0))


def test_two_bottoms_share_the_weights():
    layer = build_layer('type: "Convolution" convolution_param { num_output: 2 kernel_size: 2 '
                        'weight_filler { type: "gaussian" } }', [(1, 2, 3, 3)] * 2, n_top=2)
    x = torch.randn(1, 2, 3, 3)
    a, b = run_layer(layer, x, x.clone())
    torch.testing.assert_close(a, b)
    assert len(layer.params) == 2


NATIVE_CONV = [("lenet_conv1", "kernel_size: 5", (2, 1, 28, 28)),
               ("caffenet_conv1", "kernel_size: 11 stride: 4", (1, 3, 227, 227)),
               ("caffenet_conv2_group", "kernel_size: 5 pad: 2 group: 2", (1, 4, 27, 27)),
               ("resnet_1x1_s2", "kernel_size: 1 stride: 2 bias_term: false", (1, 4, 8, 8)),
               ("stride_skips_last_row", "kernel_size: 2 stride: 3", (1, 4, 8, 8))]


@pytest.mark.parametrize("params,shape", [c[1:] for c in NATIVE_CONV], ids=[c[0] for c in NATIVE_CONV])
def test_convolution_common_configs_use_native_torch_call(params, shape, monkeypatch):
    def no_pad(*args, **kwargs):
        raise AssertionError("explicit padding used for a configuration torch handles natively")

    monkeypatch.setattr(conv_mod.F, "pad", no_pad)
    layer = build_layer(f'type: "Convolution" convolution_param {{ num_output: 4 {params} }}', [shape])
    run_layer(layer, torch.randn(shape))


# ============================================================ invariants: LRN
def test_lrn_size1_alpha0_is_identity():
    layer = build_layer('type: "LRN" lrn_param { local_size: 1 alpha: 0 }', [(2, 3, 2, 2)])
    x = torch.randn(2, 3, 2, 2)
    torch.testing.assert_close(run_layer(layer, x)[0], x)


def test_lrn_within_channel_ignores_k():
    x = torch.randn(1, 2, 4, 4)
    a = build_layer('type: "LRN" lrn_param { norm_region: WITHIN_CHANNEL k: 1 }', [(1, 2, 4, 4)])
    b = build_layer('type: "LRN" lrn_param { norm_region: WITHIN_CHANNEL k: 9 }', [(1, 2, 4, 4)])
    torch.testing.assert_close(run_layer(a, x)[0], run_layer(b, x)[0])


def test_lrn_across_channels_matches_the_formula():
    x = _randn(1, 5, 1, 1).double()
    layer = build_layer('type: "LRN" lrn_param { local_size: 3 alpha: 0.9 beta: 0.8 k: 1.5 }', [(1, 5, 1, 1)])
    y = run_layer(layer, x)[0].view(-1)
    v = x.view(-1)
    for c in range(5):
        window = v[max(0, c - 1): c + 2]
        scale = 1.5 + 0.9 / 3 * (window ** 2).sum().item()
        assert y[c].item() == pytest.approx(v[c].item() * scale ** -0.8)


# ============================================================ errors
def _net(layer: str, shape=(1, 2, 6, 6), extra_tops: str = "") -> str:
    dims = " ".join(f"dim: {d}" for d in shape)
    return (f'layer {{ name: "in" type: "Input" top: "data" {extra_tops} input_param {{ shape {{ {dims} }} '
            + (f'shape {{ {dims} }} ' if extra_tops else "") + "} }\n" + layer)


def _conv(params: str, type_: str = "Convolution", tops: str = 'top: "out"', bottoms: str = 'bottom: "data"'):
    return f'layer {{ name: "bad" type: "{type_}" {bottoms} {tops} convolution_param {{ {params} }} }}'


def _pool(params: str, tops: str = 'top: "out"', bottoms: str = 'bottom: "data"'):
    return f'layer {{ name: "bad" type: "Pooling" {bottoms} {tops} pooling_param {{ {params} }} }}'


def _lrn(params: str, bottoms: str = 'bottom: "data"'):
    return f'layer {{ name: "bad" type: "LRN" {bottoms} top: "out" lrn_param {{ {params} }} }}'


ERRORS = [
    # (id, prototxt, exception, words in the message)
    ("conv_no_num_output", _net(_conv("kernel_size: 3")), LayerError, "num_output"),
    ("conv_group_not_dividing", _net(_conv("num_output: 3 kernel_size: 1 group: 2")), LayerError, "group"),
    ("conv_kernel_h_only", _net(_conv("num_output: 2 kernel_h: 3")), LayerError, "kernel_h"),
    ("conv_kernel_and_kernel_h", _net(_conv("num_output: 2 kernel_size: 3 kernel_h: 3 kernel_w: 3")),
     LayerError, "either"),
    ("conv_no_kernel", _net(_conv("num_output: 2")), LayerError, "kernel_size"),
    ("conv_kernel_count", _net(_conv("num_output: 2 kernel_size: 3 kernel_size: 2"), (1, 2, 4, 4, 4)),
     LayerError, "once per spatial axis"),
    ("conv_kernel_hw_3d", _net(_conv("num_output: 2 kernel_h: 1 kernel_w: 1"), (1, 2, 4, 4, 4)),
     LayerError, "2 spatial axes"),
    ("conv_stride_zero", _net(_conv("num_output: 2 kernel_size: 3 stride: 0")), LayerError, "stride"),
    ("conv_stride_h_only", _net(_conv("num_output: 2 kernel_size: 3 stride_h: 2")), LayerError, "stride_w"),
    ("conv_kernel_zero", _net(_conv("num_output: 2 kernel_size: 0")), LayerError, "kernel"),
    ("conv_kernel_larger_than_input", _net(_conv("num_output: 2 kernel_size: 9 stride: 1")), ShapeError,
     "[1, 2, 6, 6]"),
    ("conv_no_spatial_axes", _net(_conv("num_output: 2 kernel_size: 1"), (2, 3)), ShapeError, "spatial"),
    ("conv_bottoms_differ", _net(_conv("num_output: 2 kernel_size: 1", bottoms='bottom: "data" bottom: "d2"',
                                       tops='top: "o1" top: "o2"'), extra_tops='top: "d2"').replace(
        "shape { dim: 1 dim: 2 dim: 6 dim: 6 } }", "shape { dim: 1 dim: 2 dim: 5 dim: 6 } }"),
     ShapeError, "same shape"),
    ("conv_tops_ne_bottoms", _net(_conv("num_output: 2 kernel_size: 1", tops='top: "a" top: "b"')),
     LayerError, "as many top"),
    ("deconv_empty_output", _net(_conv("num_output: 2 kernel_size: 1 pad: 1", "Deconvolution"), (1, 2, 1, 1)),
     ShapeError, "output size"),
    ("pool_pad_h_only", _net(_pool("kernel_size: 3 pad_h: 1")), LayerError, "pad_h"),
    ("pool_stride_w_only", _net(_pool("kernel_size: 3 stride_w: 1")), LayerError, "stride_h"),
    ("pool_no_kernel", _net(_pool("pool: AVE")), LayerError, "kernel_size"),
    ("pool_kernel_h_only", _net(_pool("kernel_h: 2")), LayerError, "kernel_size"),
    ("pool_global_with_kernel", _net(_pool("global_pooling: true kernel_size: 2")), LayerError, "global"),
    ("pool_global_with_pad", _net(_pool("global_pooling: true pad: 1")), LayerError, "global"),
    ("pool_pad_not_below_kernel", _net(_pool("kernel_size: 2 pad: 2")), LayerError,
     "smaller than the kernel"),
    ("pool_stochastic_pad", _net(_pool("pool: STOCHASTIC kernel_size: 3 pad: 1")), LayerError, "padding"),
    ("pool_ave_mask_top", _net(_pool("pool: AVE kernel_size: 2", tops='top: "a" top: "b"')),
     LayerError, "mask"),
    ("pool_three_tops", _net(_pool("kernel_size: 2", tops='top: "a" top: "b" top: "c"')),
     LayerError, "at most 2"),
    ("pool_5d_input", _net(_pool("kernel_size: 2"), (1, 1, 2, 3, 3)), ShapeError, "4 axes"),
    ("pool_empty_output", _net(_pool("kernel_size: 7 stride: 1")), ShapeError, "empty"),
    ("lrn_even_size", _net(_lrn("local_size: 4")), LayerError, "odd"),
    ("lrn_3d_input", _net(_lrn(""), (1, 4, 3)), ShapeError, "4 axes"),
    ("lrn_two_bottoms", _net(_lrn("", bottoms='bottom: "data" bottom: "data"')), LayerError, "1 bottom"),
]


@pytest.mark.parametrize("text,exc,words", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_bad_layer_raises_naming_the_layer(text, exc, words):
    with pytest.raises(exc) as info:
        caffe.Net(text, caffe.TEST)
    message = str(info.value)
    assert 'layer "bad"' in message, message
    assert words in message, message
