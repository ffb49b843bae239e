"""Accuracy: top-k classification accuracy (``accuracy_layer.cpp``).

Bottoms: scores (N, C, ...) with classes on ``accuracy_param.axis`` (default
1) and labels, one integer per position (outer·inner values). Tops: the scalar
accuracy and, optionally, per-class accuracy (C,).

A position is correct when fewer than ``top_k`` classes score at least as
high as the true class, the true class itself not counted: ties count
against. Positions whose label is ``ignore_label`` are skipped; accuracy over
no position is 0; a class never seen gets per-class accuracy 0.

Differences from Caffe: a label that is not an integer or lies outside
[0, C) raises (Caffe truncates / reads out of bounds); with ``force_backward``
the bottoms get no gradient (Caffe aborts "Not Implemented Yet").
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape, canonical_axis
from ..registry import register_layer
from ._common import check_count, class_labels, split_axis


@register_layer("Accuracy")
class Accuracy(Layer):
    exact_num_bottom = 2
    min_top = 1
    max_top = 2
    no_force_backward = frozenset({0, 1})

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.accuracy_param
        self.top_k = p.top_k
        self.axis = canonical_axis(p.axis, len(bottom_shapes[0]), self.where)
        self.ignore_label = p.ignore_label if p.HasField("ignore_label") else None
        self.per_class = len(param.top) == 2
        c = bottom_shapes[0][self.axis]
        if self.top_k > c:
            raise self.error(f"top_k ({self.top_k}) must be at most the number of classes "
                             f"({c}, axis {self.axis} of bottom 0 {list(bottom_shapes[0])})")

    def _check(self, x: torch.Tensor, label: torch.Tensor) -> tuple[int, int, int]:
        outer, c, inner = split_axis(x.shape, self.axis)
        check_count(self, "label (bottom 1)", label, outer * inner,
                    f"one per prediction: axis {self.axis} of prediction shape {list(x.shape)}")
        return outer, c, inner

    def quick_top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        c = self._check(*self.meta_bottoms(bottom_shapes))[1]
        return [()] + ([(c,)] if self.per_class else [])

    def forward(self, x: torch.Tensor, label: torch.Tensor):  # type: ignore[override]
        outer, c, inner = self._check(x, label)
        with torch.no_grad():
            scores = x.detach().reshape(outer, c, inner)
            idx, valid = class_labels(self, label.detach().reshape(outer, inner), c,
                                      self.ignore_label)
            true_score = scores.gather(1, idx.unsqueeze(1))
            # Classes scoring >= the true one, the true class excluded (ties count against).
            better = (scores >= true_score).sum(dim=1) - 1
            correct = better < self.top_k
            weight = torch.ones_like(idx, dtype=x.dtype) if valid is None else valid.to(x.dtype)
            hits = correct.to(x.dtype) * weight
            count = weight.sum()
            acc = hits.sum() / count.clamp(min=1)
            if not self.per_class:
                return acc
            flat = idx.flatten()
            seen = torch.zeros(c, dtype=x.dtype, device=x.device).index_add_(0, flat, weight.flatten())
            right = torch.zeros(c, dtype=x.dtype, device=x.device).index_add_(0, flat, hits.flatten())
            return acc, right / seen.clamp(min=1)
