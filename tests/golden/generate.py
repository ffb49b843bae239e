"""Write golden fixtures by running cases through a real Caffe.

Runs under the Python that has pycaffe (see ../shared/CAFFE_FACTS.md):

    GLOG_minloglevel=2 /path/to/caffe-venv/bin/python tests/golden/generate.py [group ...]

Each case module ``tests/golden/cases/<group>.py`` holds ``CASES`` (a list of
case dicts, see ``cases/_spec.py``). Net cases are run here; a module may
define ``generate(case, caffe, rng) -> (meta, arrays)`` for other kinds.
Fixtures go to ``tests/golden/data/<group>/<name>.npz`` with the keys
described in ``tests/golden/README.md``.

Python 3.9, numpy and caffe only: this file never imports torch or
caffe_compat.
"""

import argparse
import importlib
import json
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # tests/, so that golden.cases imports


def _oracle(caffe):
    return "kendryte-caffe " + getattr(caffe, "__version__", "?")


def run_net_case(case, caffe):
    rng = np.random.RandomState(case["seed"] % (2 ** 32))
    phase = caffe.TRAIN if case["phase"] == "TRAIN" else caffe.TEST
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(case["prototxt"])
        path = f.name
    try:
        net = caffe.Net(path, phase)
    finally:
        os.unlink(path)
    arrays = {}
    for lname, blobs in net.params.items():
        specs = case["params"].get(lname, [])
        for i, blob in enumerate(blobs):
            make = specs[i] if i < len(specs) else None
            if make is None:
                value = rng.randn(*blob.data.shape) * case["param_scale"]
            else:
                value = make(rng, blob.data.shape)
            blob.data[...] = value
            arrays["param/%s/%d" % (lname, i)] = blob.data.copy()
    reshaped = False
    for name in net.inputs:
        make = case["inputs"].get(name)
        shape = net.blobs[name].data.shape
        value = make(rng) if make is not None else rng.randn(*shape).astype(np.float32)
        value = np.asarray(value, dtype=np.float32)
        if value.shape != shape:
            net.blobs[name].reshape(*value.shape)
            reshaped = True
        net.blobs[name].data[...] = value
        arrays["input/%s" % name] = value.copy()
    if reshaped:
        net.reshape()
    net.forward()
    split_tops = set()
    for lname, layer in zip(net._layer_names, net.layers):
        if layer.type == "Split":
            split_tops.update(net.top_names[lname])
    for name, blob in net.blobs.items():
        if name in split_tops or name == "(automatic)":
            continue
        arrays["blob/%s" % name] = blob.data.copy()
    if case["grad"]:
        weights = net.blob_loss_weights
        for name in net.outputs:
            if weights[name] == 0 and name not in case["skip"]:
                diff = np.asarray(rng.randn(*net.blobs[name].diff.shape), dtype=np.float32)
                net.blobs[name].diff[...] = diff
                arrays["topdiff/%s" % name] = diff
        net.backward()
        for name in net.inputs:
            arrays["diff/%s" % name] = net.blobs[name].diff.copy()
        for lname, blobs in net.params.items():
            for i, blob in enumerate(blobs):
                arrays["pdiff/%s/%d" % (lname, i)] = blob.diff.copy()
    if phase == caffe.TRAIN:
        for lname, blobs in net.params.items():
            for i, blob in enumerate(blobs):
                arrays["param_after/%s/%d" % (lname, i)] = blob.data.copy()
    meta = {
        "kind": "net", "name": case["name"], "phase": case["phase"], "prototxt": case["prototxt"],
        "grad": case["grad"], "tol": case["tol"], "skip": case["skip"], "note": case["note"],
        "oracle": _oracle(caffe),
    }
    return meta, arrays


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("groups", nargs="*", help="case modules to run (default: all)")
    ap.add_argument("--case", action="append", default=[], help="only cases with this name")
    args = ap.parse_args(argv)
    import caffe  # noqa: E402  (the real one)

    caffe.set_mode_cpu()
    case_dir = os.path.join(HERE, "cases")
    groups = args.groups or sorted(
        f[:-3] for f in os.listdir(case_dir) if f.endswith(".py") and not f.startswith("_")
    )
    total = 0
    for group in groups:
        module = importlib.import_module("golden.cases.%s" % group)
        out_dir = os.path.join(HERE, "data", group)
        os.makedirs(out_dir, exist_ok=True)
        for case in module.CASES:
            if args.case and case["name"] not in args.case:
                continue
            if case.get("kind", "net") == "net":
                meta, arrays = run_net_case(case, caffe)
            else:
                rng = np.random.RandomState(case.get("seed", 0) % (2 ** 32))
                meta, arrays = module.generate(case, caffe, rng)
                meta.setdefault("oracle", _oracle(caffe))
            arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
            path = os.path.join(out_dir, case["name"] + ".npz")
            np.savez_compressed(path, **arrays)
            total += 1
            print("wrote", os.path.relpath(path, HERE))
    print("%d fixture(s)" % total)


if __name__ == "__main__":
    main()
