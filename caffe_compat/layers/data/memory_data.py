"""MemoryData: batches from arrays in memory (``memory_data_layer.cpp``).

Bottoms: none. Tops: data (batch_size, channels, height, width) and label —
(batch_size,) before the first forward, then (batch_size, 1, 1, 1) as in
Caffe. ``net.set_input_arrays(data, labels)`` (pycaffe) hands the layer an
N × C × H × W float32 array and N labels, N a multiple of batch_size; each
forward returns the next batch_size rows, wrapping round. The arrays are
used in place, not copied (change them and later forwards see the change),
and no transform_param is applied to them (Caffe warns so too).
:meth:`MemoryData.add_datum_vector` / :meth:`add_mat_vector` (Caffe's C++
AddDatumVector / AddMatVector) do apply the transformer.

Differences from Caffe: none known; errors of ``set_input_arrays`` are
RuntimeErrors with pycaffe's messages.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import torch

from ...data.datum import datum_image_flag, datums_to_batch
from ...errors import DataError, LayerError
from ...proto import caffe_pb2
from ..base import LayerContext, Shape
from ..registry import register_layer
from ._base import DataLayerBase

_log = logging.getLogger("caffe_compat")


class InputArrayError(LayerError, RuntimeError):
    """pycaffe raises RuntimeError for bad ``set_input_arrays`` arguments."""


@register_layer("MemoryData")
class MemoryData(DataLayerBase):
    exact_num_top = 2
    min_top = max_top = None

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.memory_data_param
        self.batch_size, self.channels, self.height, self.width = (
            int(p.batch_size), int(p.channels), int(p.height), int(p.width))
        if min(self.batch_size, self.channels, self.height, self.width) <= 0:
            raise self.error("batch_size, channels, height, and width must be specified and "
                             "positive in memory_data_param", DataError)
        self._shapes = [(self.batch_size, self.channels, self.height, self.width), (self.batch_size,)]
        self._data: torch.Tensor | None = None
        self._labels: torch.Tensor | None = None
        self._n = 0
        self._pos = 0
        self.has_new_data = False

    def reset(self, data: np.ndarray, labels: np.ndarray, n: int) -> None:
        """Caffe's ``Reset``: serve ``data``/``labels`` (used in place) from row 0."""
        if n % self.batch_size:
            raise InputArrayError(f"{self.where}: n must be a multiple of batch size "
                                  f"({n} vs {self.batch_size})")
        if self.layer_param.HasField("transform_param"):
            _log.warning("%s does not transform array data on Reset()", self.type)
        self._data = torch.from_numpy(data).reshape(n, self.channels, self.height, self.width)
        self._labels = torch.from_numpy(labels).reshape(n, 1, 1, 1)
        self._n, self._pos = n, 0

    def set_batch_size(self, new_size: int) -> None:
        if self.has_new_data:
            raise self.error("can't change batch_size until current data has been consumed")
        self.batch_size = int(new_size)
        self._shapes = [(self.batch_size, self.channels, self.height, self.width), (self.batch_size,)]

    def add_datum_vector(self, datums: Sequence[caffe_pb2.Datum]) -> None:
        """Transform ``datums`` with transform_param and serve them."""
        tp = self.transformer
        batch = datums_to_batch(list(datums), datum_image_flag(tp.force_color, tp.force_gray))
        labels = np.array([d.label for d in datums], dtype=np.float32)
        self._add(tp.transform(batch), labels)

    def add_mat_vector(self, images: Sequence[np.ndarray], labels: Sequence[int]) -> None:
        """Transform (H, W, C) BGR uint8 images with transform_param and serve them."""
        batch = np.stack([np.asarray(i) for i in images]).transpose(0, 3, 1, 2)
        self._add(self.transformer.transform(batch), np.asarray(labels, dtype=np.float32))

    def _add(self, data: np.ndarray, labels: np.ndarray) -> None:
        if self.has_new_data:
            raise self.error("can't add data until current data has been consumed")
        if not len(data) or len(data) % self.batch_size:
            raise self.error(f"the added data must be a non-empty multiple of the batch size "
                             f"{self.batch_size}, got {len(data)} items", DataError)
        if data.shape[1:] != (self.channels, self.height, self.width):
            raise self.error(f"transformed items have shape {list(data.shape[1:])}, memory_data_param "
                             f"says {[self.channels, self.height, self.width]}", DataError)
        self.reset(np.ascontiguousarray(data), labels, len(data))
        self.has_new_data = True

    def forward(self, *bottoms: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self._data is None or self._labels is None:
            raise self.error("needs to be initialized by calling Reset: call "
                             "net.set_input_arrays(data, labels) before forward", DataError)
        b, pos = self.batch_size, self._pos
        tops = (self._data[pos:pos + b], self._labels[pos:pos + b])
        self._pos = (pos + b) % self._n
        if self._pos == 0:
            self.has_new_data = False
        return self._to_tops(tops)


def set_input_arrays(net: Any, data: np.ndarray, labels: np.ndarray) -> None:
    """pycaffe's ``Net.set_input_arrays``: feed the net's first (MemoryData) layer."""
    layer = net.layers[0] if len(net.layers) else None
    if not isinstance(layer, MemoryData):
        raise InputArrayError("set_input_arrays may only be called if the first layer is a "
                              "MemoryDataLayer")
    if labels.ndim == 1:
        labels = np.ascontiguousarray(labels[:, np.newaxis, np.newaxis, np.newaxis])
    for arr, name, dims in ((data, "data array", (layer.channels, layer.height, layer.width)),
                            (labels, "labels array", (1, 1, 1))):
        # pycaffe's messages, then what was expected and what came
        if not arr.flags["C_CONTIGUOUS"]:
            raise InputArrayError(f"{name} must be C contiguous (got strides {list(arr.strides)} for "
                                  f"shape {list(arr.shape)}; pass np.ascontiguousarray(...))")
        if arr.ndim != 4:
            raise InputArrayError(f"{name} must be 4-d: expected N x {' x '.join(map(str, dims))}, got "
                                  f"shape {list(arr.shape)}")
        if arr.dtype != np.float32:
            raise InputArrayError(f"{name} must be float32, got {arr.dtype}")
        for axis, what in zip(range(1, 4), ("channels", "height", "width")):
            if arr.shape[axis] != dims[axis - 1]:
                head = f"{name} has wrong " + ("number of channels" if what == "channels" else what)
                raise InputArrayError(
                    head + f": expected {dims[axis - 1]} ({layer.where}: N x {' x '.join(map(str, dims))}), "
                    f"got {arr.shape[axis]} (shape {list(arr.shape)})")
    if data.shape[0] != labels.shape[0]:
        raise InputArrayError(f"data and labels must have the same first dimension: {data.shape[0]} data "
                              f"items, {labels.shape[0]} labels")
    if data.shape[0] % layer.batch_size:
        raise InputArrayError(f"first dimensions of input arrays must be a multiple of batch size: got "
                              f"{data.shape[0]} items, batch size {layer.batch_size} ({layer.where})")
    net._input_arrays = (data, labels)  # pycaffe keeps them alive with the net
    layer.reset(data, labels, data.shape[0])
