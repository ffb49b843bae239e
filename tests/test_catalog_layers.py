"""The rest of upstream Caffe's catalog beyond the golden fixtures
(``tests/golden/cases/catalog.py``): ArgMax, BatchReindex, Clip, Embed, Filter,
Im2col, MVN, Parameter, Reduction, SPP, Swish, Tile.

* the registry holds every type upstream BVLC Caffe registers;
* float64 gradchecks of every layer with a backward;
* invariants generic tests cannot express (tie order, data-dependent shapes,
  Caffe's hand-written backwards, shared memory, pyramid geometry);
* errors: bad parameters and shapes, each asserting the exception type and
  that the message names the layer.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import caffe_compat as caffe
from caffe_compat.errors import LayerError, NetError, ShapeError
from caffe_compat.layers.vision.spp import level_geometry
from caffe_compat.proto import caffe_pb2
from layer_util import build_layer, gradcheck_layer, run_layer

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST

# caffe.layer_type_list() of upstream BVLC Caffe (master, 2020): the real build's
# list measured here, minus its fork additions (CtcLoss, ContinuationIndicator,
# Permute, LabelsequenceAccuracy, Reverse), plus upstream's Clip.
UPSTREAM_TYPES = [
    "AbsVal", "Accuracy", "ArgMax", "BNLL", "BatchNorm", "BatchReindex", "Bias", "Clip", "Concat",
    "ContrastiveLoss", "Convolution", "Crop", "Data", "Deconvolution", "Dropout", "DummyData", "ELU",
    "Eltwise", "Embed", "EuclideanLoss", "Exp", "Filter", "Flatten", "HDF5Data", "HDF5Output",
    "HingeLoss", "Im2col", "ImageData", "InfogainLoss", "InnerProduct", "Input", "LRN", "LSTM",
    "LSTMUnit", "Log", "MVN", "MemoryData", "MultinomialLogisticLoss", "PReLU", "Parameter", "Pooling",
    "Power", "Python", "RNN", "ReLU", "Reduction", "Reshape", "SPP", "Scale", "Sigmoid",
    "SigmoidCrossEntropyLoss", "Silence", "Slice", "Softmax", "SoftmaxWithLoss", "Split", "Swish",
    "TanH", "Threshold", "Tile", "WindowData",
]


def test_every_upstream_type_is_registered():
    missing = sorted(set(UPSTREAM_TYPES) - set(caffe.layer_type_list()))
    assert not missing, f"upstream types not registered: {missing}"


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.tensor(np.random.RandomState(seed).randn(*shape))


def _distinct(*shape: int, seed: int = 0) -> torch.Tensor:
    n = int(np.prod(shape))
    return torch.tensor(np.random.RandomState(seed).permutation(n).reshape(shape) / n * 4 - 2)


def _away(*shape: int, seed: int = 0, points: tuple[float, ...] = (0.0,)) -> torch.Tensor:
    x = _randn(*shape, seed=seed)
    for p in points:
        close = (x - p).abs() < 0.05
        x[close] = p + 0.1
    return x


def _net(layers: str, *inputs: tuple[str, tuple[int, ...]], phase: int = caffe.TRAIN,
         force_backward: bool = True) -> "caffe.Net":
    tops = " ".join(f'top: "{n}"' for n, _ in inputs)
    shapes = " ".join("shape { " + " ".join(f"dim: {d}" for d in s) + " }" for _, s in inputs)
    head = "force_backward: true\n" if force_backward else ""
    text = head + (f'layer {{ name: "in" type: "Input" {tops} input_param {{ {shapes} }} }}\n'
                   if inputs else "") + layers
    return caffe.Net(text, phase)


# ===================================================================== gradcheck
GRAD_CASES = [
    # (id, layer text, bottoms maker, bottoms to check (None: all))
    ("batch_reindex", 'type: "BatchReindex"',
     lambda: [_randn(3, 2, 2), torch.tensor([2.0, 0.0, 2.0, 2.5])], [0]),
    ("clip", 'type: "Clip" clip_param { min: -0.5 max: 0.7 }',
     lambda: [_away(3, 4, points=(-0.5, 0.7))], None),
    ("embed", 'type: "Embed" embed_param { input_dim: 4 num_output: 3 weight_filler { type: "gaussian" } '
     'bias_filler { type: "gaussian" } }', lambda: [torch.tensor([[3.0, 0.0], [3.0, 1.0]])], []),
    ("filter", 'type: "Filter"',
     lambda: [_randn(4, 3), _randn(4, 2, 1, seed=1), torch.tensor([[1.0], [0.0], [2.0], [0.0]])], [0, 1]),
    ("im2col_2d", 'type: "Im2col" convolution_param { kernel_size: 3 stride: 2 pad: 1 }',
     lambda: [_randn(2, 2, 5, 4)], None),
    ("im2col_dilation", 'type: "Im2col" convolution_param { kernel_size: 2 dilation: 2 }',
     lambda: [_randn(1, 2, 5, 5)], None),
    ("im2col_dilation_zero", 'type: "Im2col" convolution_param { kernel_size: 3 dilation: 0 }',
     lambda: [_randn(1, 1, 3, 3)], None),
    ("im2col_3d", 'type: "Im2col" convolution_param { kernel_size: 2 pad: 1 stride: 2 }',
     lambda: [_randn(1, 2, 3, 3, 2)], None),
    ("im2col_1d_axis2", 'type: "Im2col" convolution_param { kernel_size: 2 axis: 2 }',
     lambda: [_randn(2, 2, 2, 5)], None),
    ("mvn", 'type: "MVN"', lambda: [_randn(2, 3, 2, 3)], None),
    ("mvn_across", 'type: "MVN" mvn_param { across_channels: true }', lambda: [_randn(2, 2, 2, 2)], None),
    ("mvn_mean_only", 'type: "MVN" mvn_param { normalize_variance: false }', lambda: [_randn(2, 3, 4)], None),
    ("parameter", 'type: "Parameter" parameter_param { shape { dim: 2 dim: 3 } }', lambda: [], None),
    ("reduction_sum", 'type: "Reduction"', lambda: [_randn(2, 3)], None),
    ("reduction_asum", 'type: "Reduction" reduction_param { operation: ASUM axis: 1 coeff: -2 }',
     lambda: [_away(2, 3, 2)], None),
    ("reduction_sumsq", 'type: "Reduction" reduction_param { operation: SUMSQ axis: -1 }',
     lambda: [_randn(2, 3, 2)], None),
    ("reduction_mean", 'type: "Reduction" reduction_param { operation: MEAN axis: 1 coeff: 3 }',
     lambda: [_randn(2, 3, 2)], None),
    ("spp_max", 'type: "SPP" spp_param { pyramid_height: 3 }', lambda: [_distinct(1, 1, 7, 6)], None),
    ("spp_ave", 'type: "SPP" spp_param { pyramid_height: 2 pool: AVE }', lambda: [_randn(2, 1, 5, 5)], None),
    ("spp_height1", 'type: "SPP" spp_param { pyramid_height: 1 }', lambda: [_distinct(1, 2, 3, 4)], None),
    ("swish", 'type: "Swish" swish_param { beta: 1.7 }', lambda: [_randn(3, 4)], None),
    ("tile", 'type: "Tile" tile_param { axis: 1 tiles: 3 }', lambda: [_randn(2, 2, 3)], None),
]


@pytest.mark.parametrize("text,make,check", [c[1:] for c in GRAD_CASES], ids=[c[0] for c in GRAD_CASES])
def test_gradcheck(text, make, check):
    xs = make()
    n_top = len(xs) - 1 if "Filter" in text else 1
    layer = build_layer(text, [tuple(x.shape) for x in xs], n_top=n_top)
    if "Parameter" in text:
        with torch.no_grad():
            layer.params[0].normal_()
    assert gradcheck_layer(layer, xs, check=check)


# ===================================================================== ArgMax
def _argmax(params: str, x: np.ndarray) -> np.ndarray:
    layer = build_layer(f'type: "ArgMax" argmax_param {{ {params} }}', [x.shape])
    return run_layer(layer, torch.tensor(x, dtype=torch.float32))[0].numpy()


def test_argmax_ties_prefer_the_larger_index():
    x = np.array([[1, 3, 3, 0, 3], [2, 2, 1, 1, 0]], dtype=np.float32)
    out = _argmax("top_k: 3 out_max_val: true", x)
    assert out.tolist() == [[[4, 2, 1], [3, 3, 3]], [[1, 0, 3], [2, 2, 1]]]  # measured on real Caffe


@pytest.mark.parametrize("params,shape,top", [
    ("", (2, 3, 2, 2), (2, 1, 1, 1)), ("out_max_val: true top_k: 2", (2, 3), (2, 2, 2)),
    ("axis: 1 top_k: 2", (2, 3, 2, 2), (2, 2, 2, 2)), ("", (4,), (4, 1, 1)),
    ("axis: 0 out_max_val: true", (4,), (1,)),
], ids=["no_axis_4d", "max_val_2d", "axis", "1d", "axis0_1d"])
def test_argmax_top_shapes(params, shape, top):
    # measured on real Caffe
    assert _argmax(params, np.zeros(shape, np.float32)).shape == top


def test_argmax_gives_no_gradient():
    x = _randn(2, 3).float().requires_grad_(True)
    out = run_layer(build_layer('type: "ArgMax" argmax_param { out_max_val: true axis: 1 }', [(2, 3)]), x)[0]
    assert not out.requires_grad


# ===================================================================== BatchReindex / Embed / Filter
def test_batch_reindex_accumulates_repeats_and_truncates():
    net = _net('layer { name: "r" type: "BatchReindex" bottom: "x" bottom: "i" top: "y" }',
               ("x", (3, 2)), ("i", (4,)))
    net.blobs["x"].data[...] = np.arange(6).reshape(3, 2)
    net.blobs["i"].data[...] = [2.9, 0, 2, 0.2]
    net.forward()
    assert net.blobs["y"].data.tolist() == [[4, 5], [0, 1], [4, 5], [0, 1]]
    net.blobs["y"].diff[...] = 1
    net.backward()
    assert net.blobs["x"].diff.tolist() == [[2, 2], [0, 0], [2, 2]]
    assert not net.blobs["i"].diff.any()


def test_embed_truncates_indices_and_accumulates_rows():
    net = _net('layer { name: "e" type: "Embed" bottom: "x" top: "y" loss_weight: 1 embed_param { '
               'input_dim: 3 num_output: 2 bias_term: false } }', ("x", (3,)), force_backward=False)
    net.params["e"][0].data[...] = np.arange(6).reshape(3, 2)
    net.blobs["x"].data[...] = [1.7, -0.5, 1.0]
    net.forward()
    assert net.blobs["y"].data.tolist() == [[2, 3], [0, 1], [2, 3]]  # measured on real Caffe
    net.backward()  # the loss weight 1 is y's diff
    assert net.params["e"][0].diff.tolist() == [[1, 1], [2, 2], [0, 0]]


def test_filter_shapes_at_setup_and_after_forward():
    net = _net('layer { name: "f" type: "Filter" bottom: "x" bottom: "s" top: "y" }',
               ("x", (4, 3)), ("s", (4, 1)), force_backward=False)
    assert net.blobs["y"].shape == (4, 3)  # setup: the full batch, as Caffe
    net.blobs["x"].data[...] = np.arange(12).reshape(4, 3)
    net.blobs["s"].data[...] = [[0], [1], [0], [np.nan]]
    net.forward()
    assert net.blobs["y"].data.tolist() == [[3, 4, 5], [9, 10, 11]]  # NaN counts as non-zero
    net.blobs["s"].data[...] = 0
    net.forward()
    assert net.blobs["y"].shape == (0, 3)


def test_filter_gradient_zero_for_dropped_items():
    layer = build_layer('type: "Filter"', [(3, 2), (3,)])
    x = _randn(3, 2).requires_grad_(True)
    (y,) = run_layer(layer, x, torch.tensor([1.0, 0.0, 1.0]))
    y.backward(torch.ones_like(y))
    assert x.grad.tolist() == [[1, 1], [0, 0], [1, 1]]


@pytest.mark.parametrize("layer,bottom", [
    ('layer { name: "l" type: "BatchReindex" bottom: "x" bottom: "i" top: "y" }', 1),
    ('layer { name: "l" type: "Embed" bottom: "i" top: "y" embed_param { input_dim: 3 num_output: 2 } }', 0),
    ('layer { name: "l" type: "Filter" bottom: "x" bottom: "i" top: "y" }', 1),
], ids=["batch_reindex", "embed", "filter"])
def test_index_bottoms_get_no_gradient_under_force_backward(layer, bottom):
    # Caffe aborts here ("Cannot backprop to index"); we leave the index diff alone.
    net = _net(layer, ("x", (3, 2)), ("i", (3,)))
    net.blobs["i"].data[...] = [1, 0, 1]
    net.forward()
    for name in net.outputs:
        net.blobs[name].diff[...] = 1
    net.backward()
    assert not net.blobs["i"].diff.any()


# ===================================================================== Clip / Swish
def test_clip_bounds_inclusive_in_gradient():
    layer = build_layer('type: "Clip" clip_param { min: -1 max: 1 }', [(5,)])
    x = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0], requires_grad=True)
    (y,) = run_layer(layer, x)
    y.backward(torch.ones(5))
    assert y.tolist() == [-1, -1, 0, 1, 1] and x.grad.tolist() == [0, 1, 1, 1, 0]


def test_clip_min_above_max_gives_min_and_no_gradient():
    layer = build_layer('type: "Clip" clip_param { min: 2 max: 1 }', [(3,)])
    x = torch.tensor([0.0, 1.5, 3.0], requires_grad=True)
    (y,) = run_layer(layer, x)
    y.backward(torch.ones(3))
    assert y.tolist() == [2, 2, 2] and x.grad.tolist() == [0, 0, 0]


def test_clip_in_place_passes_every_gradient():
    # Caffe's in-place backward tests the clipped value, always inside the bounds.
    net = _net('layer { name: "c" type: "Clip" bottom: "x" top: "x" clip_param { min: -1 max: 1 } }',
               ("x", (4,)))
    net.blobs["x"].data[...] = [-3, -0.5, 0.5, 3]
    net.forward()
    assert net.blobs["x"].data.tolist() == [-1, -0.5, 0.5, 1]
    net.blobs["x"].diff[...] = [1, 2, 3, 4]
    net.backward()
    assert net.blobs["x"].diff.tolist() == [1, 2, 3, 4]


def test_swish_matches_formula_and_beta_zero_halves():
    x = _randn(7)
    for beta in (0.0, 1.0, 2.5):
        (y,) = run_layer(build_layer(f'type: "Swish" swish_param {{ beta: {beta} }}', [(7,)]), x)
        torch.testing.assert_close(y, x / (1 + torch.exp(-beta * x)))


# ===================================================================== Im2col
@pytest.mark.parametrize("params", ["kernel_size: 3", "kernel_size: 3 stride: 2 pad: 1",
                                    "kernel_h: 2 kernel_w: 3 dilation: 2 pad_h: 1"])
def test_im2col_is_unfold_and_conv_is_a_matmul_on_it(params):
    x = _randn(2, 3, 6, 7).float()
    layer = build_layer(f'type: "Im2col" convolution_param {{ {params} }}', [tuple(x.shape)])
    (cols,) = run_layer(layer, x)
    g = layer.geom
    ref = F.unfold(x, g.kernel, dilation=g.dilation, padding=g.pad, stride=g.stride)
    torch.testing.assert_close(cols.flatten(2), ref)
    w = torch.randn(4, 3, *g.kernel)
    conv = F.conv2d(x, w, None, g.stride, g.pad, g.dilation)
    torch.testing.assert_close(torch.einsum("ok,nkhw->nohw", w.flatten(1), cols), conv, rtol=1e-4, atol=1e-4)


# ===================================================================== MVN
def test_mvn_backward_is_caffes_not_the_derivative_when_eps_is_large():
    layer = build_layer('type: "MVN" mvn_param { eps: 0.5 }', [(1, 1, 2, 3)])
    x = _randn(1, 1, 2, 3).float().requires_grad_(True)
    (y,) = run_layer(layer, x)
    dy = _randn(1, 1, 2, 3, seed=1).float()
    y.backward(dy)
    xf, yf, dyf = x.detach().flatten(), y.detach().flatten(), dy.flatten()
    sigma = (xf - xf.mean()).pow(2).mean().sqrt()
    caffe_dx = (dyf - dyf.mean() - yf * (yf * dyf).mean()) / (sigma + 0.5)
    torch.testing.assert_close(x.grad.flatten(), caffe_dx)
    exact = torch.autograd.functional.vjp(
        lambda v: (v - v.mean()) / ((v - v.mean()).pow(2).mean().sqrt() + 0.5), xf, dyf)[1]
    assert (exact - caffe_dx).abs().max() > 1e-2


@pytest.mark.parametrize("shape,top", [((2, 3), (2, 3, 1, 1)), ((2, 3, 4), (2, 3, 4, 1)),
                                       ((2, 3, 2, 2), (2, 3, 2, 2))], ids=["2d", "3d", "4d"])
def test_mvn_top_is_padded_to_four_axes(shape, top):
    assert build_layer('type: "MVN"', [shape]).top_shapes([shape]) == [top]  # measured on real Caffe


# ===================================================================== Parameter / Reduction / Tile
def test_parameter_starts_at_zero_and_top_shares_its_memory():
    net = _net('layer { name: "p" type: "Parameter" top: "p" parameter_param { shape { dim: 2 dim: 3 } } }')
    assert not net.params["p"][0].data.any()
    net.forward()
    net.blobs["p"].data[0, 0] = 5
    assert net.params["p"][0].data[0, 0] == 5  # measured on real Caffe (after a forward)


def test_reduction_default_is_a_scalar_sum():
    net = _net('layer { name: "r" type: "Reduction" bottom: "x" top: "y" }', ("x", (2, 3)))
    net.blobs["x"].data[...] = np.arange(6).reshape(2, 3)
    net.forward()
    assert net.blobs["y"].shape == () and float(net.blobs["y"].data) == 15


def test_tile_repeats_the_whole_block():
    layer = build_layer('type: "Tile" tile_param { axis: 1 tiles: 2 }', [(1, 2, 2)])
    (y,) = run_layer(layer, torch.tensor([[[1.0, 2.0], [3.0, 4.0]]]))
    assert y.tolist() == [[[1, 2], [3, 4], [1, 2], [3, 4]]]


# ===================================================================== SPP
@pytest.mark.parametrize("level,size,expected", [
    (0, 7, (7, 0)), (1, 7, (4, 1)), (2, 7, (2, 1)), (1, 6, (3, 0)), (2, 6, (2, 1)),
    (2, 9, (3, 2)), (3, 8, (1, 0)), (2, 5, (2, 2)),
])
def test_spp_level_geometry(level, size, expected):
    assert level_geometry(level, size) == expected


@pytest.mark.parametrize("shape,height,top", [
    ((1, 1, 7, 7), 2, (1, 5)), ((1, 1, 6, 6), 3, (1, 21)), ((1, 2, 5, 6), 2, (1, 10)),
    ((1, 2, 4, 4), 1, (1, 2, 1, 1)), ((1, 1, 3, 3), 2, (1, 5)), ((1, 1, 8, 8), 4, (1, 85)),
    ((1, 1, 9, 9), 3, (1, 21)), ((1, 1, 7, 7), 3, (1, 21)),
])
def test_spp_top_shapes_measured_on_caffe(shape, height, top):
    layer = build_layer(f'type: "SPP" spp_param {{ pyramid_height: {height} }}', [shape])
    assert layer.top_shapes([shape]) == [top]


def test_spp_recomputes_levels_when_the_input_size_changes():
    net = _net('layer { name: "s" type: "SPP" bottom: "x" top: "y" spp_param { pyramid_height: 2 } }',
               ("x", (1, 1, 4, 4)))
    net.blobs["x"].reshape(1, 1, 6, 5)
    net.reshape()
    net.blobs["x"].data[...] = np.arange(30).reshape(1, 1, 6, 5)
    net.forward()
    # level 0: global max; level 1: 2x2 bins with kernel (3, 3), pad (0, 1)
    assert net.blobs["y"].data.tolist() == [[29, 11, 14, 26, 29]]


# ===================================================================== errors
X = ("x", (2, 3, 4, 5))
ERRORS = [
    # (id, layer text (name "l"), inputs, exception, message fragment)
    ("argmax_top_k_axis", 'type: "ArgMax" bottom: "x" top: "y" argmax_param { axis: 1 top_k: 4 }', [X],
     ShapeError, "top_k 4 is larger than axis 1"),
    ("argmax_top_k_flat", 'type: "ArgMax" bottom: "x" top: "y" argmax_param { top_k: 61 }', [X],
     ShapeError, "60 values"),
    ("argmax_axis_range", 'type: "ArgMax" bottom: "x" top: "y" argmax_param { axis: 4 }', [X],
     ShapeError, "axis 4 out of range"),
    ("reindex_index_axes", 'type: "BatchReindex" bottom: "x" bottom: "i" top: "y"', [X, ("i", (2, 1))],
     ShapeError, "exactly 1 axis"),
    ("reindex_out_of_range", 'type: "BatchReindex" bottom: "x" bottom: "i" top: "y"', [X, ("i", (1,))],
     ShapeError, "must lie in \\[0, 2\\)"),
    ("clip_missing", 'type: "Clip" bottom: "x" top: "y"', [X], LayerError, "clip_param"),
    ("embed_no_input_dim", 'type: "Embed" bottom: "x" top: "y" embed_param { num_output: 2 }', [X],
     LayerError, "input_dim must be > 0"),
    ("embed_no_num_output", 'type: "Embed" bottom: "x" top: "y" embed_param { input_dim: 2 }', [X],
     LayerError, "num_output must be > 0"),
    ("embed_out_of_range", 'type: "Embed" bottom: "x" top: "y" embed_param { input_dim: 2 num_output: 2 }',
     [("x", (2,))], ShapeError, "must lie in \\[0, 2\\)"),
    ("filter_tops", 'type: "Filter" bottom: "x" bottom: "s" top: "y" top: "z"', [X, ("s", (2,))],
     LayerError, "one top per filtered bottom"),
    ("filter_selector_shape", 'type: "Filter" bottom: "x" bottom: "s" top: "y"', [X, ("s", (2, 3))],
     ShapeError, "every axis after the first must be 1"),
    ("filter_batch", 'type: "Filter" bottom: "x" bottom: "s" top: "y"', [X, ("s", (3, 1))],
     ShapeError, "first dimension 3"),
    ("im2col_no_kernel", 'type: "Im2col" bottom: "x" top: "y"', [X], LayerError, "kernel_size"),
    ("im2col_no_spatial", 'type: "Im2col" bottom: "x" top: "y" convolution_param { kernel_size: 2 axis: 3 }',
     [X], ShapeError, "no spatial axes"),
    ("im2col_too_big", 'type: "Im2col" bottom: "x" top: "y" convolution_param { kernel_size: 7 }', [X],
     ShapeError, "output size"),
    ("mvn_5d", 'type: "MVN" bottom: "x" top: "y"', [("x", (1, 2, 2, 2, 2))], ShapeError, "at most 4"),
    ("parameter_no_shape", 'type: "Parameter" top: "y"', [], LayerError, "parameter_param.shape"),
    ("reduction_axis", 'type: "Reduction" bottom: "x" top: "y" reduction_param { axis: 4 }', [X],
     ShapeError, "axis 4 out of range"),
    ("spp_no_height", 'type: "SPP" bottom: "x" top: "y"', [X], LayerError, "pyramid_height must be >= 1"),
    ("spp_pad_ge_kernel", 'type: "SPP" bottom: "x" top: "y" spp_param { pyramid_height: 3 }',
     [("x", (1, 1, 5, 5))], ShapeError, "pad < kernel"),
    ("spp_3d", 'type: "SPP" bottom: "x" top: "y" spp_param { pyramid_height: 1 }', [("x", (1, 2, 3))],
     ShapeError, "4 axes"),
    ("tile_no_tiles", 'type: "Tile" bottom: "x" top: "y"', [X], LayerError, "number of tiles"),
    ("tile_zero_tiles", 'type: "Tile" bottom: "x" top: "y" tile_param { tiles: 0 }', [X], LayerError,
     "must be > 0"),
    ("tile_axis", 'type: "Tile" bottom: "x" top: "y" tile_param { axis: -5 tiles: 2 }', [X], ShapeError,
     "axis -5 out of range"),
]


@pytest.mark.parametrize("layer,inputs,exc,fragment", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_bad_layer_raises(layer, inputs, exc, fragment):
    with pytest.raises(exc, match=fragment) as info:
        net = _net(f'layer {{ name: "l" {layer} }}', *inputs, force_backward=False)
        for name, shape in inputs:
            net.blobs[name].data[...] = 5  # out of range for the index layers
        net.forward()
    assert 'layer "l"' in str(info.value)


def test_parameter_takes_no_bottom():
    with pytest.raises(LayerError, match='layer "l".*expected 0 bottom'):
        _net('layer { name: "l" type: "Parameter" bottom: "x" top: "y" '
             'parameter_param { shape { dim: 1 } } }', ("x", (1,)))


def test_argmax_has_one_top():
    with pytest.raises((LayerError, NetError), match='layer "l".*expected 1 top'):
        _net('layer { name: "l" type: "ArgMax" bottom: "x" top: "y" top: "z" }', ("x", (2, 3)))
