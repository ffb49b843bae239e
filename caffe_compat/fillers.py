"""Caffe's weight fillers (``FillerParameter``), as in ``include/caffe/filler.hpp``.

Random draws come from torch's global generator, which
``caffe.set_random_seed`` seeds, so a seeded run is reproducible (the numbers
differ from Caffe's boost RNG; the distributions are the same).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from .errors import LayerError
from .proto import caffe_pb2

__all__ = ["fill", "filler_types"]

_FAN_IN = caffe_pb2.FillerParameter.FAN_IN
_FAN_OUT = caffe_pb2.FillerParameter.FAN_OUT
_AVERAGE = caffe_pb2.FillerParameter.AVERAGE


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    count = math.prod(shape)
    fan_in = count // shape[0] if shape and shape[0] else count
    # ND-compatible rule: fan_out divides by the second axis when there is one.
    fan_out = count // shape[1] if len(shape) > 1 and shape[1] else count
    return fan_in, fan_out


def _variance_n(p: caffe_pb2.FillerParameter, shape: tuple[int, ...]) -> float:
    fan_in, fan_out = _fans(shape)
    if p.variance_norm == _AVERAGE:
        return (fan_in + fan_out) / 2.0
    if p.variance_norm == _FAN_OUT:
        return float(fan_out)
    return float(fan_in)


def _no_sparse(p: caffe_pb2.FillerParameter, kind: str) -> None:
    if p.sparse != -1:
        raise LayerError(f'filler "{kind}" does not support sparse (got sparse: {p.sparse})')


def _constant(p: caffe_pb2.FillerParameter, shape: tuple[int, ...]) -> torch.Tensor:
    _no_sparse(p, "constant")
    return torch.full(shape, p.value, dtype=torch.float32)


def _uniform(p: caffe_pb2.FillerParameter, shape: tuple[int, ...]) -> torch.Tensor:
    _no_sparse(p, "uniform")
    return torch.empty(shape, dtype=torch.float32).uniform_(p.min, p.max)


def _gaussian(p: caffe_pb2.FillerParameter, shape: tuple[int, ...]) -> torch.Tensor:
    t = torch.empty(shape, dtype=torch.float32).normal_(p.mean, p.std)
    if p.sparse < -1:
        raise LayerError(f"gaussian filler: sparse must be >= -1, got {p.sparse}")
    if p.sparse >= 0:
        # Sparse init targets weight matrices: on average `sparse` non-zero
        # inputs per output, i.e. keep each entry with p = sparse / num_outputs.
        if not shape:
            raise LayerError("gaussian filler with sparse needs a blob with at least 1 axis")
        keep = min(1.0, p.sparse / shape[0])
        t *= torch.bernoulli(torch.full(shape, keep))
    return t


def _positive_unitball(p: caffe_pb2.FillerParameter, shape: tuple[int, ...]) -> torch.Tensor:
    _no_sparse(p, "positive_unitball")
    t = torch.rand(shape, dtype=torch.float32)
    num = shape[0] if shape else 1
    rows = t.view(num, -1)
    rows /= rows.sum(dim=1, keepdim=True)
    return t


def _xavier(p: caffe_pb2.FillerParameter, shape: tuple[int, ...]) -> torch.Tensor:
    _no_sparse(p, "xavier")
    scale = math.sqrt(3.0 / _variance_n(p, shape))
    return torch.empty(shape, dtype=torch.float32).uniform_(-scale, scale)


def _msra(p: caffe_pb2.FillerParameter, shape: tuple[int, ...]) -> torch.Tensor:
    _no_sparse(p, "msra")
    std = math.sqrt(2.0 / _variance_n(p, shape))
    return torch.empty(shape, dtype=torch.float32).normal_(0.0, std)


def _bilinear(p: caffe_pb2.FillerParameter, shape: tuple[int, ...]) -> torch.Tensor:
    _no_sparse(p, "bilinear")
    if len(shape) != 4:
        raise LayerError(f"bilinear filler needs a 4-axis blob, got shape {list(shape)}")
    if shape[2] != shape[3]:
        raise LayerError(f"bilinear filler needs a square kernel, got {shape[2]}x{shape[3]}")
    width = shape[3]
    f = math.ceil(width / 2.0)
    c = (width - 1) / (2.0 * f)
    ramp = 1 - torch.abs(torch.arange(width, dtype=torch.float64) / f - c)
    kernel = (ramp[:, None] * ramp[None, :]).to(torch.float32)
    return kernel.expand(shape).contiguous()


_FILLERS: dict[str, Callable[[caffe_pb2.FillerParameter, tuple[int, ...]], torch.Tensor]] = {
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


def fill(param: caffe_pb2.FillerParameter | None, shape: tuple[int, ...],
         where: str = "") -> torch.Tensor:
    """A new float32 CPU tensor of ``shape`` filled as ``param`` says."""
    if param is None:
        param = caffe_pb2.FillerParameter()
    fn = _FILLERS.get(param.type)
    if fn is None:
        prefix = f"{where}: " if where else ""
        raise LayerError(
            f'{prefix}unknown filler type "{param.type}"; known: {", ".join(filler_types())}'
        )
    if math.prod(shape) == 0 and param.type != "constant":
        return torch.zeros(shape, dtype=torch.float32)
    return fn(param, tuple(shape))
