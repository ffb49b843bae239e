"""Loss layers and Accuracy against real Caffe (every option that changes numbers).

Every case here is a net case (see ``_spec.py``) of kind ``loss_net``: the
module's ``generate`` runs it like a plain net case and also records

* ``total_loss``: what Caffe's ``Net::Forward`` returns (Σ loss_weight · Σ top),
  which pins the loss-weight semantics;
* ``file/<key>``: arrays that the prototxt reads from binaryproto files. The
  prototxt names them ``@<key>@``; the generator writes them with pycaffe's
  ``caffe.io.array_to_blobproto``, the test with our own ``BlobProto``.

Fixtures without files have meta kind ``net`` (replayed by
``test_golden_nets.py``); those with files have kind ``net_with_files``
(replayed by ``test_loss_layers.py``).
"""

import os
import shutil
import tempfile

import numpy as np

from ._spec import away_from, const, input_layer, labels, net_case, randn, uniform


def case(name, prototxt, files=None, **kw):
    c = net_case(name, prototxt, **kw)
    c["kind"] = "loss_net"
    c["files"] = dict(files or {})
    return c


def _fixed(seed):
    return np.random.RandomState(seed)


# ------------------------------------------------------------ shared data
def _pairs():
    """Siamese pairs at chosen distances (away from the margin kinks)."""
    rng = _fixed(7)
    a = rng.randn(8, 3).astype(np.float32)
    u = rng.randn(8, 3)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    dist = np.array([0.3, 0.7, 1.4, 0.5, 2.2, 0.0, 0.8, 1.2])
    b = (a + u * dist[:, None]).astype(np.float32)
    b[5] = a[5]  # a dissimilar pair at distance 0: Caffe's 1e-4 guard keeps the gradient finite
    # y: similar when int(y) != 0 (so -1 and 2 are similar, 0.5 is dissimilar).
    y = np.array([1, 0, 0, 0.5, 0, 0, -1, 2], np.float32)
    return a, b, y


PAIR_A, PAIR_B, PAIR_Y = _pairs()
H4 = _fixed(11).uniform(0.0, 2.0, size=(4, 4)).astype(np.float32)
H3 = np.array([[1.0, 0.5, 0.0], [0.2, 1.0, 0.3], [0.0, 0.1, 2.0]], np.float32)


def binary_targets(*shape, ignore=None, n_ignore=0):
    def make(rng):
        t = (rng.rand(*shape) > 0.5).astype(np.float32)
        if n_ignore:
            flat = t.reshape(-1)
            flat[rng.choice(flat.size, n_ignore, replace=False)] = ignore
        return t
    return make


def _swl(mode_text):
    return input_layer(("x", (4, 6, 2, 2)), ("label", (4, 2, 2))) + """
name: "swl" force_backward: true
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "label" top: "loss"
        loss_param { ignore_label: -1 %s } }
""" % mode_text


def _sce(param_text, shape=(2, 3, 2, 2), n_ignore=3):
    return input_layer(("x", shape), ("t", shape)) + """
name: "sce" force_backward: true
layer { name: "loss" type: "SigmoidCrossEntropyLoss" bottom: "x" bottom: "t" top: "loss" %s }
""" % param_text


# One seed per family, so that the normalisation cases share their data and
# their losses differ only by the normaliser (as in CAFFE_FACTS' measurement).
SWL_SEED, SCE_SEED = 4062, 3192
SWL_LABELS = labels(4, 2, 2, classes=6, ignore=-1, n_ignore=4)
SCE_IGNORE = binary_targets(2, 3, 2, 2, ignore=-1, n_ignore=3)

CASES = [
    # ------------------------------------------------------ SoftmaxWithLoss
    case("swl_valid_default", _swl(""), inputs={"label": SWL_LABELS}, seed=SWL_SEED,
         note="CAFFE_FACTS N=4,C=6,2x2 with 4 ignored: VALID divides by the 12 valid positions"),
    case("swl_batch_size", _swl("normalization: BATCH_SIZE"), inputs={"label": SWL_LABELS}, seed=SWL_SEED),
    case("swl_full", _swl("normalization: FULL"), inputs={"label": SWL_LABELS}, seed=SWL_SEED,
         note="FULL counts the ignored positions too (16)"),
    case("swl_none", _swl("normalization: NONE"), inputs={"label": SWL_LABELS}, seed=SWL_SEED),
    case("swl_legacy_normalize_false", _swl("normalize: false"), inputs={"label": SWL_LABELS}, seed=SWL_SEED,
         note="legacy normalize: false means BATCH_SIZE (N), not N*H*W"),
    case("swl_legacy_normalize_true", _swl("normalize: true"), inputs={"label": SWL_LABELS}, seed=SWL_SEED),
    case("swl_explicit_beats_legacy", _swl("normalization: FULL normalize: false"),
         inputs={"label": SWL_LABELS}, seed=SWL_SEED, note="an explicit normalization wins over normalize"),
    case("swl_all_ignored", _swl(""), inputs={"label": const(-np.ones((4, 2, 2)))},
         note="VALID normaliser is max(1, 0): loss 0, gradient 0"),
    case("swl_no_ignore_spatial",
         input_layer(("x", (2, 3, 2, 3)), ("label", (2, 1, 2, 3))) + """
name: "swl" force_backward: true
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "label" top: "loss" }
""", inputs={"label": labels(2, 1, 2, 3, classes=3)},
         note="(N, 1, H, W) labels; VALID without ignore_label divides by N*H*W"),
    case("swl_axis2",
         input_layer(("x", (2, 3, 4)), ("label", (2, 3))) + """
name: "swl" force_backward: true
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "label" top: "loss"
        softmax_param { axis: 2 } loss_param { normalization: BATCH_SIZE } }
""", inputs={"label": labels(2, 3, classes=4)},
         note="classes on the last axis; BATCH_SIZE = outer = 2*3"),
    case("swl_axis_negative",
         input_layer(("x", (2, 4, 3)), ("label", (2, 4))) + """
name: "swl" force_backward: true
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "label" top: "loss"
        softmax_param { axis: -1 } }
""", inputs={"label": labels(2, 4, classes=3)}),
    case("swl_flt_min_clamp",
         input_layer(("x", (4, 3)), ("label", (4,))) + """
name: "swl" force_backward: true
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "label" top: "loss" }
""", inputs={"x": const([[0, 0, -200], [50, 0, -150], [0, -80, 1], [0, -87.5, 0]]),
             "label": const([2, 2, 1, 1])},
         note="p underflows: loss uses -log(FLT_MIN) = 87.34, gradient stays p - 1"),
    # ----------------------------------------------- SigmoidCrossEntropyLoss
    case("sce_default_batch_size", _sce(""), inputs={"t": binary_targets(2, 3, 2, 2)},
         note="normalization defaults to BATCH_SIZE (N = 2) for this layer"),
    case("sce_soft_targets", _sce(""), inputs={"t": uniform(2, 3, 2, 2)}),
    case("sce_large_logits", _sce(""),
         inputs={"x": randn(2, 3, 2, 2, scale=40.0), "t": binary_targets(2, 3, 2, 2)},
         note="stable log-sum-exp form for |x| up to ~100"),
    case("sce_ignore_default", _sce("loss_param { ignore_label: -1 }"),
         inputs={"t": SCE_IGNORE}, seed=SCE_SEED,
         note="ignore_label with the default BATCH_SIZE normaliser"),
    case("sce_ignore_valid", _sce("loss_param { ignore_label: -1 normalization: VALID }"),
         inputs={"t": SCE_IGNORE}, seed=SCE_SEED),
    case("sce_ignore_full", _sce("loss_param { ignore_label: -1 normalization: FULL }"),
         inputs={"t": SCE_IGNORE}, seed=SCE_SEED),
    case("sce_ignore_none", _sce("loss_param { ignore_label: -1 normalization: NONE }"),
         inputs={"t": SCE_IGNORE}, seed=SCE_SEED),
    case("sce_legacy_normalize_true", _sce("loss_param { ignore_label: -1 normalize: true }"),
         inputs={"t": SCE_IGNORE}, seed=SCE_SEED, note="normalize: true means VALID"),
    case("sce_legacy_normalize_false", _sce("loss_param { normalize: false }"),
         inputs={"t": binary_targets(2, 3, 2, 2)}),
    case("sce_shapes_differ",
         input_layer(("x", (2, 6)), ("t", (2, 2, 3))) + """
name: "sce" force_backward: true
layer { name: "loss" type: "SigmoidCrossEntropyLoss" bottom: "x" bottom: "t" top: "loss" }
""", inputs={"t": binary_targets(2, 2, 3)}, note="only count and first dimension must agree"),
    # --------------------------------------------------------- EuclideanLoss
    case("euclidean_4d",
         input_layer(("a", (2, 3, 2, 2)), ("b", (2, 3, 2, 2))) + """
name: "euc" force_backward: true
layer { name: "loss" type: "EuclideanLoss" bottom: "a" bottom: "b" top: "loss" }
""", note="both bottoms get gradients, opposite signs"),
    case("euclidean_shapes_differ",
         input_layer(("a", (2, 6)), ("b", (2, 2, 3))) + """
name: "euc" force_backward: true
layer { name: "loss" type: "EuclideanLoss" bottom: "a" bottom: "b" top: "loss"
        loss_param { normalization: NONE } }
""", note="count(1) must agree, not shapes; loss_param is ignored"),
    case("euclidean_shared_bottom",
         input_layer(("a", (3, 2))) + """
name: "euc" force_backward: true
layer { name: "loss" type: "EuclideanLoss" bottom: "a" bottom: "a" top: "loss" }
""", note="one blob as both bottoms (a split feeds it twice)"),
    # ------------------------------------------------------------- HingeLoss
    case("hinge_l1",
         input_layer(("x", (4, 5)), ("label", (4,))) + """
name: "hinge" force_backward: true
layer { name: "loss" type: "HingeLoss" bottom: "x" bottom: "label" top: "loss" }
""", inputs={"x": away_from(4, 5, points=(-1.0, 1.0), margin=0.05), "label": labels(4, classes=5)}),
    case("hinge_l2",
         input_layer(("x", (4, 5)), ("label", (4,))) + """
name: "hinge" force_backward: true
layer { name: "loss" type: "HingeLoss" bottom: "x" bottom: "label" top: "loss"
        hinge_loss_param { norm: L2 } }
""", inputs={"x": away_from(4, 5, points=(-1.0, 1.0), margin=0.05), "label": labels(4, classes=5)}),
    case("hinge_4d_flattened",
         input_layer(("x", (3, 2, 2, 1)), ("label", (3, 1, 1, 1))) + """
name: "hinge" force_backward: true
layer { name: "loss" type: "HingeLoss" bottom: "x" bottom: "label" top: "loss"
        hinge_loss_param { norm: L1 } loss_param { normalization: NONE } }
""", inputs={"x": away_from(3, 2, 2, 1, points=(-1.0, 1.0), margin=0.05),
             "label": labels(3, 1, 1, 1, classes=4)},
         note="scores flattened per item (D = 4); loss_param ignored"),
    # ---------------------------------------------------------- InfogainLoss
    case("infogain_source",
         input_layer(("x", (4, 3)), ("label", (4,))) + """
name: "info" force_backward: true
layer { name: "loss" type: "InfogainLoss" bottom: "x" bottom: "label" top: "loss"
        infogain_loss_param { source: "@H3@" } }
""", files={"H3": H3}, inputs={"label": labels(4, classes=3)},
         note="H from a binaryproto; softmax applied inside; VALID normaliser"),
    case("infogain_prob_top_weighted",
         input_layer(("x", (4, 3)), ("label", (4,))) + """
name: "info" force_backward: true
layer { name: "loss" type: "InfogainLoss" bottom: "x" bottom: "label" top: "loss" top: "prob"
        loss_weight: 1 loss_weight: 0.5 infogain_loss_param { source: "@H3@" } }
""", files={"H3": H3}, inputs={"label": labels(4, classes=3)},
         note="prob top: weight 0.5 adds 0.5*sum(p) to the net loss, no gradient"),
    case("infogain_axis_ignore_full",
         input_layer(("x", (2, 3, 4)), ("label", (2, 3))) + """
name: "info" force_backward: true
layer { name: "loss" type: "InfogainLoss" bottom: "x" bottom: "label" top: "loss"
        infogain_loss_param { source: "@H4@" axis: 2 }
        loss_param { ignore_label: 1 normalization: FULL } }
""", files={"H4": H4}, inputs={"label": labels(2, 3, classes=4)}),
    case("infogain_ignore_valid_spatial",
         input_layer(("x", (2, 4, 2, 2)), ("label", (2, 2, 2))) + """
name: "info" force_backward: true
layer { name: "loss" type: "InfogainLoss" bottom: "x" bottom: "label" top: "loss"
        infogain_loss_param { source: "@H4@" } loss_param { ignore_label: 3 } }
""", files={"H4": H4}, inputs={"label": labels(2, 2, 2, classes=4)}),
    case("infogain_clamp",
         input_layer(("x", (3, 3)), ("label", (3,))) + """
name: "info" force_backward: true
layer { name: "loss" type: "InfogainLoss" bottom: "x" bottom: "label" top: "loss"
        infogain_loss_param { source: "@H3@" } loss_param { normalization: NONE } }
""", files={"H3": H3}, inputs={"x": const([[0, -100, 0], [-30, 0, -200], [5, 0, -60]]),
                               "label": const([0, 2, 1])},
         note="log(max(p, 1e-20)) in the loss, unclamped gradient"),
    case("infogain_h_bottom",
         input_layer(("data", (4, 3)), ("label", (4,)), ("H", (4, 4))) + """
name: "info"
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 4 } }
layer { name: "loss" type: "InfogainLoss" bottom: "ip" bottom: "label" bottom: "H" top: "loss" }
""", inputs={"label": labels(4, classes=4), "H": uniform(4, 4, high=2.0)},
         note="H as a third bottom; no force_backward (Caffe aborts sending H a gradient)"),
    case("infogain_h_bottom_flat",
         input_layer(("x", (2, 3)), ("label", (2,)), ("H", (9,))) + """
name: "info"
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip" inner_product_param { num_output: 3 } }
layer { name: "loss" type: "InfogainLoss" bottom: "ip" bottom: "label" bottom: "H" top: "loss"
        loss_param { normalization: NONE } }
""", inputs={"label": labels(2, classes=3), "H": uniform(9, high=2.0)},
         note="only H's count (C*C) is checked"),
    # ----------------------------------------------- MultinomialLogisticLoss
    case("mll_after_softmax",
         input_layer(("x", (4, 5)), ("label", (4,))) + """
name: "mll" force_backward: true
layer { name: "prob" type: "Softmax" bottom: "x" top: "prob" }
layer { name: "loss" type: "MultinomialLogisticLoss" bottom: "prob" bottom: "label" top: "loss" }
""", inputs={"label": labels(4, classes=5)}),
    case("mll_direct_4d_label",
         input_layer(("p", (3, 4)), ("label", (3, 1, 1, 1))) + """
name: "mll" force_backward: true
layer { name: "loss" type: "MultinomialLogisticLoss" bottom: "p" bottom: "label" top: "loss"
        loss_param { normalization: NONE } }
""", inputs={"p": uniform(3, 4, low=0.05, high=1.0), "label": labels(3, 1, 1, 1, classes=4)},
         note="label (N,1,1,1); loss_param ignored"),
    case("mll_clamp",
         input_layer(("p", (2, 3)), ("label", (2,))) + """
name: "mll" force_backward: true
layer { name: "loss" type: "MultinomialLogisticLoss" bottom: "p" bottom: "label" top: "loss" }
""", inputs={"p": const([[0.0, 0.5, 0.5], [0.2, 0.8, 1e-30]]), "label": const([0, 2])},
         note="max(p, 1e-20) bounds both the loss and the gradient (-1e20/N)"),
    # -------------------------------------------------------- ContrastiveLoss
    case("contrastive_default",
         input_layer(("a", (8, 3)), ("b", (8, 3)), ("y", (8,))) + """
name: "contrastive" force_backward: true
layer { name: "loss" type: "ContrastiveLoss" bottom: "a" bottom: "b" bottom: "y" top: "loss" }
""", inputs={"a": const(PAIR_A), "b": const(PAIR_B), "y": const(PAIR_Y)},
         note="similar iff int(y) != 0; a dissimilar pair at d = 0 keeps a finite gradient"),
    case("contrastive_margin2_4d",
         input_layer(("a", (8, 3, 1, 1)), ("b", (8, 3, 1, 1)), ("y", (8, 1, 1, 1))) + """
name: "contrastive" force_backward: true
layer { name: "loss" type: "ContrastiveLoss" bottom: "a" bottom: "b" bottom: "y" top: "loss"
        contrastive_loss_param { margin: 2.0 } }
""", inputs={"a": const(PAIR_A.reshape(8, 3, 1, 1)), "b": const(PAIR_B.reshape(8, 3, 1, 1)),
             "y": const(PAIR_Y.reshape(8, 1, 1, 1))}),
    case("contrastive_legacy",
         input_layer(("a", (8, 3)), ("b", (8, 3)), ("y", (8,))) + """
name: "contrastive" force_backward: true
layer { name: "loss" type: "ContrastiveLoss" bottom: "a" bottom: "b" bottom: "y" top: "loss"
        contrastive_loss_param { margin: 2.0 legacy_version: true } }
""", inputs={"a": const(PAIR_A), "b": const(PAIR_B), "y": const(PAIR_Y)},
         note="legacy: max(margin - d^2, 0)"),
    # --------------------------------------------------------------- Accuracy
    case("accuracy_top1",
         input_layer(("x", (6, 5)), ("label", (6,))) + """
name: "acc"
layer { name: "acc" type: "Accuracy" bottom: "x" bottom: "label" top: "acc" }
""", inputs={"label": labels(6, classes=5)}, grad=False),
    case("accuracy_top3_per_class",
         input_layer(("x", (8, 5)), ("label", (8,))) + """
name: "acc"
layer { name: "acc" type: "Accuracy" bottom: "x" bottom: "label" top: "acc" top: "per_class"
        accuracy_param { top_k: 3 } }
""", inputs={"label": labels(8, classes=5)}, grad=False),
    case("accuracy_ties",
         input_layer(("x", (4, 3)), ("label", (4,))) + """
name: "acc"
layer { name: "acc1" type: "Accuracy" bottom: "x" bottom: "label" top: "acc1" top: "per_class1" }
layer { name: "acc2" type: "Accuracy" bottom: "x" bottom: "label" top: "acc2"
        accuracy_param { top_k: 2 } }
layer { name: "acc3" type: "Accuracy" bottom: "x" bottom: "label" top: "acc3"
        accuracy_param { top_k: 3 } }
""", inputs={"x": const([[1, 1, 0], [0, 2, 2], [3, 3, 3], [0, 1, 2]]),
             "label": const([0, 2, 1, 2])}, grad=False,
         note="a tie with the true class counts against it"),
    case("accuracy_ignore_per_class",
         input_layer(("x", (8, 4)), ("label", (8,))) + """
name: "acc"
layer { name: "acc" type: "Accuracy" bottom: "x" bottom: "label" top: "acc" top: "per_class"
        accuracy_param { ignore_label: 1 } }
""", inputs={"x": const([[0, 5, 1, 2], [3, 1, 2, 0], [1, 4, 0, 0], [0, 1, 3, 2], [0, 1, 2, 6],
                         [1, 2, 0, 0], [0, 9, 0, 0], [1, 0, 2, 0]]),
             "label": const([1, 0, 1, 2, 2, 0, 1, 2])}, grad=False,
         note="ignored positions count nowhere; class 1 (all ignored) and 3 (absent) give 0"),
    case("accuracy_spatial",
         input_layer(("x", (2, 4, 2, 3)), ("label", (2, 1, 2, 3))) + """
name: "acc"
layer { name: "acc" type: "Accuracy" bottom: "x" bottom: "label" top: "acc" top: "per_class" }
""", inputs={"label": labels(2, 1, 2, 3, classes=4)}, grad=False),
    case("accuracy_axis",
         input_layer(("x", (2, 3, 4)), ("label", (2, 3))) + """
name: "acc"
layer { name: "acc2" type: "Accuracy" bottom: "x" bottom: "label" top: "acc2"
        accuracy_param { axis: 2 top_k: 2 } }
layer { name: "accm1" type: "Accuracy" bottom: "x" bottom: "label" top: "accm1"
        accuracy_param { axis: -1 } }
""", inputs={"label": labels(2, 3, classes=4)}, grad=False),
    case("accuracy_all_ignored",
         input_layer(("x", (3, 4)), ("label", (3,))) + """
name: "acc"
layer { name: "acc" type: "Accuracy" bottom: "x" bottom: "label" top: "acc" top: "per_class"
        accuracy_param { ignore_label: 2 } }
""", inputs={"label": const([2, 2, 2])}, grad=False, note="no counted position gives 0"),
    # ---------------------------------------------------- loss_weight semantics
    case("lw_explicit_weight",
         input_layer(("data", (4, 3)), ("label", (4,))) + """
name: "lw"
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 5 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss"
        loss_weight: 2.5 }
""", inputs={"label": labels(4, classes=5)}, note="gradients scale with the loss weight"),
    case("lw_two_losses_summed",
         input_layer(("data", (4, 3)), ("target", (4, 5)), ("t2", (4, 5))) + """
name: "lw" force_backward: true
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 5 } }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" }
layer { name: "euc" type: "EuclideanLoss" bottom: "ip" bottom: "target" top: "euc"
        loss_weight: 0.3 }
layer { name: "sce" type: "SigmoidCrossEntropyLoss" bottom: "ip" bottom: "t2" top: "sce" }
""", inputs={"data": away_from(4, 3), "t2": binary_targets(4, 5)},
         note="two loss layers on an in-place ReLU blob: the net loss and gradients add up"),
    case("lw_non_loss_top",
         input_layer(("data", (4, 3)), ("label", (4,))) + """
name: "lw"
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 5 }
        loss_weight: 0.5 }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
""", inputs={"label": labels(4, classes=5)},
         note="a loss weight on InnerProduct's top: its sum joins the loss, and the blob also "
              "feeds a loss layer (Caffe puts the weight on the split)"),
    case("lw_non_loss_only",
         input_layer(("data", (3, 4))) + """
name: "lw"
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 } }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "r" loss_weight: 1.5 }
""", note="a net whose only loss is a ReLU top with loss_weight"),
    case("lw_zero_weight",
         input_layer(("data", (4, 3)), ("label", (4,))) + """
name: "lw"
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 5 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss"
        loss_weight: 0 }
""", inputs={"label": labels(4, classes=5)}, skip=("loss",),
         note="loss_weight 0: the top is an output, nothing is back-propagated (skip: the "
              "generator cannot write a top diff into a 0-d output)"),
    case("lw_loss_and_accuracy",
         input_layer(("data", (6, 3)), ("label", (6,))) + """
name: "lw"
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 4 } }
layer { name: "loss" type: "HingeLoss" bottom: "ip" bottom: "label" top: "loss" loss_weight: 0.7 }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" }
""", inputs={"label": labels(6, classes=4)}, param_scale=0.3, skip=("acc",),
         note="Accuracy beside a weighted loss gets no backward (skip: the generator cannot "
              "write a top diff into a 0-d output)"),
]


# ----------------------------------------------------------------- generator
def _total_loss(case, arrays, caffe):
    """Caffe's Net::Forward loss for the case's parameters and inputs."""
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(case["prototxt"])
        path = f.name
    try:
        net = caffe.Net(path, caffe.TRAIN if case["phase"] == "TRAIN" else caffe.TEST)
    finally:
        os.unlink(path)
    for lname, blobs in net.params.items():
        for i, blob in enumerate(blobs):
            blob.data[...] = arrays["param/%s/%d" % (lname, i)]
    for name in net.inputs:
        value = arrays["input/%s" % name]
        if net.blobs[name].data.shape != value.shape:
            net.blobs[name].reshape(*value.shape)
    net.reshape()
    for name in net.inputs:
        net.blobs[name].data[...] = arrays["input/%s" % name]
    return np.array(net._forward(0, len(net.layers) - 1), dtype=np.float64)


def generate(case, caffe, rng):
    """Run a ``loss_net`` case (writing its binaryproto files) and add its total loss."""
    from golden.generate import run_net_case

    tmp = tempfile.mkdtemp()
    try:
        proto = case["prototxt"]
        for key, arr in case["files"].items():
            path = os.path.join(tmp, key + ".binaryproto")
            with open(path, "wb") as f:
                f.write(caffe.io.array_to_blobproto(arr).SerializeToString())
            proto = proto.replace("@%s@" % key, path)
        run = dict(case, prototxt=proto)
        meta, arrays = run_net_case(run, caffe)
        arrays["total_loss"] = _total_loss(run, arrays, caffe)
    finally:
        shutil.rmtree(tmp)
    meta["prototxt"] = case["prototxt"]
    meta["kind"] = "net_with_files" if case["files"] else "net"
    for key, arr in case["files"].items():
        arrays["file/" + key] = np.asarray(arr, np.float32)
    return meta, arrays
