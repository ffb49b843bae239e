"""InfogainLoss: softmax + information-gain-weighted log loss (``infogain_loss_layer.cpp``).

Bottoms: scores (N, C, ...) with classes on ``infogain_loss_param.axis``
(default 1), labels (outer·inner integers), and optionally H as a third
bottom; otherwise H is read from the binaryproto ``infogain_loss_param.source``
(a path relative to the working directory, or else to the prototxt's folder).
H holds C×C values (any shape). Tops: the scalar loss and optionally the
softmax probabilities.

The scores go through a softmax first (current Caffe; before 2017 the input
was probabilities). loss = −Σ_positions Σ_l H[label, l]·log(max(p_l, 1e-20))
/ normaliser, with ``loss_param.ignore_label`` and ``normalization`` as in
SoftmaxWithLoss (default VALID); the legacy ``normalize`` is an error here. The gradient is the
unclamped p_k·Σ_l H[label, l] − H[label, k], scaled likewise. Labels and H get
no gradient; the prob top passes none back (a loss weight on it only adds
weight·Σp to the net's loss, as in Caffe).

Differences from Caffe: with ``force_backward`` and H from a bottom, Caffe
aborts ("cannot backpropagate to infogain inputs"); we send H no gradient.
Labels that are not integers in [0, C) raise.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import torch

from ...errors import CaffeCompatError, ShapeError
from ...proto import caffe_pb2
from ...proto.files import read_binary
from ..base import LayerContext, LossLayer, Shape, blob_proto_to_tensor, canonical_axis
from ..registry import register_layer
from ._common import LOG_THRESHOLD, check_count, class_labels, clamp_value, \
    normalization_mode, normalizer, split_axis

_LOG_THRESHOLD = math.log(LOG_THRESHOLD)


@register_layer("InfogainLoss")
class InfogainLoss(LossLayer):
    exact_num_bottom = None
    min_bottom = 2
    max_bottom = 3
    exact_num_top = None
    min_top = 1
    max_top = 2
    no_force_backward = frozenset({1, 2})

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.infogain_loss_param
        self.axis = canonical_axis(p.axis, len(bottom_shapes[0]), self.where)
        lp = param.loss_param
        self.ignore_label = lp.ignore_label if lp.HasField("ignore_label") else None
        if lp.HasField("normalize"):
            # Unlike SoftmaxWithLoss, Caffe's InfogainLoss rejects the legacy flag.
            raise self.error('loss_param.normalize is deprecated here: use "normalization"')
        self.mode = normalization_mode(param)
        self.with_prob = len(param.top) == 2
        self.infogain: torch.Tensor | None
        self.register_buffer("infogain", None, persistent=False)
        if len(bottom_shapes) < 3:
            if not p.source:
                raise self.error("the infogain matrix H needs infogain_loss_param.source "
                                 "(a binaryproto) or a third bottom")
            try:
                h = blob_proto_to_tensor(read_binary(self._find(p.source, ctx), caffe_pb2.BlobProto()))
            except CaffeCompatError as exc:
                raise self.error(f"cannot read the infogain matrix source: {exc}") from exc
            self.infogain = h.to(ctx.device)

    def _find(self, source: str, ctx: LayerContext) -> str:
        if os.path.exists(source) or os.path.isabs(source) or ctx.source_dir is None:
            return source
        beside = Path(ctx.source_dir) / source
        return str(beside) if beside.exists() else source

    def forward(self, x: torch.Tensor, label: torch.Tensor,  # type: ignore[override]
                h: torch.Tensor | None = None):
        self.check_batch(x, label)
        outer, c, inner = split_axis(x.shape, self.axis)
        check_count(self, "label (bottom 1)", label, outer * inner,
                    f"one per prediction: axis {self.axis} of prediction shape {list(x.shape)}")
        if h is None:
            assert self.infogain is not None
            h = self.infogain.to(x.device)  # also to "meta" when shapes are inferred
            what = f"infogain matrix from {self.layer_param.infogain_loss_param.source!r}"
        else:
            what = "infogain matrix (bottom 2)"
        if h.numel() != c * c:
            raise self.error(f"{what} has shape {list(h.shape)} ({h.numel()} values); "
                             f"expected {c}x{c} = {c * c} for {c} classes", ShapeError)
        logp = torch.log_softmax(x.reshape(outer, c, inner), dim=1)
        idx, valid = class_labels(self, label.reshape(outer, inner), c, self.ignore_label)
        rows = h.detach().reshape(c, c).to(x.dtype)[idx]          # (outer, inner, C)
        # Caffe clamps p at 1e-20 inside the log only; its backward is unclamped.
        logp = clamp_value(logp, min=_LOG_THRESHOLD)
        per = -(rows * logp.transpose(1, 2)).sum(dim=2)             # (outer, inner)
        count = None
        if valid is not None:
            per = per * valid
            count = valid.sum()
        loss = per.sum() / normalizer(self.mode, outer, inner, count)
        if self.with_prob:
            return loss, torch.softmax(x.detach(), dim=self.axis)
        return loss
