"""The reference nets of ``examples/nets/`` against real Caffe.

``tests/test_golden_nets.py`` replays the reduced nets (values, input and
parameter diffs). Here:

* the full-size nets build exactly as Caffe builds them: layer names and
  types (Split layers included), blob names and shapes, parameter shapes,
  inputs, outputs and loss weights (``shapes`` fixtures), and run a forward
  and backward pass;
* the example files still produce the nets the fixtures were made from
  (regenerate with ``make golden GROUPS=nets`` after editing an example);
* each example parses and keeps the layers Caffe keeps in each phase.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

import caffe_compat as caffe
from caffe_compat.netparam import filter_net
from caffe_compat.proto import caffe_pb2
from caffe_compat.proto.files import read_text
from golden.cases import nets as cases
from golden_harness import fixtures, load

SHAPES = fixtures("shapes", groups=("nets",))
REDUCED = fixtures("net", groups=("nets",))
EXAMPLES = sorted({c["source"] for c in cases.CASES})


@functools.lru_cache(maxsize=None)
def _fixture(path):
    return load(path)


def _phase(name: str) -> int:
    return caffe.TRAIN if name == "TRAIN" else caffe.TEST


def _ids(paths):
    return [p.stem for p in paths]


@pytest.mark.parametrize("path", SHAPES, ids=_ids(SHAPES))
def test_full_size_net_builds_like_caffe(path):
    fx = _fixture(path)
    net = caffe.Net(fx.meta["prototxt"], _phase(fx.meta["phase"]))
    assert list(net._layer_names) == fx.meta["layers"]
    assert [layer.type for layer in net.layers] == fx.meta["types"]
    assert list(net.blobs) == fx.meta["blobs"]
    assert net.inputs == fx.meta["inputs"] and net.outputs == fx.meta["outputs"]
    for name in fx.meta["blobs"]:
        assert net.blobs[name].data.shape == tuple(fx.arrays[f"blob_shape/{name}"]), name
    keys = fx.keys("param_shape")
    assert sorted(f"{layer}/{i}" for layer, blobs in net.params.items() for i in range(len(blobs))) \
        == sorted(k.split("/", 1)[1] for k in keys)
    for key in keys:
        layer, i = key.split("/", 1)[1].rsplit("/", 1)  # layer names may hold "/" (GoogLeNet)
        assert net.params[layer][int(i)].data.shape == tuple(fx.arrays[key]), key
    weights = {k: v for k, v in net.blob_loss_weights.items() if v}
    assert weights == fx.meta["loss_weights"]


_SLOW = pytest.mark.slow  # full-size CaffeNet: ~7 s for a 227x227 forward + backward on 2 CPU cores
RUNS = [pytest.param(p, marks=_SLOW) if p.stem.startswith("caffenet") else p for p in SHAPES]


@pytest.mark.parametrize("path", RUNS, ids=_ids(SHAPES))
def test_full_size_net_runs_forward_and_backward(path):
    fx = _fixture(path)
    net = caffe.Net(fx.meta["prototxt"], _phase(fx.meta["phase"]))
    rng = np.random.RandomState(0)
    net.blobs["data"].data[...] = rng.randn(*net.blobs["data"].data.shape)
    scores = [layer for layer, t in zip(fx.meta["layers"], fx.meta["types"]) if t == "InnerProduct"][-1]
    classes = net.params[scores][0].data.shape[0]
    net.blobs["label"].data[...] = rng.randint(0, classes, size=net.blobs["label"].shape)
    out = net.forward()
    loss = [name for name in out if fx.meta["loss_weights"].get(name)]
    assert loss and all(math.isfinite(float(out[name])) for name in loss)
    for name, value in out.items():
        if name not in loss:  # Accuracy
            assert 0.0 <= float(value) <= 1.0
    net.backward()
    first = next(iter(net.params))
    assert np.isfinite(net.params[first][0].diff).all() and np.abs(net.params[first][0].diff).sum() > 0


@pytest.mark.parametrize("case", [c for c in cases.CASES], ids=[c["name"] for c in cases.CASES])
def test_fixture_was_made_from_the_current_example(case):
    group_dir = REDUCED[0].parent if REDUCED else None
    if group_dir is None:
        pytest.skip("no nets fixtures generated yet (make golden GROUPS=nets)")
    fx = _fixture(group_dir / f"{case['name']}.npz")
    assert fx.meta["prototxt"] == case["prototxt"], (
        f"examples/nets/{case['source']} changed since its fixture was made: "
        "regenerate with `make golden GROUPS=nets`")


@pytest.mark.parametrize("filename", EXAMPLES)
@pytest.mark.parametrize("phase", ["TRAIN", "TEST"])
def test_example_keeps_the_layers_caffe_keeps(filename, phase):
    param = read_text(f"{cases.EXAMPLES}/{filename}", caffe_pb2.NetParameter())
    param.state.phase = _phase(phase)
    kept = [layer.name for layer in filter_net(param).layer]
    shapes = [p for p in SHAPES
              if _fixture(p).meta["source"] == filename and _fixture(p).meta["phase"] == phase]
    assert shapes, f"no shapes fixture for {filename} {phase}"
    fx = _fixture(shapes[0])
    caffe_layers = [n for n, t in zip(fx.meta["layers"], fx.meta["types"]) if t not in ("Split", "Input")]
    data = [layer.name for layer in param.layer if layer.type == "Data"]
    assert kept == [data[0]] + caffe_layers
    assert [t for t in fx.meta["types"] if t == "Input"] == ["Input"]
