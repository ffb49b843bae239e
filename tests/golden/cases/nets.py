"""Whole reference nets, derived from the prototxts in ``examples/nets/``.

Each example (LeNet, CIFAR10-quick, a ResNet block net, an inception block
net, CaffeNet) is turned into a fixture net by :func:`reduce_net`: its Data
layers become one Input layer, and ``num_output`` values shrink so that the
committed fixtures stay small. Everything else (pooling rounding, LRN, groups,
in-place BatchNorm/Scale/ReLU, Split insertion, phase rules) is the example's.

* ``net`` cases: forward values, input diffs and parameter diffs (TEST nets
  with an Accuracy layer cannot use ``force_backward``: Caffe's Accuracy
  aborts in backward, so they pin parameter diffs only).
* ``shapes`` cases: the full-size nets (Data layers replaced by Input layers
  of the real input size, batch 2): every blob, parameter and layer name, as
  Caffe builds them. See :func:`generate`.

BatchNorm in TRAIN phase is not pinned here (the pip Caffe differs from
upstream there; see ``data/bvlc/``); the ResNet TRAIN case freezes BatchNorm
with ``use_global_stats: true``, as fine-tuned ResNets do.
"""

import os
import re

import numpy as np

from ._spec import labels, net_case

EXAMPLES = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                         "..", "..", "..", "examples", "nets"))


# ------------------------------------------------------------------ prototxt text surgery
def split_layers(text):
    """(the text outside ``layer { }`` blocks, [each top-level layer block's text])."""
    blocks, outside = [], []
    depth, i, start, last = 0, 0, None, 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if ch == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if ch == "{":
            if depth == 0:
                m = re.search(r"(\w+)\s*$", text[last:i])
                if m and m.group(1) == "layer":
                    start = last + m.start(1)
                    outside.append(text[last:start])
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0 and start is not None:
                blocks.append(text[start:i + 1])
                start, last = None, i + 1
        i += 1
    outside.append(text[last:])
    return "".join(outside), blocks


def layer_field(block, field):
    m = re.search(r'\b%s:\s*"([^"]*)"' % field, block)
    return m.group(1) if m else None


def reduce_net(filename, data_shape, label_shape, num_output=None, force_backward=False,
               frozen_bn=False):
    """The example ``filename`` with an Input layer instead of its Data layers."""
    with open(os.path.join(EXAMPLES, filename)) as f:
        text = f.read()
    header, blocks = split_layers(text)
    header = "\n".join(line for line in header.splitlines() if line.strip() and not line.startswith("#"))
    dims = lambda s: " ".join("dim: %d" % d for d in s)  # noqa: E731
    out = [header]
    if force_backward:
        out.append("force_backward: true")
    out.append('layer { name: "input" type: "Input" top: "data" top: "label" '
               "input_param { shape { %s } shape { %s } } }" % (dims(data_shape), dims(label_shape)))
    for block in blocks:
        name, type_ = layer_field(block, "name"), layer_field(block, "type")
        if type_ == "Data":
            continue
        if num_output and name in num_output:
            block, count = re.subn(r"num_output:\s*\d+", "num_output: %d" % num_output[name], block, 1)
            assert count == 1, name
        if frozen_bn and type_ == "BatchNorm" and "use_global_stats" not in block:
            block = block[:-1].rstrip() + "\n  batch_norm_param { use_global_stats: true }\n}"
        out.append(block)
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ parameter values
def _he(rng, shape):
    fan_in = int(np.prod(shape[1:]))
    return rng.randn(*shape) * np.sqrt(2.0 / fan_in)


def _small(rng, shape):
    return rng.randn(*shape) * 0.1


_BN_FACTOR = 0.5  # the stored scale factor s: mean = blob0 / s, var = blob1 / s


def _param_makers(prototxt):
    """Well-scaled parameter values per layer type (signals neither explode nor vanish)."""
    makers = {}
    for block in split_layers(prototxt)[1]:
        name, type_ = layer_field(block, "name"), layer_field(block, "type")
        if type_ in ("Convolution", "Deconvolution", "InnerProduct"):
            makers[name] = [_he, _small]
        elif type_ == "BatchNorm":
            makers[name] = [lambda rng, s: rng.randn(*s) * 0.2 * _BN_FACTOR,
                            lambda rng, s: rng.uniform(0.5, 1.5, size=s) * _BN_FACTOR,
                            lambda rng, s: np.full(s, _BN_FACTOR)]
        elif type_ == "Scale":
            makers[name] = [lambda rng, s: 1 + rng.randn(*s) * 0.2, _small]
    return makers


def _pixels(shape):
    """Mean-subtracted, quantized pixel-like values (they also compress well in the fixtures)."""
    return lambda rng: (rng.randint(-16, 16, size=shape) / 8.0).astype(np.float32)


def reference_case(name, filename, phase, data_shape, num_output, classes, force_backward,
                   frozen_bn=False, tol=1e-4, note=""):
    text = reduce_net(filename, data_shape, (data_shape[0],), num_output, force_backward, frozen_bn)
    inputs = {"data": _pixels(data_shape), "label": labels(data_shape[0], classes=classes)}
    case = net_case(name, text, phase=phase, inputs=inputs,
                    params=_param_makers(text), tol=tol, note=note)
    case["source"] = filename
    return case


def shapes_case(name, filename, phase, data_shape, note=""):
    text = reduce_net(filename, data_shape, (data_shape[0],))
    return {"kind": "shapes", "name": name, "prototxt": text, "phase": phase, "source": filename,
            "seed": 0, "note": note}


# ------------------------------------------------------------------ the cases
LENET = {"conv1": 4, "conv2": 6, "ip1": 16, "ip2": 5}
CIFAR = {"conv1": 4, "conv2": 4, "conv3": 6, "ip1": 8, "ip2": 5}
RESNET = {"conv1": 4, "res2a_branch2a": 4, "res2a_branch2b": 4, "res3a_branch1": 6,
          "res3a_branch2a": 6, "res3a_branch2b": 6, "fc10": 5}
INCEPTION = {"conv1/7x7_s2": 8, "inception_3a/1x1": 4, "inception_3a/3x3_reduce": 3,
             "inception_3a/3x3": 4, "inception_3a/5x5_reduce": 2, "inception_3a/5x5": 3,
             "inception_3a/pool_proj": 3, "loss3/classifier": 5}
CAFFENET = {"conv1": 8, "conv2": 8, "conv3": 12, "conv4": 12, "conv5": 8, "fc6": 16, "fc7": 16, "fc8": 5}

CASES = [
    reference_case("lenet_train", "lenet_train_test.prototxt", "TRAIN", (2, 1, 20, 20), LENET, 5, True,
                   note="20x20 inputs: conv 16, pool 8, conv 4, pool 2"),
    reference_case("lenet_test", "lenet_train_test.prototxt", "TEST", (3, 1, 20, 20), LENET, 5, False,
                   note="TEST adds Accuracy (so no force_backward)"),
    reference_case("cifar10_quick_train", "cifar10_quick_train_test.prototxt", "TRAIN", (2, 3, 15, 15),
                   CIFAR, 5, True, note="15x15: CEIL pooling 15 -> 7 -> 3 -> 1 with partial windows"),
    reference_case("cifar10_quick_test", "cifar10_quick_train_test.prototxt", "TEST", (2, 3, 15, 15),
                   CIFAR, 5, False),
    reference_case("resnet_block_test", "resnet_block_train_test.prototxt", "TEST", (2, 3, 8, 8), RESNET,
                   5, False, note="BatchNorm with global statistics, in-place BN/Scale/ReLU, Eltwise "
                                  "SUM shortcuts (one through a Split of an in-place blob)"),
    reference_case("resnet_block_train_frozen_bn", "resnet_block_train_test.prototxt", "TRAIN",
                   (2, 3, 8, 8), RESNET, 5, True, frozen_bn=True,
                   note="TRAIN phase with use_global_stats: true (frozen BatchNorm)"),
    reference_case("inception_block_test", "inception_block_train_test.prototxt", "TEST", (2, 3, 12, 12),
                   INCEPTION, 5, False,
                   note="7x7/2 stem, CEIL max pool with a partial window, LRN, 4-branch Concat, "
                        "global AVE pool, Dropout (identity at TEST)"),
    reference_case("caffenet_test", "caffenet_train_val.prototxt", "TEST", (1, 3, 59, 59), CAFFENET, 5,
                   False, note="59x59: conv1 13, pool1 6, conv2 (group 2) 6, pool2 3 (partial window), "
                               "conv3-5 3, pool5 1; LRN; Dropout identity at TEST"),
]

FULL = [("lenet", "lenet_train_test.prototxt", (2, 1, 28, 28)),
        ("cifar10_quick", "cifar10_quick_train_test.prototxt", (2, 3, 32, 32)),
        ("resnet_block", "resnet_block_train_test.prototxt", (2, 3, 32, 32)),
        ("inception_block", "inception_block_train_test.prototxt", (2, 3, 32, 32)),
        ("caffenet", "caffenet_train_val.prototxt", (2, 3, 227, 227))]

CASES += [shapes_case("%s_%s_shapes" % (n, ph.lower()), f, ph, s)
          for n, f, s in FULL for ph in ("TRAIN", "TEST")]


def generate(case, caffe, rng):
    """``shapes`` cases: the layers, blobs and parameter shapes of a full-size net."""
    import tempfile

    assert case["kind"] == "shapes"
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(case["prototxt"])
        path = f.name
    try:
        net = caffe.Net(path, caffe.TRAIN if case["phase"] == "TRAIN" else caffe.TEST)
    finally:
        os.unlink(path)
    arrays = {}
    for name, blob in net.blobs.items():
        arrays["blob_shape/" + name] = np.array(blob.data.shape, dtype=np.int64)
    for lname, blobs in net.params.items():
        for i, blob in enumerate(blobs):
            arrays["param_shape/%s/%d" % (lname, i)] = np.array(blob.data.shape, dtype=np.int64)
    meta = {
        "kind": "shapes", "name": case["name"], "phase": case["phase"], "prototxt": case["prototxt"],
        "source": case["source"], "note": case["note"],
        "layers": list(net._layer_names), "types": [layer.type for layer in net.layers],
        "blobs": list(net.blobs.keys()), "inputs": list(net.inputs), "outputs": list(net.outputs),
        "loss_weights": {k: float(v) for k, v in net.blob_loss_weights.items() if v},
    }
    return meta, arrays
