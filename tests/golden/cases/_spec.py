"""Helpers for writing golden cases (Python 3.9, numpy only).

A *net case* is a dict:

``name``      file name of the fixture (unique within its group)
``prototxt``  the whole net; Input layers name the inputs
``phase``     "TRAIN" or "TEST" (default "TRAIN")
``inputs``    {blob: callable(rng) -> array}; Input tops not listed are
              filled with standard normal values
``params``    {layer: [callable(rng, shape) -> array or None, ...]}; blobs
              not listed get normal values * ``param_scale``
``grad``      run backward (default True; needs ``force_backward: true`` to
              get input diffs)
``tol``       comparison tolerance relative to max(1, max|golden|)
``skip``      blob names whose values are random in Caffe (not compared)
``seed``      RandomState seed (default: derived from the name)
``note``      what the case pins down
"""

import zlib

import numpy as np


def net_case(name, prototxt, phase="TRAIN", inputs=None, params=None, grad=True, tol=1e-4,
             skip=(), seed=None, param_scale=0.5, note=""):
    return {
        "kind": "net",
        "name": name,
        "prototxt": prototxt.strip() + "\n",
        "phase": phase,
        "inputs": inputs or {},
        "params": params or {},
        "grad": grad,
        "tol": tol,
        "skip": list(skip),
        "seed": zlib.crc32(name.encode()) if seed is None else seed,
        "param_scale": param_scale,
        "note": note,
    }


def input_layer(*blobs):
    """An Input layer: ``input_layer(("data", (2, 3, 4, 4)), ("label", (2,)))``."""
    tops = " ".join('top: "%s"' % b for b, _ in blobs)
    shapes = " ".join("shape { %s }" % " ".join("dim: %d" % d for d in s) for _, s in blobs)
    return 'layer { name: "input" type: "Input" %s input_param { %s } }' % (tops, shapes)


def randn(*shape, scale=1.0):
    return lambda rng: (rng.randn(*shape) * scale).astype(np.float32)


def uniform(*shape, low=0.0, high=1.0):
    return lambda rng: rng.uniform(low, high, size=shape).astype(np.float32)


def labels(*shape, classes, ignore=None, n_ignore=0):
    """Integer class labels as floats; ``n_ignore`` positions set to ``ignore``."""
    def make(rng):
        lab = rng.randint(0, classes, size=shape).astype(np.float32)
        if n_ignore:
            flat = lab.reshape(-1)
            flat[rng.choice(flat.size, n_ignore, replace=False)] = ignore
        return lab
    return make


def const(values):
    arr = np.asarray(values, dtype=np.float32)
    return lambda rng: arr.copy()


def away_from(*shape, points=(0.0,), margin=0.05, scale=1.0):
    """Normal values kept ``margin`` away from kinks (ReLU at 0, ...)."""
    def make(rng):
        x = rng.randn(*shape) * scale
        for p in points:
            close = np.abs(x - p) < margin
            x[close] = p + np.sign(x[close] - p + 1e-12) * margin * (1 + rng.rand(close.sum()))
        return x.astype(np.float32)
    return make
