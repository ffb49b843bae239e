"""Check a Python layer's ``backward`` against finite differences (beyond Caffe).

A hand-written ``backward`` that disagrees with ``forward`` is the most common
bug in custom layers, and Caffe itself gives users no tool to find it (its
``GradientChecker`` is C++ test code). ::

    report = caffe.check_gradient(MyLayer, [pred, label], check=[0])
    print(report)          # worst mismatch per bottom and per parameter blob
    report.assert_ok()     # raises GradientCheckError when a row fails

The layer runs exactly as in a net (setup, reshape before every forward, the
autograd bridge). The objective is ``Σ_j Σ top_j · r_j`` with fixed random
``r_j`` (the top diffs handed to ``backward``); each checked element ``x`` of a
bottom or parameter gets the central difference
``(L(x + step) − L(x − step)) / (2 step)``. As in Caffe's GradientChecker, a
point fails when ``|analytic − numeric| > threshold · max(|analytic|, |numeric|, 1)``
(defaults step 1e-2, threshold 1e-3, Caffe's). Layers are float32, like
Caffe's; random or discontinuous layers cannot be checked this way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .errors import CaffeCompatError
from .layers.base import Layer as _NetLayer, LayerContext
from .proto import caffe_pb2
from .proto.files import parse_text

__all__ = ["check_gradient", "GradientReport", "GradientRow", "GradientCheckError"]


class GradientCheckError(CaffeCompatError, AssertionError):
    """A layer's backward disagrees with its forward."""


@dataclass
class GradientRow:
    """The worst point of one bottom or parameter blob."""

    what: str  # "bottom 0", "param 1"
    shape: tuple[int, ...]
    checked: int
    worst_error: float = 0.0  # |a − n| / max(|a|, |n|, 1)
    worst_index: tuple[int, ...] = ()
    analytic: float = 0.0
    numeric: float = 0.0
    ok: bool = True
    note: str = ""

    def __str__(self) -> str:
        size = int(np.prod(self.shape)) if self.shape else 1
        head = f"{self.what:<9} {self.checked}/{size} checked"
        if not self.checked:
            return f"{head}  {self.note or 'nothing to check'}"
        where = ",".join(map(str, self.worst_index))
        text = (f"{head}  worst error {self.worst_error:.3g} at ({where}): analytic {self.analytic:.6g}, "
                f"numeric {self.numeric:.6g}  {'ok' if self.ok else 'FAILED'}")
        return text + (f"  ({self.note})" if self.note else "")


@dataclass
class GradientReport:
    layer: str
    step: float
    threshold: float
    rows: list[GradientRow] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    def row(self, what: str) -> GradientRow:
        return next(r for r in self.rows if r.what == what)

    def __str__(self) -> str:
        lines = [f"gradient check of {self.layer} (step {self.step:g}, threshold {self.threshold:g}; "
                 "error = |analytic - numeric| / max(|analytic|, |numeric|, 1)):"]
        lines += [f"  {r}" for r in self.rows]
        return "\n".join(lines)

    def assert_ok(self) -> None:
        if not self.ok:
            raise GradientCheckError(str(self))


def _build(layer: Any, shapes: list[tuple[int, ...]], n_top: int, param_str: str, phase: int) -> _NetLayer:
    from .layers.python.python import bound_layer_class
    from .layers.registry import get_layer_class

    if isinstance(layer, type):
        lp = caffe_pb2.LayerParameter(name=layer.__name__, type="Python")
        lp.python_param.param_str = param_str
        cls: type[_NetLayer] = bound_layer_class(user_class=layer)
    else:
        if isinstance(layer, caffe_pb2.LayerParameter):
            lp = caffe_pb2.LayerParameter()
            lp.CopyFrom(layer)
        else:
            text = str(layer).strip()
            if text.startswith("layer") and text.endswith("}"):
                text = text[text.index("{") + 1:-1]
            lp = parse_text(text, caffe_pb2.LayerParameter(), "<check_gradient>")
        lp.name = lp.name or "checked"
        if param_str:
            lp.python_param.param_str = param_str
        cls = get_layer_class(lp.type, lp.name)
    del lp.bottom[:], lp.top[:]
    lp.bottom.extend(f"bottom{i}" for i in range(len(shapes)))
    lp.top.extend(f"top{j}" for j in range(n_top))
    lp.phase = phase  # type: ignore[assignment]  # protobuf enum int
    host = cls(lp, shapes, LayerContext(phase=phase, source_dir=Path.cwd()))
    host.top_shapes(shapes)
    return host


def _outputs(host: _NetLayer, xs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    out = host.forward(*xs)
    return (out,) if isinstance(out, torch.Tensor) else tuple(out)


def check_gradient(layer: Any, bottoms: Sequence[Any], *, n_top: int = 1, param_str: str = "",
                   phase: int = caffe_pb2.TRAIN, check: Sequence[int] | None = None, params: bool = True,
                   step: float = 1e-2, threshold: float = 1e-3, seed: int = 0,
                   max_points: int = 2000) -> GradientReport:
    """Compare ``layer``'s backward with central differences of its forward.

    ``layer``: a Python layer class (``caffe.Layer`` or ``TorchLayer``
    subclass), or a layer definition (prototxt text or LayerParameter, e.g.
    ``'type: "Python" python_param { module: "m" layer: "L" }'``).
    ``bottoms``: arrays, or shapes as tuples (filled with standard normal values).
    ``check``: bottom indices to check (default all; leave out labels);
    ``params``: also check the layer's parameter blobs; ``max_points``:
    elements checked per blob (a random sample when there are more).
    """
    rng = np.random.RandomState(seed)
    arrays = [rng.randn(*b).astype(np.float32) if isinstance(b, tuple) and
              all(isinstance(d, (int, np.integer)) for d in b) else np.array(b, dtype=np.float32)
              for b in bottoms]
    host = _build(layer, [a.shape for a in arrays], n_top, param_str, phase)
    check = list(range(len(arrays))) if check is None else [int(i) for i in check]
    xs = [torch.from_numpy(a.copy()).requires_grad_(i in check) for i, a in enumerate(arrays)]
    learnable = [(i, p) for i, p in enumerate(host.params) if p.requires_grad] if params else []
    ps = [p for _, p in learnable]
    for p in ps:
        p.grad = None
    outs = _outputs(host, xs)
    diffs = [torch.from_numpy(rng.uniform(-1, 1, tuple(o.shape)).astype(np.float32)) for o in outs]
    live = [(o, d) for o, d in zip(outs, diffs) if o.requires_grad]
    targets = [xs[i] for i in check] + ps
    grads: Sequence[torch.Tensor | None] = [None] * len(targets)
    if live and targets:
        grads = torch.autograd.grad([o for o, _ in live], targets, [d for _, d in live], allow_unused=True)

    def objective() -> float:
        with torch.no_grad():
            outs = _outputs(host, xs)
            return float(sum(float((o.double() * d.double()).sum()) for o, d in zip(outs, diffs)))

    report = GradientReport(getattr(host, "origin", host.where), step, threshold)
    names = [f"bottom {i}" for i in check] + [f"param {i}" for i, _ in learnable]
    for what, target, grad in zip(names, targets, grads):
        report.rows.append(_check_one(what, target, grad, objective, step, threshold, rng, max_points))
    return report


def _check_one(what: str, target: torch.Tensor, grad: torch.Tensor | None, objective: Any, step: float,
               threshold: float, rng: np.random.RandomState, max_points: int) -> GradientRow:
    shape = tuple(target.shape)
    flat = target.detach().view(-1)
    n = flat.numel()
    idx = np.arange(n) if n <= max_points else np.sort(rng.choice(n, max_points, replace=False))
    row = GradientRow(what, shape, len(idx))
    analytic = np.zeros(n) if grad is None else grad.detach().double().reshape(-1).numpy()
    if grad is None:
        row.note = f"backward wrote no gradient for {what}"
    for k in idx:
        orig = float(flat[k])
        with torch.no_grad():
            flat[k] = orig + step
            plus = objective()
            flat[k] = orig - step
            minus = objective()
            flat[k] = orig
        numeric = (plus - minus) / (2 * step)
        a = float(analytic[k])
        err = abs(a - numeric) / max(abs(a), abs(numeric), 1.0)
        if err >= row.worst_error:
            row.worst_error, row.analytic, row.numeric = err, a, numeric
            row.worst_index = tuple(int(i) for i in np.unravel_index(int(k), shape)) if shape else ()
    row.ok = row.worst_error <= threshold
    return row
