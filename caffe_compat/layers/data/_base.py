"""What Caffe's data layers share (``base_data_layer.cpp``).

:class:`DataLayerBase` — no bottoms, one or two tops (data, and label when a
second top is named), tops whose shapes come from the data rather than from
meta execution, a :class:`~caffe_compat.data.transformer.DataTransformer`
built from ``transform_param``, and a random generator of its own seeded
from ``caffe.set_random_seed`` when the layer is built.

:class:`PrefetchingDataLayer` — adds Caffe's prefetch thread: a subclass
builds a batch source (its ``next_batch`` runs in the background thread and
returns numpy arrays, one per top) and the first top shapes; ``forward``
hands out the next finished batch as tensors on the net's device. The batch
shapes are checked (INT_MAX elements per blob) before anything is read, and
the thread only starts (:meth:`PrefetchingDataLayer.start_background`) once the whole net
has passed its checks, so a net that fails to build leaves no thread behind.
"""

from __future__ import annotations

import weakref
from typing import Any, ClassVar, Sequence

import numpy as np
import torch

from ... import mode
from ...data.prefetch import BatchSource, Prefetcher
from ...data.transformer import DataTransformer, resolver
from ...blob import as_shape
from ...errors import DataError
from ...sizes import FLOAT_BYTES
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape

__all__ = ["DataLayerBase", "PrefetchingDataLayer"]


class DataLayerBase(Layer):
    exact_num_bottom: ClassVar[int | None] = 0
    min_top: ClassVar[int | None] = 1
    max_top: ClassVar[int | None] = 2

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        self.output_labels = len(param.top) != 1
        self.rng = np.random.default_rng(int(mode.host_rng().integers(2**63)))
        self.resolve = resolver(ctx.source_dir)
        self.transformer = DataTransformer(param.transform_param, self.phase, self.rng,
                                           f"{self.where}: transform_param", self.resolve)
        self._shapes: list[Shape] = []

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        return list(self._shapes)

    def _to_tops(self, arrays: Sequence[Any]) -> tuple[torch.Tensor, ...]:
        device = self.ctx.device
        tops = []
        for a in arrays:
            t = torch.from_numpy(a) if isinstance(a, np.ndarray) else a
            if t.device != device:
                t = t.to(device, non_blocking=True)
            tops.append(t)
        self._shapes = [tuple(t.shape) for t in tops]
        return tuple(tops)


class PrefetchingDataLayer(DataLayerBase):
    """A data layer whose batches are read ahead in a background thread."""

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        try:
            source, shapes = self.make_source()
        except DataError as exc:
            if str(exc).startswith(self.where):
                raise
            raise self.error(str(exc), DataError) from None
        n_top = len(param.top)
        try:  # Caffe's INT_MAX per blob, before any batch is read
            self._shapes = [as_shape(s, f'{self.where}: top "{t}" (one batch)')
                            for s, t in zip(shapes[:n_top], param.top)]
        except BaseException:
            source.close()
            raise
        count = int(param.data_param.prefetch)
        #: host memory of the batches read ahead (Caffe allocates them at setup)
        self.prefetch_bytes = max(count, 0) * FLOAT_BYTES * sum(int(np.prod(s)) for s in self._shapes)
        # The thread starts in start(), once the whole net has passed its checks.
        self._prefetcher = Prefetcher(source, count, self.where, start=False,
                                      pin_memory=mode.is_gpu_mode() and torch.cuda.is_available())
        weakref.finalize(self, self._prefetcher.close)

    def start_background(self) -> None:
        self._prefetcher.start()

    def make_source(self) -> tuple[BatchSource, list[Shape]]:
        """The batch source and the shapes of (data, label) for the first batch."""
        raise NotImplementedError

    def forward(self, *bottoms: torch.Tensor) -> tuple[torch.Tensor, ...]:
        batch = self._prefetcher.get()
        return self._to_tops(batch[:len(self.layer_param.top)])

    def close(self) -> None:
        """Stop prefetching and release the data source now."""
        self._prefetcher.close()
