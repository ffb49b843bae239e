"""BatchNorm (``batch_norm_layer.cpp``): normalisation only, no affine part.

Bottom: (N, C, ...) with at least 2 axes. Top: same shape:
y = (x − μ_c) / sqrt(σ²_c + eps), statistics per channel over N and the
spatial axes (m = count / C values).

Blobs (three, lr_mult forced to 0; an explicit ``param`` with lr_mult ≠ 0 is
an error, as in Caffe): b0 = Σ-weighted means (C,), b1 = Σ-weighted
variances (C,), b2 = the weight sum s (1,). All start at 0.

* ``use_global_stats`` (default: phase == TEST): μ = b0 / s, σ² = b1 / s
  (s == 0 gives factor 0); the gradient is top_diff / sqrt(σ² + eps).
* otherwise: μ, σ² are the batch mean and *biased* variance, the gradient
  flows through them, and every forward updates the blobs:
  s ← maf·s + 1, b0 ← μ + maf·b0, b1 ← m/(m−1)·σ² + maf·b1
  (maf = moving_average_fraction, default 0.999; eps default 1e-5).

Forks' 5-blob form with a fused scale and bias (NVCaffe, Intel Caffe) is
``layers/forks/fused_batch_norm.py``, chosen by its fields.

Differences from Caffe: none known.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer


@register_layer("BatchNorm")
class BatchNorm(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def __new__(cls, param: caffe_pb2.LayerParameter | None = None,  # type: ignore[no-untyped-def]
                *args, **kwargs):
        # A fork's 5-blob BatchNorm (NVCaffe's scale_bias, Intel's use_weight_bias) is a
        # subclass in layers/forks/fused_batch_norm.py.
        if cls is BatchNorm and param is not None:
            from ..forks.fused_batch_norm import FusedBatchNorm, is_fused

            if is_fused(param):
                cls = FusedBatchNorm
        return super().__new__(cls)

    def blob_count_hint(self, n: int) -> str:
        """Appended to copy_from's blob-count error (a fork's fused BatchNorm has 4 or 5 blobs)."""
        return ("; a 5-blob BatchNorm with scale and bias is NVCaffe's or Intel Caffe's: add "
                "batch_norm_param { scale_bias: true } (NVCaffe) or { use_weight_bias: true } (Intel)"
                if n in (4, 5) else "")

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.batch_norm_param
        self.use_global_stats = (p.use_global_stats if p.HasField("use_global_stats")
                                 else self.phase == caffe_pb2.TEST)
        self.maf = float(p.moving_average_fraction)
        self.eps = float(p.eps)
        shape = bottom_shapes[0]
        if len(shape) < 2:
            raise self.error(f"bottom must have at least 2 axes (N, C, ...), got {list(shape)}",
                             ShapeError)
        self.channels = shape[1]
        for i, spec in enumerate(param.param):
            if spec.lr_mult != 0:
                raise self.error(
                    "cannot configure batch normalization statistics as layer parameters: "
                    f"param {i} has lr_mult {spec.lr_mult:g}, expected 0 (or no param at all)"
                )
        for name, shape_ in (("mean", (self.channels,)), ("variance", (self.channels,)),
                             ("weight_sum", (1,))):
            self.add_param(shape_, None, learnable=False, attr=name)

    def quick_top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape] | None:
        s = tuple(bottom_shapes[0])
        return [s] if len(s) >= 2 and s[1] == self.channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self._normalize(x, None, None)

    def forward_scaled(self, x: torch.Tensor, scale: Layer) -> torch.Tensor:
        """This layer and the Scale in place on its top (per-channel weight, optional bias) as
        one batch-norm kernel: Caffe's two layers' values up to float rounding, and
        autograd's gradients for x and the Scale's parameters."""
        return self._normalize(x, scale.params[0], scale.params[1] if len(scale.params) > 1 else None)

    def _normalize(self, x: torch.Tensor, w: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor:
        """(x − μ)/sqrt(σ² + eps), times ``w`` plus ``b`` where given (a Scale taken in)."""
        if x.dim() < 2 or x.shape[1] != self.channels:
            raise self.error(f"bottom {list(x.shape)} must have {self.channels} channels on axis 1",
                             ShapeError)
        # torch's fused batch_norm kernels compute (x − μ)/sqrt(σ² + eps) with the biased
        # batch variance, and their backward is Caffe's: one kernel each way instead of a
        # chain of elementwise ops (the difference is float rounding only).
        m = x.numel() // self.channels
        if self.use_global_stats:
            s = self.params[2]
            factor = torch.where(s == 0, torch.zeros_like(s), 1 / s)
            return F.batch_norm(x, self.params[0] * factor, self.params[1] * factor, w, b,
                                training=False, eps=self.eps)
        if m > 1:
            y, mean, invstd = torch.native_batch_norm(x, w, b, None, None, True, 0.0, self.eps)
            if not x.is_meta:
                # The kernel saved μ and 1/sqrt(σ² + eps): σ² for the running sums costs no
                # extra pass over x (float32 rounding: ~1e-7 relative).
                var = (invstd.detach().pow(-2) - self.eps).clamp_(min=0)
                self._update(mean.detach(), var, m)
            return y
        # One value per channel (torch's kernel refuses it): Caffe gives 0 / sqrt(eps).
        flat = x.reshape(x.shape[0], self.channels, -1)
        mean = flat.mean(dim=(0, 2))
        var = (flat - mean[:, None]).square().mean(dim=(0, 2))
        if not x.is_meta:
            self._update(mean.detach(), var.detach(), m)
        y = (flat - mean[:, None]) / torch.sqrt(var + self.eps)[:, None]
        if w is not None:
            y = y * w[:, None] + (0 if b is None else b[:, None])
        return y.reshape(x.shape)

    def _update(self, mean: torch.Tensor, var: torch.Tensor, m: int) -> None:
        # Unbiased variance in the running sum: Caffe's m/(m−1), in float.
        correction = float(np.float32(m) / np.float32(m - 1)) if m > 1 else 1.0
        b0, b1, s = self.params
        with torch.no_grad():
            s.mul_(self.maf).add_(1)
            b0.mul_(self.maf).add_(mean.to(b0.dtype))
            b1.mul_(self.maf).add_(var.to(b1.dtype) * correction)
