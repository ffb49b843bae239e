"""The reference side of ``caffe-compat verify``: run a net in a real pycaffe.

Runs under the interpreter given to ``verify --caffe-python`` (any Python
with a working ``import caffe``, 2.7-compatible syntax not required but
3.6+ and numpy only: it never imports caffe_compat or torch):

    python _verify_reference.py job.json

``job.json`` names the model, weights, phase, the input arrays (.npy), the
diffs to set on outputs before backward, and where to write the results: an
``.npz`` with ``blob/<name>`` (every blob after forward), and with backward
``diff/<name>`` and ``pdiff/<layer>/<i>``, plus ``meta`` (JSON: blob order,
outputs, loss weights).
"""

import json
import os
import sys


def main(argv):
    with open(argv[0]) as f:
        job = json.load(f)
    os.environ.setdefault("GLOG_minloglevel", "2")
    import numpy as np

    import caffe  # the real one

    caffe.set_mode_cpu()
    phase = caffe.TRAIN if job["phase"] == "TRAIN" else caffe.TEST
    net = caffe.Net(job["model"], phase) if not job.get("weights") else \
        caffe.Net(job["model"], job["weights"], phase)
    reshaped = False
    for name, path in job["inputs"].items():
        value = np.load(path)
        if net.blobs[name].data.shape != value.shape:
            net.blobs[name].reshape(*value.shape)
            reshaped = True
        net.blobs[name].data[...] = value
    if reshaped:
        net.reshape()
    net.forward()
    arrays = {}
    for name, blob in net.blobs.items():
        arrays["blob/" + name] = blob.data.copy()
    if job.get("backward"):
        for name, path in job.get("topdiffs", {}).items():
            net.blobs[name].diff[...] = np.load(path)
        net.backward()
        for name, blob in net.blobs.items():
            arrays["diff/" + name] = blob.diff.copy()
        for lname, blobs in net.params.items():
            for i, blob in enumerate(blobs):
                arrays["pdiff/%s/%d" % (lname, i)] = blob.diff.copy()
    meta = {"blobs": list(net.blobs.keys()), "outputs": list(net.outputs),
            "loss_weights": {k: float(v) for k, v in net.blob_loss_weights.items()},
            "caffe": getattr(caffe, "__version__", "?")}
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(job["out"], **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
