"""BatchNorm with a fused scale and bias: NVCaffe's and Intel Caffe's 5-blob form.

Not a registered type: ``type: "BatchNorm"`` builds this class (see
``BatchNorm.__new__`` in ``layers/common/batch_norm.py``) when the layer asks
for the fused affine part:

* NVCaffe (``batch_norm_layer.cpp`` of NVIDIA/caffe 0.17): ``scale_bias: true``
  or a ``scale_filler``/``bias_filler``;
* Intel Caffe (MKL/MKL-DNN engines): ``use_weight_bias: true`` (Intel's own
  default; here it must be written), unless the layer gives exactly 3
  ``param`` specs (Intel's rule for plain BatchNorm); ``bias_term: false``
  drops the bias (4 blobs).

Bottom (N, C, ...), top the same: y = scale_c·(x − μ_c)/sqrt(σ²_c + eps) + bias_c.
Blobs: mean (C,), variance (C,), a factor (1,), scale (C,) (filler default 1),
bias (C,) (filler default 0). Scale and bias are learnable.

* Global statistics (``use_global_stats``, default at TEST): NVCaffe uses the
  mean and variance blobs as they are (its factor blob stays 1 and is not
  read, as in TensorRT's NVCaffe importer); Intel divides them by the factor
  (0 gives 0), as upstream Caffe.
* Batch statistics: the biased batch variance. NVCaffe clamps eps to ≥ 1e-5,
  stores the variance *with* eps added, and updates the blobs as moving
  averages, b ← (1 − maf)·batch + maf·b, copying the batch values on the first
  two forwards. Intel updates as upstream (sums weighted by the factor).

NVCaffe forces lr_mult/decay_mult to 0 for the statistics and to 1 for scale
and bias, whatever the prototxt says; so does this layer.

Differences from Caffe: NVCaffe's CPU code picks global statistics by phase
alone, here ``use_global_stats`` is honoured when given; Intel's update rule
is assumed to be upstream's (not verified on an Intel build).
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..common.batch_norm import BatchNorm

__all__ = ["FusedBatchNorm", "is_fused"]

_ONE = caffe_pb2.FillerParameter(type="constant", value=1.0)
_ZERO = caffe_pb2.FillerParameter(type="constant", value=0.0)


def _nvcaffe(p: caffe_pb2.BatchNormParameter) -> bool:
    return p.scale_bias or p.HasField("scale_filler") or p.HasField("bias_filler")


def is_fused(param: caffe_pb2.LayerParameter) -> bool:
    """Whether a BatchNorm LayerParameter asks for a fork's fused scale and bias."""
    p = param.batch_norm_param
    return _nvcaffe(p) or (p.use_weight_bias and len(param.param) != 3)


class FusedBatchNorm(BatchNorm):
    """``type: "BatchNorm"`` with blobs 3 and 4 (scale, bias) of NVCaffe or Intel Caffe."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        Layer.__init__(self, param, bottom_shapes, ctx)
        p = param.batch_norm_param
        self.nvcaffe = _nvcaffe(p)
        self.use_global_stats = (p.use_global_stats if p.HasField("use_global_stats")
                                 else self.phase == caffe_pb2.TEST)
        self.maf = float(p.moving_average_fraction)
        self.eps = max(float(p.eps), 1e-5) if self.nvcaffe else float(p.eps)
        shape = bottom_shapes[0]
        if len(shape) < 2:
            raise self.error(f"bottom must have at least 2 axes (N, C, ...), got {list(shape)}",
                             ShapeError)
        self.channels = c = shape[1]
        self.has_bias = self.nvcaffe or p.bias_term
        if self.nvcaffe:
            self._force_param_specs(param)
        factor = _ONE if self.nvcaffe else None
        for name, shape_, filler in (("mean", (c,), None), ("variance", (c,), None),
                                     ("weight_sum", (1,), factor)):
            self.add_param(shape_, filler, learnable=False, attr=name)
        scale_filler = p.scale_filler if p.HasField("scale_filler") else (
            p.filler if p.HasField("filler") else _ONE)
        self.add_param((c,), scale_filler, attr="scale")
        if self.has_bias:
            self.add_param((c,), p.bias_filler if p.HasField("bias_filler") else _ZERO, attr="bias")
        self.updates = 0  # NVCaffe's iter_: the first two batches are copied

    def _force_param_specs(self, param: caffe_pb2.LayerParameter) -> None:
        while len(param.param) < 5:
            param.param.add()
        for i, mult in enumerate((0.0, 0.0, 0.0, 1.0, 1.0)):
            param.param[i].lr_mult = mult
            param.param[i].decay_mult = mult

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if x.dim() < 2 or x.shape[1] != self.channels:
            raise self.error(f"bottom {list(x.shape)} must have {self.channels} channels on axis 1",
                             ShapeError)
        flat = x.reshape(x.shape[0], self.channels, -1)
        if self.use_global_stats:
            mean, var = self.params[0], self.params[1]
            if not self.nvcaffe:
                s = self.params[2]
                factor = torch.where(s == 0, torch.zeros_like(s), 1 / s)
                mean, var = mean * factor, var * factor
        else:
            mean = flat.mean(dim=(0, 2))
            var = (flat - mean[:, None]).square().mean(dim=(0, 2))
            if not x.is_meta:
                if self.nvcaffe:
                    self._nv_update(mean.detach(), var.detach())
                else:
                    self._update(mean.detach(), var.detach(), x.numel() // self.channels)
        y = (flat - mean[:, None]) / torch.sqrt(var + self.eps)[:, None]
        y = y * self.params[3][:, None]
        if self.has_bias:
            y = y + self.params[4][:, None]
        return y.reshape(x.shape)

    def _nv_update(self, mean: torch.Tensor, var: torch.Tensor) -> None:
        b0, b1 = self.params[0], self.params[1]
        stored = var + self.eps  # NVCaffe adds eps before keeping the variance
        with torch.no_grad():
            if self.updates > 1:
                b0.mul_(self.maf).add_(mean.to(b0.dtype), alpha=1 - self.maf)
                b1.mul_(self.maf).add_(stored.to(b1.dtype), alpha=1 - self.maf)
            else:
                b0.copy_(mean)
                b1.copy_(stored)
        self.updates += 1

    def blob_count_hint(self, n: int) -> str:
        return ""
