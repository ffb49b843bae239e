"""Run a golden fixture (made by real Caffe) through caffe_compat and compare.

Fixture layout (``.npz``): ``meta`` (JSON: name, phase, prototxt, grad, tol,
skip), ``param/<layer>/<i>``, ``input/<blob>``, ``blob/<name>``,
``topdiff/<blob>``, ``diff/<blob>``, ``pdiff/<layer>/<i>``,
``param_after/<layer>/<i>``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import caffe_compat as caffe

ROOT = Path(__file__).resolve().parent / "golden" / "data"


@dataclass
class Fixture:
    path: Path
    meta: dict
    arrays: dict

    @property
    def id(self) -> str:
        return f"{self.path.parent.name}/{self.path.stem}"

    def keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.arrays if k.startswith(prefix + "/"))


def load(path: Path) -> Fixture:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    return Fixture(path, meta, arrays)


def fixtures(kind: str = "net", groups: tuple[str, ...] | None = None) -> list[Path]:
    out = []
    for path in sorted(ROOT.glob("*/*.npz")):
        if groups is not None and path.parent.name not in groups:
            continue
        with np.load(path) as z:
            if json.loads(str(z["meta"])).get("kind", "net") == kind:
                out.append(path)
    return out


def assert_close(actual: np.ndarray, golden: np.ndarray, tol: float, what: str) -> None:
    actual = np.asarray(actual, dtype=np.float64)
    golden = np.asarray(golden, dtype=np.float64)
    assert actual.shape == golden.shape, f"{what}: shape {actual.shape} != golden {golden.shape}"
    scale = max(1.0, float(np.nanmax(np.abs(golden))) if golden.size else 1.0)
    same_nan = np.isnan(actual) == np.isnan(golden)
    assert same_nan.all(), f"{what}: NaN positions differ"
    err = np.abs(np.nan_to_num(actual) - np.nan_to_num(golden))
    worst = float(err.max()) if err.size else 0.0
    assert worst <= tol * scale, (
        f"{what}: max |diff| {worst:.3g} > {tol:g} x {scale:.3g} "
        f"(at {np.unravel_index(int(err.argmax()), err.shape) if err.size else ()})"
    )


def _layer_and_index(key: str) -> tuple[str, int]:
    """``param/<layer>/<i>`` → (layer, i); layer names may contain '/'."""
    layer, i = key.split("/", 1)[1].rsplit("/", 1)
    return layer, int(i)


def build_net(fx: Fixture) -> "caffe.Net":
    phase = caffe.TRAIN if fx.meta["phase"] == "TRAIN" else caffe.TEST
    return caffe.Net(fx.meta["prototxt"], phase)


def run(fx: Fixture, net: "caffe.Net | None" = None) -> "caffe.Net":
    """Replay the fixture on caffe_compat and assert every recorded value."""
    net = net if net is not None else build_net(fx)
    tol = float(fx.meta.get("tol", 1e-4))
    skip = set(fx.meta.get("skip", ()))
    for key in fx.keys("param"):
        layer, i = _layer_and_index(key)
        net.params[layer][i].data[...] = fx.arrays[key]
    reshaped = False
    for key in fx.keys("input"):
        name = key.split("/", 1)[1]
        value = fx.arrays[key]
        if net.blobs[name].shape != value.shape:
            net.blobs[name].reshape(*value.shape)
            reshaped = True
        net.blobs[name].data[...] = value
    if reshaped:
        net.reshape()
    net.forward()
    for key in fx.keys("blob"):
        name = key.split("/", 1)[1]
        if name in skip:
            continue
        assert_close(net.blobs[name].data, fx.arrays[key], tol, f"{fx.id}: blob {name}")
    if fx.meta.get("grad"):
        for key in fx.keys("topdiff"):
            name = key.split("/", 1)[1]
            net.blobs[name].diff[...] = fx.arrays[key]
        net.backward()
        for key in fx.keys("diff"):
            name = key.split("/", 1)[1]
            assert_close(net.blobs[name].diff, fx.arrays[key], tol, f"{fx.id}: diff {name}")
        for key in fx.keys("pdiff"):
            layer, i = _layer_and_index(key)
            assert_close(net.params[layer][i].diff, fx.arrays[key], tol,
                         f"{fx.id}: param diff {layer}[{i}]")
    for key in fx.keys("param_after"):
        layer, i = _layer_and_index(key)
        assert_close(net.params[layer][i].data, fx.arrays[key], tol,
                     f"{fx.id}: param {layer}[{i}] after the pass")
    return net
