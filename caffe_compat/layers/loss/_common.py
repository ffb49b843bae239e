"""Helpers shared by the loss layers: normalisation, label checks, clamped logs.

* :func:`normalization_mode` / :func:`normalizer` follow ``LossLayer::GetNormalizer``
  (``loss_layer.cpp``) and the way each layer reads ``loss_param``.
* :func:`class_labels` turns a label blob into class indices the way Caffe's
  ``static_cast<int>`` does, but raises where Caffe would read out of bounds.
* :func:`clamp_value` keeps Caffe's clamped forward value with the unclamped
  gradient (Caffe's hand-written backwards ignore their forward clamps).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import torch

from ...errors import LayerError, ShapeError
from ...proto import caffe_pb2

if TYPE_CHECKING:
    from ..base import Layer

__all__ = [
    "normalization_mode", "normalizer", "class_labels", "clamp_value", "split_axis",
    "check_count", "LOG_THRESHOLD",
]

_L = caffe_pb2.LossParameter

#: Caffe's ``kLOG_THRESHOLD`` (InfogainLoss, MultinomialLogisticLoss).
LOG_THRESHOLD = 1e-20


def normalization_mode(param: caffe_pb2.LayerParameter, default: int = _L.VALID) -> int:
    """The effective NormalizationMode.

    An explicit ``normalization`` wins; otherwise the legacy ``normalize``
    flag picks VALID (true) or BATCH_SIZE (false); otherwise ``default``
    (VALID for SoftmaxWithLoss/InfogainLoss, BATCH_SIZE for
    SigmoidCrossEntropyLoss).
    """
    lp = param.loss_param
    if lp.HasField("normalization"):
        return lp.normalization
    if lp.HasField("normalize"):
        return _L.VALID if lp.normalize else _L.BATCH_SIZE
    return default


def normalizer(mode: int, outer: int, inner: int,
               valid: torch.Tensor | None) -> torch.Tensor | float:
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


def split_axis(shape: Sequence[int], axis: int) -> tuple[int, int, int]:
    """(outer, channels, inner) around ``axis``, as Caffe's count(0, axis) etc."""
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


def check_count(layer: "Layer", what: str, got: torch.Tensor, expected: int,
                detail: str) -> None:
    """ShapeError naming the blob when ``got`` does not hold ``expected`` values."""
    if got.numel() != expected:
        raise layer.error(
            f"{what}: expected {expected} values ({detail}), got shape {list(got.shape)} "
            f"({got.numel()} values)", ShapeError)


def class_labels(layer: "Layer", label: torch.Tensor, num_classes: int,
                 ignore_label: int | None, zero_ignored: bool = True
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Class indices (long; ignored positions set to 0, or left at ``ignore_label``
    with ``zero_ignored=False``) and the valid mask.

    Caffe casts each label with ``static_cast<int>`` (truncation) and compares
    that with ``ignore_label``; it never checks the range in release builds and
    reads whatever memory the label points at. We raise instead, for labels
    that are not integers and for classes outside [0, num_classes).
    """
    label = label.detach()
    valid = None if ignore_label is None else label.trunc() != ignore_label
    if not label.is_meta:
        # One test for all three faults: a label clamped into range and truncated
        # changes unless it is an integer in range, and NaN never equals itself.
        bad = label != label.clamp(0, num_classes - 1).trunc()
        if valid is not None:
            bad &= valid
        if bool(bad.any()):
            first = float(label[bad].flatten()[0])
            kind = "out of range" if first.is_integer() else "not an integer"
            ignore = f" (ignore_label {ignore_label})" if ignore_label is not None else ""
            raise layer.error(
                f"label {first:g} is {kind}: labels must be integers in [0, {num_classes}){ignore}",
                LayerError)
    idx = label.long()  # a float-to-long cast truncates, as static_cast<int> does
    if valid is not None and zero_ignored:
        idx = torch.where(valid, idx, torch.zeros_like(idx))
    return idx, valid


def clamp_value(x: torch.Tensor, min: float | None = None,
                max: float | None = None) -> torch.Tensor:
    """``x`` clamped in value, with the gradient of ``x`` itself.

    Caffe's SoftmaxWithLoss and InfogainLoss clamp the probability inside the
    log of their forward pass, but their backward is the plain softmax
    gradient; this reproduces both halves.
    """
    return x + (x.detach().clamp(min=min, max=max) - x.detach())
