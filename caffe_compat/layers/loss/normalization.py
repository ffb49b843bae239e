"""Loss normalisation shared by the loss layers (``LossLayer::GetNormalizer``)."""

from __future__ import annotations

import torch

from ...proto import caffe_pb2

_L = caffe_pb2.LossParameter


def normalization_mode(param: caffe_pb2.LayerParameter, default: int = _L.VALID) -> int:
    """The effective NormalizationMode.

    An explicit ``normalization`` wins; otherwise the legacy ``normalize``
    flag picks VALID (true) or BATCH_SIZE (false); otherwise ``default``.
    """
    lp = param.loss_param
    if lp.HasField("normalization"):
        return lp.normalization
    if lp.HasField("normalize"):
        return _L.VALID if lp.normalize else _L.BATCH_SIZE
    return default


def normalizer(mode: int, outer: int, inner: int, valid: torch.Tensor | None) -> torch.Tensor | float:
    """What the summed loss is divided by; never less than 1.

    ``valid`` is the count of non-ignored positions (a tensor, so no device
    sync), or None when nothing is ignored.
    """
    if mode == _L.FULL:
        return float(max(1, outer * inner))
    if mode == _L.VALID:
        if valid is None:
            return float(max(1, outer * inner))
        return valid.clamp(min=1)
    if mode == _L.BATCH_SIZE:
        return float(max(1, outer))
    if mode == _L.NONE:
        return 1.0
    raise ValueError(f"unknown normalization mode {mode}")
