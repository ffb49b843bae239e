"""PriorBox: SSD's default boxes (``prior_box_layer.cpp`` of weiliu89/caffe).

Bottoms: a feature map (N, C, H, W) and the image (N, C', IH, IW) (only the
shapes are read). Top: (1, 2, H·W·P·4): channel 0 the P priors of every cell
as normalized corners ``xmin, ymin, xmax, ymax`` (cells row-major), channel 1
their variances.

Per cell the center is ((w + offset)·step_w, (h + offset)·step_h) with
step = img_size / feature size unless ``step`` is given, and img_size the
image bottom's unless ``img_size``/``img_h``/``img_w`` is given. For each
min_size s (and max_size S), the priors are, in this order: the square of
side s; the square of side sqrt(s·S) (when max sizes are given); then for
each aspect ratio r ≠ 1 a box s·sqrt(r) wide and s/sqrt(r) high. The ratios
are 1 first, then each given ratio not within 1e-6 of one already listed,
followed by 1/r when ``flip``. ``clip`` clamps coordinates to [0, 1]. One
variance is broadcast, or four are given per coordinate (default 0.1).

The fork stores min_size and max_size in ``int`` variables before use, so
fractional sizes are truncated (s = 35.7 gives a side of 35); kept here.
No backward: the priors depend on the bottoms' shapes only.

Differences from Caffe: none known (float rounding of the coordinates may
differ in the last bit: the fork mixes float and double arithmetic).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ...errors import ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer


@register_layer("PriorBox")
class PriorBox(Layer):
    exact_num_bottom = 2
    exact_num_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.prior_box_param
        if not len(p.min_size):
            raise self.error("prior_box_param: min_size is required")
        self.min_sizes = [float(s) for s in p.min_size]
        if any(s <= 0 for s in self.min_sizes):
            raise self.error(f"min_size must be positive, got {self.min_sizes}")
        self.max_sizes = [float(s) for s in p.max_size]
        if self.max_sizes and len(self.max_sizes) != len(self.min_sizes):
            raise self.error(f"give one max_size per min_size: {len(self.min_sizes)} min_size, "
                             f"{len(self.max_sizes)} max_size")
        for lo, hi in zip(self.min_sizes, self.max_sizes):
            if hi <= lo:
                raise self.error(f"max_size must be greater than min_size, got {hi:g} <= {lo:g}")
        self.ratios = [1.0]
        for r in p.aspect_ratio:
            if all(abs(r - q) >= 1e-6 for q in self.ratios):
                self.ratios.append(float(r))
                if p.flip:
                    self.ratios.append(1.0 / r)
        self.num_priors = len(self.ratios) * len(self.min_sizes) + len(self.max_sizes)
        self.clip = p.clip
        if len(p.variance) not in (0, 1, 4):
            raise self.error(f"give 1 or 4 variances, got {len(p.variance)}")
        if any(v <= 0 for v in p.variance):
            raise self.error(f"variances must be positive, got {list(p.variance)}")
        self.variance = list(p.variance) or [0.1]
        self.img = self._pair(p, "img_size", "img_h", "img_w", int)
        self.step = self._pair(p, "step", "step_h", "step_w", float)
        self.offset = float(p.offset)

    def _pair(self, p, one: str, h: str, w: str, kind: type):  # type: ignore[no-untyped-def]
        if p.HasField(h) or p.HasField(w):
            if p.HasField(one):
                raise self.error(f"give either {one} or {h}/{w}, not both")
            pair = (kind(getattr(p, h)), kind(getattr(p, w)))
        elif p.HasField(one):
            pair = (kind(getattr(p, one)),) * 2
        else:
            return None
        if min(pair) <= 0:
            raise self.error(f"{one} ({h}, {w}) must be positive, got {list(pair)}")
        return pair

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        h, w = self._hw(bottom_shapes[0])
        return [(1, 2, h * w * self.num_priors * 4)]

    def _hw(self, shape: Shape) -> tuple[int, int]:
        if len(shape) < 2:
            raise self.error(f"bottom 0 needs spatial axes, got {list(shape)}", ShapeError)
        # Caffe's legacy height()/width(): axes 2 and 3, 1 when absent.
        return (shape[2] if len(shape) > 2 else 1), (shape[3] if len(shape) > 3 else 1)

    def priors(self, feat: Shape, image: Shape) -> np.ndarray:
        """The (1, 2, H·W·P·4) float32 array for these bottom shapes."""
        lh, lw = self._hw(feat)
        ih, iw = self.img or self._hw(image)
        sh, sw = self.step or (np.float32(ih) / np.float32(lh), np.float32(iw) / np.float32(lw))
        cy = (np.arange(lh, dtype=np.float32) + np.float32(self.offset)) * np.float32(sh)
        cx = (np.arange(lw, dtype=np.float32) + np.float32(self.offset)) * np.float32(sw)
        sizes: list[tuple[float, float]] = []  # (width, height) of a cell's priors, in the fork's order
        for k, s in enumerate(self.min_sizes):
            s = int(s)  # the fork truncates to int
            sizes.append((s, s))
            if self.max_sizes:
                side = math.sqrt(s * int(self.max_sizes[k]))
                sizes.append((side, side))
            for r in self.ratios:
                if abs(r - 1.0) < 1e-6:
                    continue
                root = math.sqrt(np.float32(r))
                sizes.append((s * root, s / root))
        bw = np.array([np.float32(a) for a, _ in sizes], dtype=np.float64)
        bh = np.array([np.float32(b) for _, b in sizes], dtype=np.float64)
        x = cx.astype(np.float64)[None, :, None]
        y = cy.astype(np.float64)[:, None, None]
        boxes = np.stack(np.broadcast_arrays((x - bw / 2) / iw, (y - bh / 2) / ih,
                                             (x + bw / 2) / iw, (y + bh / 2) / ih), axis=-1)
        boxes = boxes.astype(np.float32).reshape(-1)
        if self.clip:
            boxes = np.clip(boxes, 0.0, 1.0)
        var = np.resize(np.asarray(self.variance, dtype=np.float32), boxes.shape)
        return np.stack([boxes, var])[None]

    def forward(self, feat: torch.Tensor, image: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        shape = self.top_shapes([tuple(feat.shape), tuple(image.shape)])[0]
        if feat.is_meta:
            return torch.empty(shape, device="meta")
        out = self.priors(tuple(feat.shape), tuple(image.shape))
        return torch.from_numpy(out).to(device=feat.device, dtype=feat.dtype)
