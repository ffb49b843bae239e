"""Layers of Caffe forks (``caffe_compat/layers/forks``) and fork fields of upstream layers.

No fork build installs here, so apart from Permute (also in the pip Caffe:
golden fixtures in ``golden/cases/forks.py``) and ``ceil_mode`` (pinned by
upstream's equivalent ``round_mode`` fixtures) the layers are checked against
``fork_oracles.py`` — statement-by-statement numpy ports of the forks' C++ —
and against hand-computed values:

* oracle tables: PriorBox, Normalize (forward and backward), DetectionOutput,
  MultiBoxLoss (loss and both gradients), ROIPooling (forward and the GPU
  kernel's backward), Upsample (both forks), Interp;
* float64 gradchecks of every differentiable fork layer;
* hand-computed cases and quirks (PriorBox size truncation, ReLU6 at its
  bounds, NMS, the MultiBoxLoss LOGISTIC target offsets, NVCaffe/Intel
  5-blob BatchNorm, ceil_mode);
* errors: what the forks abort on raises, naming the layer.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import caffe_compat as caffe
import fork_oracles as oracle
from caffe_compat.errors import LayerError, ShapeError, WeightsError
from caffe_compat.proto import caffe_pb2
from golden_harness import fixtures, load, run
from layer_util import build_layer, gradcheck_layer, run_layer

RNG = np.random.RandomState


def t32(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=np.float32))


def t64(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=np.float64))


def close(actual, expected, tol=1e-5, what=""):
    if isinstance(actual, torch.Tensor):
        actual = actual.detach().cpu().numpy()
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().cpu().numpy()
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.abs(expected).max()) if expected.size else 1.0)
    err = float(np.abs(actual - expected).max()) if actual.size else 0.0
    assert err <= tol * scale, f"{what}: max |diff| {err:.3g} > {tol:g} x {scale:.3g}"


# ====================================================================== PriorBox
PRIOR_CASES = [
    # id, prior_box_param text, feature (h, w), image (h, w), oracle kwargs
    ("ssd300_conv4_3", "min_size: 30 max_size: 60 aspect_ratio: 2 flip: true clip: false "
     "variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 step: 8 offset: 0.5",
     (4, 5), (300, 300), dict(min_sizes=[30], max_sizes=[60], ratios=[2], variance=(0.1, 0.1, 0.2, 0.2),
                              step=8)),
    ("defaults_one_variance", "min_size: 20", (3, 3), (32, 40), dict(min_sizes=[20])),
    ("two_sizes_ratios_noflip_clip", "min_size: 10 min_size: 25 max_size: 20 max_size: 40 "
     "aspect_ratio: 2 aspect_ratio: 3 aspect_ratio: 2 flip: false clip: true variance: 0.2",
     (2, 3), (24, 24), dict(min_sizes=[10, 25], max_sizes=[20, 40], ratios=[2, 3, 2], flip=False,
                            clip=True, variance=(0.2,))),
    ("fractional_sizes_truncate", "min_size: 35.7 max_size: 60.9 aspect_ratio: 0.5", (2, 2), (100, 100),
     dict(min_sizes=[35.7], max_sizes=[60.9], ratios=[0.5])),
    ("offset_zero", "min_size: 8 offset: 0", (3, 4), (30, 40), dict(min_sizes=[8], offset=0.0)),
]


@pytest.mark.parametrize("text,feat,img,kw", [c[1:] for c in PRIOR_CASES], ids=[c[0] for c in PRIOR_CASES])
def test_prior_box_matches_fork(text, feat, img, kw):
    layer = build_layer(f'type: "PriorBox" prior_box_param {{ {text} }}', [(2, 4, *feat), (2, 3, *img)])
    (out,) = run_layer(layer, torch.zeros(2, 4, *feat), torch.zeros(2, 3, *img))
    expected = oracle.prior_box(*feat, *img, **kw)
    close(out, expected, 1e-6, "priors")
    assert layer.top_shapes([(2, 4, *feat), (2, 3, *img)]) == [tuple(expected.shape)]


def test_prior_box_first_cell_by_hand():
    """SSD300 conv4_3: cell (0, 0) center (4, 4); squares 30 and sqrt(30*60), then 2:1 and 1:2."""
    layer = build_layer('type: "PriorBox" prior_box_param { min_size: 30 max_size: 60 aspect_ratio: 2 '
                        "flip: true step: 8 }", [(1, 1, 38, 38), (1, 3, 300, 300)])
    (out,) = run_layer(layer, torch.zeros(1, 1, 38, 38), torch.zeros(1, 3, 300, 300))
    assert out.shape == (1, 2, 38 * 38 * 4 * 4)
    s, r = np.sqrt(30 * 60), np.sqrt(2)
    sides = [(30, 30), (s, s), (30 * r, 30 / r), (30 / r, 30 * r)]
    want = [[(4 - w / 2) / 300, (4 - h / 2) / 300, (4 + w / 2) / 300, (4 + h / 2) / 300] for w, h in sides]
    close(out[0, 0, :16].numpy(), np.ravel(want), 1e-6)
    close(out[0, 1, :8].numpy(), [0.1] * 8)


# ===================================================================== Normalize
NORM_CASES = [("across_shared", True, True), ("across_channelwise", True, False),
              ("spatial_shared", False, True), ("spatial_channelwise", False, False)]


@pytest.mark.parametrize("across,shared", [c[1:] for c in NORM_CASES], ids=[c[0] for c in NORM_CASES])
def test_normalize_matches_fork_forward_and_backward(across, shared):
    x = RNG(0).randn(2, 3, 4, 5).astype(np.float32)
    g = RNG(1).randn(2, 3, 4, 5).astype(np.float32)
    text = (f'type: "Normalize" norm_param {{ across_spatial: {str(across).lower()} '
            f"channel_shared: {str(shared).lower()} eps: 1e-6 }}")
    layer = build_layer(text, [x.shape])
    scale = np.float32(1.7) if shared else RNG(2).uniform(0.5, 2, 3).astype(np.float32)
    with torch.no_grad():
        layer.params[0].copy_(t32(scale))
    xt = t32(x).requires_grad_(True)
    (y,) = run_layer(layer, xt)
    y.backward(t32(g))
    top, bottom = oracle.normalize(x, scale, across, shared, 1e-6, g)
    close(y.detach(), top, 1e-5, "top")
    close(xt.grad, bottom, 1e-5, "bottom diff")


def test_normalize_defaults_and_blob_shapes():
    layer = build_layer('type: "Normalize"', [(2, 3, 2, 2)])
    assert tuple(layer.params[0].shape) == () and float(layer.params[0].detach()) == 1.0
    assert layer.across_spatial and layer.channel_shared and layer.eps == pytest.approx(1e-10)
    layer = build_layer('type: "Normalize" norm_param { channel_shared: false '
                        'scale_filler { type: "constant" value: 20 } }', [(2, 3, 2, 2)])
    assert layer.params[0].tolist() == [20.0] * 3
    x = torch.randn(1, 3)  # 2 axes: one spatial position
    (y,) = run_layer(layer, x)
    close(y, 20 * x / torch.sqrt((x * x).sum() + 1e-10))


# ===================================================================== Permute
PERMUTE_FIXTURES = fixtures("net", ("forks",))


@pytest.mark.parametrize("path", PERMUTE_FIXTURES, ids=[p.stem for p in PERMUTE_FIXTURES])
def test_golden_strict(path):
    """Permute (also in the pip Caffe) and the round_mode fixtures, to float32 rounding."""
    run(dataclasses.replace(load(path), meta=dict(load(path).meta, tol=1e-6)))


def test_ceil_mode_false_is_round_mode_floor():
    """Forks' ``ceil_mode: false`` reproduces real Caffe's ``round_mode: FLOOR`` fixtures."""
    floor = [p for p in PERMUTE_FIXTURES if "round_mode: FLOOR" in load(p).meta["prototxt"]]
    assert floor, "no round_mode: FLOOR fixture in golden/data/forks"
    for path in floor:
        fx = load(path)
        text = fx.meta["prototxt"].replace("round_mode: FLOOR", "ceil_mode: false")
        run(fx, caffe.Net(text, caffe.TRAIN if fx.meta["phase"] == "TRAIN" else caffe.TEST))


@pytest.mark.parametrize("mode,size", [("ceil_mode: true", 3), ("ceil_mode: false", 2), ("", 3),
                                       ("ceil_mode: true round_mode: CEIL", 3)],
                         ids=["true", "false", "unset", "agreeing"])
def test_ceil_mode_output_size(mode, size):
    layer = build_layer(f'type: "Pooling" pooling_param {{ kernel_size: 2 stride: 2 {mode} }}',
                        [(1, 1, 5, 5)])
    assert layer.top_shapes([(1, 1, 5, 5)]) == [(1, 1, size, size)]


# ============================================================= DetectionOutput
def _det_inputs(seed, n, num_p, lc, num_classes):
    rng = RNG(seed)
    loc = (rng.randn(n, num_p * lc * 4) * 0.3).astype(np.float32)
    logits = rng.randn(n, num_p, num_classes) * 2
    conf = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    xy = rng.uniform(0, 0.7, (num_p, 2))
    wh = rng.uniform(0.1, 0.4, (num_p, 2))
    boxes = np.concatenate([xy, xy + wh], 1)
    boxes[: num_p // 3] = boxes[num_p // 3: 2 * (num_p // 3)] + 0.01  # overlapping pairs for NMS
    var = np.tile([0.1, 0.1, 0.2, 0.2], (num_p, 1))
    prior = np.stack([boxes.ravel(), var.ravel()])[None].astype(np.float32)
    return loc, conf.reshape(n, -1).astype(np.float32), prior


DET_CASES = [
    # id, detection_output_param text, oracle kwargs, (n, priors, loc classes, classes)
    ("center_size_defaults", "num_classes: 3 code_type: CENTER_SIZE", dict(code=2), (2, 12, 1, 3)),
    ("corner_nms_topk_keep", "num_classes: 4 nms_param { nms_threshold: 0.3 top_k: 5 } keep_top_k: 6 "
     "confidence_threshold: 0.05",
     dict(code=1, nms_threshold=0.3, top_k=5, keep_top_k=6, conf_threshold=0.05), (2, 15, 1, 4)),
    ("corner_size_eta", "num_classes: 3 code_type: CORNER_SIZE nms_param { nms_threshold: 0.7 eta: 0.8 }",
     dict(code=3, nms_threshold=0.7, eta=0.8), (1, 18, 1, 3)),
    ("no_share_location_bg2", "num_classes: 3 share_location: false background_label_id: 2 "
     "code_type: CENTER_SIZE variance_encoded_in_target: true", dict(code=2, share_location=False,
                                                                     background=2, var_in_target=True),
     (2, 9, 3, 3)),
    ("no_background", "num_classes: 2 share_location: false background_label_id: -1 "
     "nms_param { nms_threshold: 0.5 }", dict(share_location=False, background=-1, nms_threshold=0.5),
     (1, 10, 2, 2)),
    ("nothing_above_threshold", "num_classes: 3 confidence_threshold: 0.999", dict(conf_threshold=0.999),
     (2, 6, 1, 3)),
]


@pytest.mark.parametrize("text,kw,dims", [c[1:] for c in DET_CASES], ids=[c[0] for c in DET_CASES])
def test_detection_output_matches_fork(text, kw, dims):
    n, num_p, lc, ncls = dims
    loc, conf, prior = _det_inputs(sum(dims), n, num_p, lc, ncls)
    layer = build_layer(f'type: "DetectionOutput" detection_output_param {{ {text} }}',
                        [loc.shape, conf.shape, prior.shape], phase=caffe.TEST)
    (out,) = run_layer(layer, t32(loc), t32(conf), t32(prior))
    expected = oracle.detection_output(loc, conf, prior, ncls, **kw)
    close(out, expected, 1e-6, "detections")


def test_detection_output_nms_by_hand():
    """Class 1: box 1 (0.7) suppresses box 0 (0.6, IoU 0.81 > 0.45); class 2 keeps boxes 2 (0.4) and
    0 (0.3, IoU 0.25); scores below 0.2 are dropped. Rows by label, then by score."""
    boxes = np.array([[0, 0, 1, 1], [0, 0, 0.9, 0.9], [0.5, 0.5, 1, 1]], np.float32)
    prior = np.stack([boxes.ravel(), np.full(12, 0.1)])[None].astype(np.float32)
    conf = np.array([[0.1, 0.6, 0.3], [0.2, 0.7, 0.1], [0.5, 0.1, 0.4]], np.float32).reshape(1, 9)
    layer = build_layer('type: "DetectionOutput" detection_output_param { num_classes: 3 '
                        "nms_param { nms_threshold: 0.45 } confidence_threshold: 0.2 }",
                        [(1, 12), (1, 9), prior.shape])
    (out,) = run_layer(layer, torch.zeros(1, 12), t32(conf), t32(prior))
    close(out[0, 0], [[0, 1, 0.7, 0, 0, 0.9, 0.9], [0, 2, 0.4, 0.5, 0.5, 1, 1],
                      [0, 2, 0.3, 0, 0, 1, 1]], 1e-7)


def test_detection_output_shared_locations_without_background():
    """background_label_id -1 with shared locations: the fork skips decoding the shared boxes (their
    label, -1, equals the background id) and then aborts; here every class is detected."""
    prior = t32([[[0, 0, 0.5, 0.5, 0.5, 0.5, 1, 1], [0.1] * 8]])
    layer = build_layer('type: "DetectionOutput" detection_output_param { num_classes: 2 '
                        "background_label_id: -1 }", [(1, 8), (1, 4), (1, 2, 8)])
    (out,) = run_layer(layer, torch.zeros(1, 8), t32([[0.9, 0.1, 0.3, 0.7]]), prior)
    assert out[0, 0, :, 1].tolist() == [0, 0, 1, 1]


def test_detection_output_without_detections_is_minus_one_rows():
    layer = build_layer('type: "DetectionOutput" detection_output_param { num_classes: 2 '
                        "confidence_threshold: 0.9 }", [(3, 8), (3, 4), (1, 2, 8)])
    prior = torch.tensor([[[0, 0, 1, 1, 0, 0, 0.5, 0.5], [0.1] * 8]])
    (out,) = run_layer(layer, torch.zeros(3, 8), torch.full((3, 4), 0.5), prior)
    expected = -np.ones((1, 1, 3, 7))
    expected[0, 0, :, 0] = [0, 1, 2]
    close(out, expected, 0)
    assert layer.top_shapes([(3, 8), (3, 4), (1, 2, 8)]) == [(1, 1, 1, 7)]


def test_detection_output_in_a_net_reshapes_its_top():
    text = """
layer { name: "in" type: "Input" top: "loc" top: "conf" top: "prior"
        input_param { shape { dim: 1 dim: 8 } shape { dim: 1 dim: 4 } shape { dim: 1 dim: 2 dim: 8 } } }
layer { name: "det" type: "DetectionOutput" bottom: "loc" bottom: "conf" bottom: "prior" top: "det"
        detection_output_param { num_classes: 2 } }
"""
    net = caffe.Net(text, caffe.TEST)
    assert net.blobs["det"].data.shape == (1, 1, 1, 7)
    net.blobs["prior"].data[...] = [[[0, 0, 1, 1, 0.5, 0.5, 1, 1], [0.1] * 8]]
    net.blobs["conf"].data[...] = [[0.2, 0.8, 0.3, 0.7]]
    out = net.forward()["det"]
    assert out.shape == (1, 1, 2, 7) and out[0, 0, :, 2].tolist() == pytest.approx([0.8, 0.7])


# ================================================================ MultiBoxLoss
def _mbox_inputs(seed, n, num_p, lc, ncls, num_gt=4, with_pad=True):
    rng = RNG(seed)
    loc = (rng.randn(n, num_p * lc * 4) * 0.5).astype(np.float32)
    conf = rng.randn(n, num_p * ncls).astype(np.float32)
    xy = rng.uniform(0, 0.7, (num_p, 2))
    prior_boxes = np.concatenate([xy, xy + rng.uniform(0.1, 0.35, (num_p, 2))], 1)
    prior_boxes[0] = [-0.05, 0.2, 0.3, 0.5]  # crosses the boundary
    var = np.tile([0.1, 0.1, 0.2, 0.2], (num_p, 1))
    prior = np.stack([prior_boxes.ravel(), var.ravel()])[None].astype(np.float32)
    rows = []
    for g in range(num_gt):
        image = g % n
        b = prior_boxes[rng.randint(num_p)] + rng.uniform(-0.03, 0.03, 4)
        rows.append([image, 1 + g % (ncls - 1), 0, *np.clip(b, 0.01, 0.99), g == 3])
    if with_pad:
        rows.append([-1] * 8)
    gt = np.asarray(rows, np.float32)[None, None]
    return loc, conf, prior, gt


MBOX_CASES = [
    # id, multibox_loss_param text, oracle kwargs, (n, priors, share_location, classes)
    ("ssd_defaults", "num_classes: 3 overlap_threshold: 0.3", dict(overlap_threshold=0.3), (2, 20, True, 3)),
    ("center_size_l2", "num_classes: 4 overlap_threshold: 0.2 code_type: CENTER_SIZE loc_loss_type: L2 "
     "loc_weight: 2 neg_pos_ratio: 2",
     dict(overlap_threshold=0.2, code=2, smooth_l1=False, loc_weight=2.0, neg_pos_ratio=2.0),
     (2, 16, True, 4)),
    ("bipartite_no_mining", "num_classes: 3 match_type: BIPARTITE mining_type: NONE",
     dict(bipartite=True, mining="NONE"), (2, 12, True, 3)),
    ("hard_example", "num_classes: 3 overlap_threshold: 0.25 mining_type: HARD_EXAMPLE sample_size: 5",
     dict(overlap_threshold=0.25, mining="HARD_EXAMPLE", sample_size=5), (2, 14, True, 3)),
    ("no_share_location_no_mining", "num_classes: 3 share_location: false mining_type: NONE "
     "overlap_threshold: 0.2", dict(mining="NONE", overlap_threshold=0.2),
     (2, 10, False, 3)),
    ("match_decoded_predictions", "num_classes: 3 use_prior_for_matching: false overlap_threshold: 0.2 "
     "code_type: CENTER_SIZE", dict(use_prior_for_matching=False, overlap_threshold=0.2, code=2),
     (2, 16, True, 3)),
    ("variance_in_target_full_norm", "num_classes: 3 encode_variance_in_target: true overlap_threshold: 0.3 "
     "code_type: CORNER_SIZE loss_param: {} ", dict(var_in_target=True, overlap_threshold=0.3, code=3),
     (2, 16, True, 3)),
    ("normalization_full_no_difficult", "num_classes: 3 overlap_threshold: 0.3 use_difficult_gt: false",
     dict(overlap_threshold=0.3, use_difficult=False, normalization="FULL"), (2, 18, True, 3)),
    ("logistic_mining", "num_classes: 3 conf_loss_type: LOGISTIC overlap_threshold: 0.3",
     dict(overlap_threshold=0.3, softmax=False), (2, 16, True, 3)),
    ("ignore_cross_boundary", "num_classes: 3 overlap_threshold: 0.3 ignore_cross_boundary_bbox: true",
     dict(overlap_threshold=0.3, ignore_cross=True), (2, 16, True, 3)),
    ("agnostic", "num_classes: 2 overlap_threshold: 0.3 map_object_to_agnostic: true",
     dict(overlap_threshold=0.3, agnostic=True), (2, 16, True, 2)),
]


@pytest.mark.parametrize("text,kw,dims", [c[1:] for c in MBOX_CASES], ids=[c[0] for c in MBOX_CASES])
def test_multibox_loss_matches_fork(text, kw, dims):
    n, num_p, share, ncls = dims
    lc = 1 if share else ncls
    loc, conf, prior, gt = _mbox_inputs(num_p + ncls, n, num_p, lc, ncls)
    extra = ' loss_param { normalization: FULL }' if kw.get("normalization") == "FULL" else ""
    layer = build_layer(f'type: "MultiBoxLoss" multibox_loss_param {{ {text.replace("loss_param: {}", "")} }}'
                        + extra, [loc.shape, conf.shape, prior.shape, gt.shape])
    lt, ct = t32(loc).requires_grad_(True), t32(conf).requires_grad_(True)
    (loss,) = run_layer(layer, lt, ct, t32(prior), t32(gt))
    loss.backward()
    want, dloc, dconf = oracle.multibox_loss(loc, conf, prior, gt, ncls, share_location=share, **kw)
    assert float(loss) == pytest.approx(want, rel=2e-5, abs=1e-6)
    close(lt.grad, dloc, 2e-5, "loc diff")
    close(ct.grad, dconf, 2e-5, "conf diff")
    assert want > 0 and np.abs(dloc).sum() > 0


def test_multibox_loss_by_hand():
    """One prior on the one ground truth box (CORNER code, offsets 0): loc loss = Σ smoothL1(−gt offset
    / variance); one mined negative (int(1 · 3) limited to the 1 eligible prior)."""
    prior = np.array([[[0.1, 0.1, 0.5, 0.5, 0.6, 0.6, 0.9, 0.9], [0.1] * 8]], np.float32)
    gt = np.array([[[[0, 1, 0, 0.12, 0.1, 0.5, 0.55, 0]]]], np.float32)
    conf = np.array([[0.0, 2.0, 1.0, 0.5]], np.float32)  # prior 0: classes 0, 1; prior 1: classes 0, 1
    layer = build_layer('type: "MultiBoxLoss" multibox_loss_param { num_classes: 2 }',
                        [(1, 8), (1, 4), prior.shape, gt.shape])
    (loss,) = run_layer(layer, torch.zeros(1, 8), t32(conf), t32(prior), t32(gt))
    offsets = np.array([0.02, 0.0, 0.0, 0.05]) / 0.1  # (gt - prior) / variance
    loc = np.where(np.abs(offsets) < 1, 0.5 * offsets ** 2, np.abs(offsets) - 0.5).sum()
    pos = -np.log(np.exp(2) / (1 + np.exp(2)))  # prior 0, class 1
    neg = -np.log(np.exp(1) / (np.exp(1) + np.exp(0.5)))  # prior 1, background
    assert float(loss) == pytest.approx(loc + pos + neg, rel=1e-6)


def test_multibox_loss_propagate_down_drops_terms():
    loc, conf, prior, gt = _mbox_inputs(5, 2, 12, 1, 3)
    shapes = [loc.shape, conf.shape, prior.shape, gt.shape]
    args = [t32(a) for a in (loc, conf, prior, gt)]
    text = 'type: "MultiBoxLoss" multibox_loss_param { num_classes: 3 overlap_threshold: 0.3 }'
    (both,) = run_layer(build_layer(text, shapes), *args)
    pd = " ".join(f"propagate_down: {v}" for v in ("true", "false", "false", "false"))
    (loc_only,) = run_layer(build_layer(f"{text} {pd}", shapes), *args)
    pd = " ".join(f"propagate_down: {v}" for v in ("false", "true", "false", "false"))
    (conf_only,) = run_layer(build_layer(f"{text} {pd}", shapes), *args)
    assert float(loc_only) > 0 and float(conf_only) > 0
    assert float(loc_only) + float(conf_only) == pytest.approx(float(both), rel=1e-6)


def test_multibox_logistic_without_mining_keeps_the_forks_target_offsets():
    """Without mining the fork advances its sigmoid target pointer by num_priors per image (not
    num_priors · num_classes): image 1's 1s land num_priors entries in, i.e. in image 0's rows."""
    loc, conf, prior, gt = _mbox_inputs(3, 2, 6, 1, 3, num_gt=2, with_pad=False)
    layer = build_layer('type: "MultiBoxLoss" multibox_loss_param { num_classes: 3 mining_type: NONE '
                        "conf_loss_type: LOGISTIC overlap_threshold: 0.1 }",
                        [loc.shape, conf.shape, prior.shape, gt.shape])
    ct = t32(conf).requires_grad_(True)
    (loss,) = run_layer(layer, t32(loc), ct, t32(prior), t32(gt))
    loss.backward()
    from caffe_compat.layers.forks import _multibox_match as mm

    boxes, var = prior[0, 0].reshape(-1, 4), prior[0, 1].reshape(-1, 4)
    gts = mm.ground_truth(gt, 0, True, "t")
    m = mm.find_matches(layer.p, loc.reshape(2, 6, 1, 4), gts, boxes, var, 1)
    target = np.zeros(2 * 6 * 3, np.float32)
    for i in range(2):
        for j, g in enumerate(m.indices[i][-1]):
            if g > -1:
                target[i * 6 + j * 3 + gts[i].labels[g]] = 1
    x = conf.reshape(-1).astype(np.float64)
    norm = max(1, m.num_matches)
    close(ct.grad.reshape(-1), (1 / (1 + np.exp(-x)) - target) / norm, 1e-6)


def test_multibox_errors():
    shapes = [(1, 8), (1, 4), (1, 2, 8), (1, 1, 1, 8)]
    bad = {
        "": "num_classes is required",
        "num_classes: 2 share_location: false": "negative mining needs share_location",
        "num_classes: 2 do_neg_mining: false": "contradicts mining_type",
        "num_classes: 3 map_object_to_agnostic: true": "map_object_to_agnostic",
    }
    for text, words in bad.items():
        with pytest.raises(LayerError, match=words) as info:
            build_layer(f'type: "MultiBoxLoss" multibox_loss_param {{ {text} }}', shapes, name="mbox")
        assert 'MultiBoxLoss layer "mbox"' in str(info.value)
    layer = build_layer('type: "MultiBoxLoss" multibox_loss_param { num_classes: 2 }', shapes)
    gt = torch.tensor([[[[0, 0, 0, 0.1, 0.1, 0.5, 0.5, 0]]]])  # background label 0 in the ground truth
    with pytest.raises(ValueError, match="background label"):
        run_layer(layer, torch.zeros(1, 8), torch.zeros(1, 4), torch.rand(1, 2, 8), gt)


# ================================================================== ROIPooling
ROI_CASES = [
    ("scale_half", (2, 3, 6, 8), [[0, 0, 0, 7, 5], [1, 2, 2, 14, 10], [0, -3, 1, 30, 30]], 2, 3, 0.5),
    ("vgg_sixteenth", (1, 2, 9, 12), [[0, 16, 16, 120, 80], [0, 0, 0, 15, 15], [0, 100, 60, 190, 140]],
     3, 3, 0.0625),
    ("degenerate_and_outside", (1, 1, 5, 5), [[0, 3, 3, 3, 3], [0, 10, 10, 20, 20], [0, -8, -8, -2, -2]],
     2, 2, 1.0),
    ("halves_round_away", (1, 2, 8, 8), [[0, 1, 3, 5, 7], [0, 0.5, 1.5, 2.5, 6.5]], 3, 2, 0.5),
]


@pytest.mark.parametrize("shape,rois,ph,pw,scale", [c[1:] for c in ROI_CASES], ids=[c[0] for c in ROI_CASES])
def test_roi_pooling_matches_fork(shape, rois, ph, pw, scale):
    x = RNG(7).permutation(int(np.prod(shape))).reshape(shape).astype(np.float32) - 20  # distinct values
    rois = np.asarray(rois, np.float32)
    g = RNG(8).randn(len(rois), shape[1], ph, pw).astype(np.float32)
    layer = build_layer(f'type: "ROIPooling" roi_pooling_param {{ pooled_h: {ph} pooled_w: {pw} '
                        f"spatial_scale: {scale} }}", [shape, rois.shape])
    xt = t32(x).requires_grad_(True)
    (y,) = run_layer(layer, xt, t32(rois))
    y.backward(t32(g))
    top, diff = oracle.roi_pooling(x, rois, ph, pw, scale, g)
    close(y.detach(), top, 0, "top")
    close(xt.grad, diff, 1e-6, "bottom diff")


def test_roi_pooling_first_maximum_gets_the_gradient():
    x = torch.ones(1, 1, 2, 2, requires_grad=True)
    layer = build_layer('type: "ROIPooling" roi_pooling_param { pooled_h: 1 pooled_w: 1 }',
                        [(1, 1, 2, 2), (1, 5)])
    (y,) = run_layer(layer, x, torch.tensor([[0.0, 0, 0, 1, 1]]))
    y.sum().backward()
    assert x.grad.reshape(-1).tolist() == [1, 0, 0, 0]


# ================================================================ Upsample, Interp
@pytest.mark.parametrize("scale", [1, 2, 3])
def test_upsample_nearest_matches_fork(scale):
    x = RNG(scale).randn(2, 3, 3, 4).astype(np.float32)
    layer = build_layer(f'type: "Upsample" upsample_param {{ scale: {scale} }}', [x.shape])
    (y,) = run_layer(layer, t32(x))
    close(y, oracle.upsample_nearest(x, scale), 0)


UNPOOL_CASES = [("scale_default", "", (6, 8), (2, 2, 3, 4)),
                ("pad_out", "scale: 2 pad_out_h: true", (5, 8), (1, 2, 3, 4)),
                ("exact_size", "upsample_h: 6 upsample_w: 7", (6, 7), (1, 3, 3, 4))]


@pytest.mark.parametrize("text,out,shape", [c[1:] for c in UNPOOL_CASES], ids=[c[0] for c in UNPOOL_CASES])
def test_upsample_unpool_matches_segnet(text, out, shape):
    rng = RNG(3)
    x = rng.randn(*shape).astype(np.float32)
    mask = np.stack([rng.choice(out[0] * out[1], shape[2] * shape[3], replace=False)
                     for _ in range(shape[0] * shape[1])]).reshape(shape).astype(np.float32)
    mask[0, 0, 0, 1] = mask[0, 0, 0, 0]  # two values for one position: the later wins
    g = rng.randn(shape[0], shape[1], *out).astype(np.float32)
    layer = build_layer(f'type: "Upsample" upsample_param {{ {text} }}', [shape, shape])
    xt = t32(x).requires_grad_(True)
    (y,) = run_layer(layer, xt, t32(mask))
    y.backward(t32(g))
    top, diff = oracle.unpool(x, mask, *out, g)
    close(y.detach(), top, 0, "top")
    close(xt.grad, diff, 0, "bottom diff")


def test_unpool_inverts_max_pooling_in_a_net():
    text = """force_backward: true
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 dim: 6 dim: 6 } } }
layer { name: "pool" type: "Pooling" bottom: "x" top: "p" top: "mask"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "up" type: "Upsample" bottom: "p" bottom: "mask" top: "up" upsample_param { scale: 2 } }
"""
    net = caffe.Net(text, caffe.TRAIN)
    x = RNG(0).randn(1, 2, 6, 6).astype(np.float32)
    net.blobs["x"].data[...] = x
    up = net.forward()["up"]
    blocks = x.reshape(1, 2, 3, 2, 3, 2)
    keep = blocks == blocks.max(axis=(3, 5), keepdims=True)
    close(up, np.where(keep, blocks, 0).reshape(x.shape), 0)


INTERP_CASES = [("zoom", "zoom_factor: 3", (2, 2, 4, 5), (10, 13), 0, 0),
                ("shrink", "shrink_factor: 2", (1, 2, 7, 9), (4, 5), 0, 0),
                ("size", "height: 5 width: 1", (1, 1, 3, 4), (5, 1), 0, 0),
                ("shrink_then_zoom_cropped", "shrink_factor: 2 zoom_factor: 2 pad_beg: -1 pad_end: -1",
                 (1, 2, 9, 9), (7, 7), -1, -1),
                ("same_size_copies", "height: 4 width: 5", (1, 1, 4, 5), (4, 5), 0, 0)]


@pytest.mark.parametrize("text,shape,out,beg,end", [c[1:] for c in INTERP_CASES],
                         ids=[c[0] for c in INTERP_CASES])
def test_interp_matches_fork(text, shape, out, beg, end):
    x = RNG(4).randn(*shape).astype(np.float32)
    layer = build_layer(f'type: "Interp" interp_param {{ {text} }}', [shape])
    (y,) = run_layer(layer, t32(x))
    assert tuple(y.shape[2:]) == out
    close(y, oracle.interp(x, *out, beg, end), 1e-6)


# ======================================================================== ReLU6
def test_relu6_values_and_gradient_at_the_bounds():
    layer = build_layer('type: "ReLU6"', [(6,)])
    x = torch.tensor([-1.0, 0.0, 3.0, 6.0, 7.0, 5.999], requires_grad=True)
    (y,) = run_layer(layer, x)
    y.backward(torch.ones(6))
    assert y.tolist() == pytest.approx([0, 0, 3, 6, 6, 5.999])
    assert x.grad.tolist() == [0, 0, 1, 0, 0, 1]


# =========================================================== fused 5-blob BatchNorm
def _bn(text, phase=caffe.TEST, shape=(2, 3, 2, 2)):
    return build_layer(f'type: "BatchNorm" batch_norm_param {{ {text} }}', [shape], phase=phase)


def test_nvcaffe_batchnorm_global_stats_ignore_the_factor_blob():
    layer = _bn("scale_bias: true eps: 1e-7")  # NVCaffe clamps eps to 1e-5
    assert type(layer).__name__ == "FusedBatchNorm" and len(layer.params) == 5
    assert [tuple(p.shape) for p in layer.params] == [(3,), (3,), (1,), (3,), (3,)]
    assert layer.params[2].tolist() == [1.0] and layer.params[3].tolist() == [1.0] * 3
    mean, var, scale, bias = (t32(RNG(i).uniform(0.5, 2, 3)) for i in range(4))
    with torch.no_grad():
        for k, v in ((0, mean), (1, var), (2, torch.tensor([7.0])), (3, scale), (4, bias)):
            layer.params[k].copy_(v)
    x = torch.randn(2, 3, 2, 2)
    (y,) = run_layer(layer, x)
    v = lambda t: t.view(1, 3, 1, 1)  # noqa: E731
    close(y, v(scale) * (x - v(mean)) / torch.sqrt(v(var) + 1e-5) + v(bias), 1e-6)


def test_intel_batchnorm_divides_by_the_factor_and_can_drop_the_bias():
    layer = _bn("use_weight_bias: true bias_term: false eps: 1e-3")
    assert len(layer.params) == 4 and layer.params[2].tolist() == [0.0]
    with torch.no_grad():
        layer.params[0].copy_(t32([2, 4, 6]))
        layer.params[1].copy_(t32([2, 2, 2]))
        layer.params[2].fill_(2)
        layer.params[3].copy_(t32([1, 2, 3]))
    x = torch.randn(2, 3, 2, 2)
    (y,) = run_layer(layer, x)
    v = lambda a: torch.tensor(a, dtype=torch.float32).view(1, 3, 1, 1)  # noqa: E731
    close(y, v([1, 2, 3]) * (x - v([1, 2, 3])) / np.sqrt(1 + 1e-3), 1e-6)
    assert len(_bn("use_weight_bias: true").params) == 5
    three = build_layer('type: "BatchNorm" param { lr_mult: 0 } param { lr_mult: 0 } param { lr_mult: 0 } '
                        'batch_norm_param { use_weight_bias: true }',
                        [(2, 3)])
    assert type(three).__name__ == "BatchNorm" and len(three.params) == 3  # Intel's 3-param rule


def test_nvcaffe_batchnorm_train_updates_like_nvcaffe():
    layer = _bn("scale_bias: true moving_average_fraction: 0.9", caffe.TRAIN)
    xs = [torch.randn(2, 3, 2, 2) * (k + 1) for k in range(4)]
    mean = var = None
    for k, x in enumerate(xs):
        run_layer(layer, x)
        bm = x.mean(dim=(0, 2, 3))
        bv = x.var(dim=(0, 2, 3), unbiased=False) + 1e-5  # NVCaffe keeps the variance with eps
        mean = bm if k < 2 else 0.1 * bm + 0.9 * mean
        var = bv if k < 2 else 0.1 * bv + 0.9 * var
    close(layer.params[0], mean, 1e-5)
    close(layer.params[1], var, 1e-5)
    specs = [(s.lr_mult, s.decay_mult) for s in layer.layer_param.param]
    assert specs == [(0, 0)] * 3 + [(1, 1)] * 2  # forced, as NVCaffe does


def test_five_blob_caffemodel_into_plain_batchnorm_names_the_fix(tmp_path):
    fused = 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 } } }\n' \
            'layer { name: "bn" type: "BatchNorm" bottom: "x" top: "y"\n' \
            '        batch_norm_param { scale_bias: true } }\n'
    net = caffe.Net(fused, caffe.TEST)
    net.params["bn"][3].data[...] = [1, 2, 3]
    path = tmp_path / "nv.caffemodel"
    net.save(str(path))
    plain = caffe.Net(fused.replace("batch_norm_param { scale_bias: true }", ""), caffe.TEST)
    with pytest.raises(WeightsError, match=r"scale_bias: true"):
        plain.copy_from(str(path))
    again = caffe.Net(fused, caffe.TEST)
    again.copy_from(str(path))
    assert again.params["bn"][3].data.tolist() == [1, 2, 3]


# ================================================================== gradchecks
def _distinct(*shape, seed=0):
    n = int(np.prod(shape))
    return t64((RNG(seed).permutation(n).reshape(shape) - n / 2) * 0.05)


GRAD_CASES = [
    ("normalize_across_shared", 'type: "Normalize" norm_param { eps: 1e-3 }',
     lambda: [_distinct(2, 3, 2, 2)]),
    ("normalize_spatial_shared", 'type: "Normalize" norm_param { across_spatial: false '
     'scale_filler { type: "gaussian" } }', lambda: [_distinct(2, 3, 2, 3)]),
    ("permute", 'type: "Permute" permute_param { order: 0 order: 2 order: 3 order: 1 }',
     lambda: [_distinct(2, 3, 2, 2)]),
    ("roi_pooling", 'type: "ROIPooling" roi_pooling_param { pooled_h: 2 pooled_w: 2 spatial_scale: 0.5 }',
     lambda: [_distinct(2, 2, 6, 6), t64([[0, 0, 0, 9, 9], [1, 2, 4, 11, 7]])]),
    ("upsample_nearest", 'type: "Upsample" upsample_param { scale: 2 }', lambda: [_distinct(1, 2, 2, 3)]),
    ("upsample_unpool", 'type: "Upsample" upsample_param { scale: 2 }',
     lambda: [_distinct(1, 2, 2, 2), t64(np.tile([0, 3, 9, 14], (1, 2, 1)).reshape(1, 2, 2, 2))]),
    ("interp", 'type: "Interp" interp_param { zoom_factor: 2 pad_beg: -1 }', lambda: [_distinct(1, 2, 4, 5)]),
    ("relu6", 'type: "ReLU6"', lambda: [_distinct(3, 50) * 2 + 0.025]),  # off the kinks
    ("bn_nvcaffe_train", 'type: "BatchNorm" batch_norm_param { scale_bias: true '
     'scale_filler { type: "gaussian" } bias_filler { type: "gaussian" } }', lambda: [_distinct(3, 2, 2, 2)]),
    ("bn_intel_test", 'type: "BatchNorm" batch_norm_param { use_weight_bias: true use_global_stats: true '
     'filler { type: "gaussian" } }', lambda: [_distinct(3, 2, 2, 2)]),
]


@pytest.mark.parametrize("text,make", [c[1:] for c in GRAD_CASES], ids=[c[0] for c in GRAD_CASES])
def test_gradcheck(text, make):
    bottoms = make()
    layer = build_layer(text, [tuple(b.shape) for b in bottoms])
    check = [0] if len(bottoms) > 1 else None  # regions and masks get no gradient
    assert gradcheck_layer(layer, bottoms, check=check)


@pytest.mark.parametrize("conf_type", ["SOFTMAX", "LOGISTIC"])
def test_gradcheck_multibox_loss(conf_type):
    loc, conf, prior, gt = _mbox_inputs(11, 2, 10, 1, 3)
    layer = build_layer(f'type: "MultiBoxLoss" multibox_loss_param {{ num_classes: 3 overlap_threshold: 0.3 '
                        f"conf_loss_type: {conf_type} code_type: CENTER_SIZE }}",
                        [loc.shape, conf.shape, prior.shape, gt.shape])
    assert gradcheck_layer(layer, [t64(loc), t64(conf), t64(prior), t64(gt)], check=[0, 1], eps=1e-7)


# ======================================================================= errors
ERROR_CASES = [
    ("prior_no_min_size", 'type: "PriorBox" prior_box_param { max_size: 3 }', [(1, 1, 2, 2), (1, 3, 8, 8)],
     LayerError, "min_size is required"),
    ("prior_max_below_min", 'type: "PriorBox" prior_box_param { min_size: 4 max_size: 3 }',
     [(1, 1, 2, 2), (1, 3, 8, 8)], LayerError, "max_size must be greater"),
    ("prior_three_variances", 'type: "PriorBox" prior_box_param { min_size: 4 variance: 1 variance: 1 '
     "variance: 1 }", [(1, 1, 2, 2), (1, 3, 8, 8)], LayerError, "1 or 4 variances"),
    ("prior_step_twice", 'type: "PriorBox" prior_box_param { min_size: 4 step: 2 step_h: 3 step_w: 3 }',
     [(1, 1, 2, 2), (1, 3, 8, 8)], LayerError, "either step or step_h"),
    ("normalize_1d", 'type: "Normalize"', [(5,)], ShapeError, "at least 2 axes"),
    ("permute_out_of_range", 'type: "Permute" permute_param { order: 4 }', [(1, 2, 3, 4)], ShapeError,
     "out of range"),
    ("permute_repeat", 'type: "Permute" permute_param { order: 1 order: 1 }', [(1, 2, 3, 4)], LayerError,
     "repeats axis 1"),
    ("detection_no_classes", 'type: "DetectionOutput"', [(1, 8), (1, 4), (1, 2, 8)], LayerError,
     "num_classes is required"),
    ("detection_counts", 'type: "DetectionOutput" detection_output_param { num_classes: 3 }',
     [(1, 8), (1, 4), (1, 2, 8)], ShapeError, "confidences per image"),
    ("detection_eta",
     'type: "DetectionOutput" detection_output_param { num_classes: 2 nms_param { eta: 1.5 } }',
     [(1, 8), (1, 4), (1, 2, 8)], LayerError, "eta"),
    ("roi_pooled_zero", 'type: "ROIPooling" roi_pooling_param { pooled_w: 2 }', [(1, 1, 4, 4), (1, 5)],
     LayerError, "pooled_h and pooled_w must be > 0"),
    ("roi_four_values", 'type: "ROIPooling" roi_pooling_param { pooled_h: 2 pooled_w: 2 }',
     [(1, 1, 4, 4), (3, 4)], ShapeError, "5 values per region"),
    ("unpool_scale_one", 'type: "Upsample" upsample_param { scale: 1 }', [(1, 1, 2, 2), (1, 1, 2, 2)],
     LayerError, "scales must be > 1"),
    ("unpool_pad_out_scale3", 'type: "Upsample" upsample_param { scale: 3 pad_out_w: true }',
     [(1, 1, 2, 2), (1, 1, 2, 2)], LayerError, "pad_out_w needs scale_w == 2"),
    ("interp_positive_pad", 'type: "Interp" interp_param { zoom_factor: 2 pad_beg: 1 }', [(1, 1, 3, 3)],
     LayerError, "non-positive padding"),
    ("interp_no_size", 'type: "Interp"', [(1, 1, 3, 3)], LayerError, "give shrink_factor"),
    ("ceil_mode_contradiction", 'type: "Pooling" pooling_param { kernel_size: 2 ceil_mode: true '
     "round_mode: FLOOR }", [(1, 1, 4, 4)], LayerError, "contradicts round_mode"),
]


@pytest.mark.parametrize("text,shapes,exc,words", [c[1:] for c in ERROR_CASES],
                         ids=[c[0] for c in ERROR_CASES])
def test_errors_name_the_layer(text, shapes, exc, words):
    with pytest.raises(exc, match=words) as info:
        layer = build_layer(text, shapes, name="bad")
        run_layer(layer, *[torch.zeros(s) for s in shapes])
    assert 'layer "bad"' in str(info.value)


def test_runtime_errors_name_the_layer():
    roi = build_layer('type: "ROIPooling" roi_pooling_param { pooled_h: 1 pooled_w: 1 }',
                      [(1, 1, 4, 4), (1, 5)], name="roi")
    with pytest.raises(LayerError, match=r'ROIPooling layer "roi".*batch indices'):
        run_layer(roi, torch.zeros(1, 1, 4, 4), torch.tensor([[1.0, 0, 0, 1, 1]]))
    up = build_layer('type: "Upsample" upsample_param { scale: 2 }', [(1, 1, 2, 2), (1, 1, 2, 2)], name="up")
    with pytest.raises(LayerError, match=r'Upsample layer "up".*out of range'):
        run_layer(up, torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 16.0))


def test_fork_messages_parse_from_text():
    """SSD's label maps and AnnotatedDatum records read with the fork's schema."""
    from caffe_compat.proto.files import parse_text

    lm = parse_text('item { name: "none_of_the_above" label: 0 display_name: "background" }\n'
                    'item { name: "aeroplane" label: 1 display_name: "aeroplane" }', caffe_pb2.LabelMap())
    assert [i.display_name for i in lm.item] == ["background", "aeroplane"]
    datum = caffe_pb2.AnnotatedDatum(type=caffe_pb2.AnnotatedDatum.BBOX)
    group = datum.annotation_group.add(group_label=3)
    group.annotation.add(instance_id=0).bbox.xmin = 0.25
    back = caffe_pb2.AnnotatedDatum.FromString(datum.SerializeToString())
    assert back.annotation_group[0].annotation[0].bbox.xmin == 0.25
