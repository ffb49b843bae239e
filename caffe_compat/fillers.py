"""Caffe's weight fillers (``FillerParameter``), as in ``include/caffe/filler.hpp``.

=================  ==========================================================
type               values
=================  ==========================================================
constant           ``value`` everywhere (the default filler: constant 0)
uniform            U[min, max); Caffe requires min <= max
gaussian           N(mean, std²), std > 0; ``sparse: k`` keeps each entry with
                   probability k / shape[0] (k <= shape[0])
positive_unitball  U[0, 1) then each of the shape[0] rows divided by its sum
xavier             U(±sqrt(3 / n))
msra               N(0, 2 / n)
bilinear           the 2-D bilinear upsampling kernel (4-axis, square blobs)
=================  ==========================================================

For xavier and msra, n is fan_in = count / shape[0] (``variance_norm:
FAN_IN``, the default), fan_out = count / shape[1] (count for a 1-axis blob;
``FAN_OUT``) or their mean (``AVERAGE``). Only gaussian accepts ``sparse``;
Caffe aborts on the others, we raise :class:`~caffe_compat.errors.LayerError`.

Random draws come from torch's generator of the target device, which
``caffe.set_random_seed`` seeds, so a seeded run is reproducible. The numbers
differ from Caffe's boost RNG; the distributions are the same.

Differences from Caffe: Caffe aborts when asked to fill an empty blob; we
return an empty tensor.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from .errors import LayerError
from .proto import caffe_pb2

__all__ = ["fill", "filler_types"]

_FAN_IN = caffe_pb2.FillerParameter.FAN_IN
_FAN_OUT = caffe_pb2.FillerParameter.FAN_OUT
_AVERAGE = caffe_pb2.FillerParameter.AVERAGE

Shape = tuple[int, ...]
_Filler = Callable[[caffe_pb2.FillerParameter, Shape, torch.device], torch.Tensor]


class _FillerError(Exception):
    """Raised inside a filler; :func:`fill` turns it into a LayerError naming the place."""


def _fans(shape: Shape) -> tuple[int, int]:
    """Caffe's (fan_in, fan_out) for a blob of ``shape``."""
    if not shape:
        raise _FillerError("needs a blob with at least 1 axis")
    count = math.prod(shape)
    fan_in = count // shape[0]
    # Caffe's "compatibility with N-d blobs": fan_out divides by axis 1, which
    # for a conv weight (out, in, kh, kw) is out*kh*kw.
    fan_out = count // shape[1] if len(shape) > 1 else count
    return fan_in, fan_out


def _variance_n(p: caffe_pb2.FillerParameter, shape: Shape) -> float:
    fan_in, fan_out = _fans(shape)
    if p.variance_norm == _AVERAGE:
        return (fan_in + fan_out) / 2.0
    if p.variance_norm == _FAN_OUT:
        return float(fan_out)
    return float(fan_in)


def _empty(shape: Shape, device: torch.device) -> torch.Tensor:
    return torch.empty(shape, dtype=torch.float32, device=device)


def _constant(p: caffe_pb2.FillerParameter, shape: Shape, device: torch.device) -> torch.Tensor:
    return torch.full(shape, p.value, dtype=torch.float32, device=device)


def _uniform(p: caffe_pb2.FillerParameter, shape: Shape, device: torch.device) -> torch.Tensor:
    if p.min > p.max:
        raise _FillerError(f"needs min <= max, got min {p.min:g} > max {p.max:g}")
    if p.min == p.max:
        return torch.full(shape, p.min, dtype=torch.float32, device=device)
    return _empty(shape, device).uniform_(p.min, p.max)


def _gaussian(p: caffe_pb2.FillerParameter, shape: Shape, device: torch.device) -> torch.Tensor:
    if not p.std > 0:
        raise _FillerError(f"needs std > 0, got std {p.std:g}")
    t = _empty(shape, device).normal_(p.mean, p.std)
    if p.sparse >= 0:
        # Sparse init targets weight matrices: on average `sparse` non-zero
        # inputs per output, i.e. keep each entry with p = sparse / num_outputs.
        if not shape:
            raise _FillerError("sparse needs a blob with at least 1 axis")
        keep = float(np.float32(p.sparse) / np.float32(shape[0]))
        if keep > 1:
            raise _FillerError(
                f"sparse {p.sparse} is more than the {shape[0]} outputs "
                f"(shape[0]) of blob {list(shape)}; keep probability {keep:g} > 1"
            )
        t *= torch.empty_like(t).bernoulli_(keep)
    return t


def _positive_unitball(p: caffe_pb2.FillerParameter, shape: Shape, device: torch.device) -> torch.Tensor:
    if not shape:
        raise _FillerError("needs a blob with at least 1 axis")
    t = _empty(shape, device).uniform_(0.0, 1.0)
    rows = t.view(shape[0], -1)
    rows /= rows.sum(dim=1, keepdim=True)
    return t


def _xavier(p: caffe_pb2.FillerParameter, shape: Shape, device: torch.device) -> torch.Tensor:
    scale = math.sqrt(3.0 / _variance_n(p, shape))
    return _empty(shape, device).uniform_(-scale, scale)


def _msra(p: caffe_pb2.FillerParameter, shape: Shape, device: torch.device) -> torch.Tensor:
    std = math.sqrt(2.0 / _variance_n(p, shape))
    return _empty(shape, device).normal_(0.0, std)


def _bilinear(p: caffe_pb2.FillerParameter, shape: Shape, device: torch.device) -> torch.Tensor:
    if len(shape) != 4:
        raise _FillerError("needs a 4-axis blob")
    if shape[2] != shape[3]:
        raise _FillerError(f"needs a square kernel, got {shape[2]}x{shape[3]}")
    width = shape[3]
    f = math.ceil(width / 2.0)
    # Caffe computes c in double, stores it and every term in float.
    c = torch.tensor((width - 1) / (2.0 * f), dtype=torch.float32)
    ramp = 1 - torch.abs(torch.arange(width, dtype=torch.float32) / f - c)
    kernel = ramp[:, None] * ramp[None, :]
    return kernel.expand(shape).contiguous().to(device)


_FILLERS: dict[str, _Filler] = {
    "constant": _constant,
    "uniform": _uniform,
    "gaussian": _gaussian,
    "positive_unitball": _positive_unitball,
    "xavier": _xavier,
    "msra": _msra,
    "bilinear": _bilinear,
}


def filler_types() -> list[str]:
    return sorted(_FILLERS)


def fill(param: caffe_pb2.FillerParameter | None, shape: tuple[int, ...], where: str = "",
         device: torch.device | str | None = None) -> torch.Tensor:
    """A new float32 tensor of ``shape`` on ``device`` (CPU by default), filled as ``param`` says."""
    if param is None:
        param = caffe_pb2.FillerParameter()
    prefix = f"{where}: " if where else ""
    fn = _FILLERS.get(param.type)
    if fn is None:
        raise LayerError(
            f'{prefix}unknown filler type "{param.type}"; known: {", ".join(filler_types())}'
        )
    if param.sparse != -1 and (param.type != "gaussian" or param.sparse < -1):
        what = "must be >= -1" if param.sparse < -1 else "is only supported by the gaussian filler"
        raise LayerError(f'{prefix}{param.type} filler: sparse {what} (got sparse: {param.sparse})')
    shape = tuple(int(d) for d in shape)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if math.prod(shape) == 0:
        return torch.zeros(shape, dtype=torch.float32, device=dev)
    try:
        return fn(param, shape, dev)
    except _FillerError as exc:
        raise LayerError(f"{prefix}{param.type} filler for blob {list(shape)}: {exc}") from None
