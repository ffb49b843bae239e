"""DummyData: tops filled by fillers (``dummy_data_layer.cpp``).

Bottoms: none. Tops: one or more, shaped by ``shape`` (once for all tops or
once per top) or by the legacy ``num``/``channels``/``height``/``width``
(each once or once per top; not mixed with ``shape``). ``data_filler`` is
given 0 times (constant 0), once (for every top) or once per top.

Like Caffe, a top whose filler is "constant" is filled once, when the net is
built, and never again: values written into it (``net.blobs[top].data[...]
= x``) stay for the next forward, and an in-place layer on it keeps working
on its own previous output. Tops with any other filler are refilled on every
forward (from torch's generator, seeded by ``caffe.set_random_seed``).

Differences from Caffe: reshaping a top by hand is undone by the next
``net.reshape()``; an empty top is allowed (Caffe aborts).
"""

from __future__ import annotations

from typing import Sequence

import torch

from ...blob import as_shape
from ...fillers import fill
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer

_LEGACY = ("num", "channels", "height", "width")


@register_layer("DummyData")
class DummyData(Layer):
    exact_num_bottom = 0
    min_top = 1

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.dummy_data_param
        self.top_names = list(param.top)
        n = len(self.top_names)
        if len(p.data_filler) not in (0, 1, n):
            raise self.error(f"number of data fillers must be 0, 1 or equal to the number of tops "
                             f"({n}); got {len(p.data_filler)}")
        self.fillers = [p.data_filler[i if len(p.data_filler) == n else 0] if len(p.data_filler)
                        else caffe_pb2.FillerParameter() for i in range(n)]
        self.shapes = self._parse_shapes(p, n)
        self.refill = [f.type != "constant" for f in self.fillers]
        self._started = [False] * n
        for i, (f, shape) in enumerate(zip(self.fillers, self.shapes)):
            if self.refill[i]:
                fill(f, shape, self.where, device="meta")  # fail now on bad parameters
            else:
                self.register_buffer(f"top{i}", fill(f, shape, self.where))

    def _parse_shapes(self, p: caffe_pb2.DummyDataParameter, n: int) -> list[Shape]:
        legacy = {k: list(getattr(p, k)) for k in _LEGACY}
        if any(legacy.values()):
            if len(p.shape):
                raise self.error("both shape and legacy fields (num/channels/height/width) were "
                                 "specified")
            for k, v in legacy.items():
                if len(v) not in (1, n):
                    raise self.error(f"must specify '{k}' once, or once per top blob ({n}); "
                                     f"specified {len(v)}")
            return [as_shape([legacy[k][i if len(legacy[k]) == n else 0] for k in _LEGACY],
                             self.where) for i in range(n)]
        if len(p.shape) not in (1, n):
            raise self.error(f"must specify 'shape' once, or once per top blob ({n}); "
                             f"specified {len(p.shape)}")
        return [as_shape(p.shape[i if len(p.shape) == n else 0].dim, self.where) for i in range(n)]

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        return list(self.shapes)

    def _held(self, i: int) -> torch.Tensor:
        """A constant top's data: the tensor its blob holds (Caffe keeps the
        memory, and whatever was written into it), else the initial fill."""
        own: torch.Tensor = getattr(self, f"top{i}")
        t = None
        if self.ctx.net is not None:
            try:
                t = self.ctx.net.blob(self.top_names[i])._t
            except ReferenceError:  # a layer kept after its net is gone
                t = None
        if t is None or tuple(t.shape) != self.shapes[i] or t.device != own.device:
            t = own
        elif not self._started[i] and t is not own and not t.is_meta:
            # The blob allocated zeros before the first forward (someone looked
            # at it): keep what the user wrote, else show the constant.
            if own.count_nonzero() and not t.count_nonzero():
                with torch.no_grad():
                    t.copy_(own)
        self._started[i] = True
        return t.detach()

    def forward(self) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        device = self.ctx.device
        tops = []
        for i, shape in enumerate(self.shapes):
            if self.refill[i]:
                tops.append(fill(self.fillers[i], shape, self.where, device=device))
            else:
                tops.append(self._held(i))
        return tuple(tops)
