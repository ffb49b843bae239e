"""HDF5Output: write the two bottoms to an HDF5 file (``hdf5_output_layer.cpp``).

Bottoms: data and label, with equal first dimensions and at most 4 axes.
Tops: none. ``hdf5_output_param.file_name`` is created (truncated) when the
layer is built; each forward writes the datasets ``data`` and ``label`` as
float32 in Caffe's legacy 4-d shape (num, channels, height, width), missing
trailing axes being 1 — a (N,) label is stored as (N, 1, 1, 1).

Differences from Caffe: each forward replaces the two datasets (Caffe keeps
the file open and aborts on the second forward, "Failed to make float
dataset data"); the file is closed between forwards, so it can be read while
the net lives; each write is atomic (a reader sees the previous forward's
file or this one's, never half of one).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import torch

from ...atomic import write_hdf5
from ...errors import DataError, ShapeError
from ...proto import caffe_pb2
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer


def _legacy_shape(shape: Sequence[int], where: str, what: str) -> tuple[int, int, int, int]:
    if len(shape) > 4:
        raise ShapeError(f"{where}: {what} has {len(shape)} axes {list(shape)}; HDF5Output writes "
                         "legacy 4-d blobs (at most 4 axes)")
    return tuple(shape) + (1,) * (4 - len(shape))  # type: ignore[return-value]


@register_layer("HDF5Output")
class HDF5Output(Layer):
    exact_num_bottom = 2
    exact_num_top = 0

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        self.file_name = param.hdf5_output_param.file_name
        if not self.file_name:
            raise self.error("hdf5_output_param.file_name is not set", DataError)
        for shape, what in zip(bottom_shapes, ("data (bottom 0)", "label (bottom 1)")):
            _legacy_shape(shape, self.where, what)
        self._write({})

    def _write(self, arrays: dict[str, np.ndarray]) -> None:
        def fill(f: Any) -> None:
            for name, arr in arrays.items():
                f.create_dataset(name, data=arr)

        write_hdf5(os.path.abspath(self.file_name), fill, self.where)  # a WriteError naming the file

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        return []

    def forward(self, *bottoms: torch.Tensor) -> tuple[torch.Tensor, ...]:
        data, label = bottoms
        if data.is_meta:
            return ()
        if data.shape[0] != label.shape[0]:
            raise self.error(f"data blob and label blob must have the same batch size: "
                             f"{list(data.shape)} vs {list(label.shape)}", ShapeError)
        arrays = {}
        for name, t in (("data", data), ("label", label)):
            shape = _legacy_shape(t.shape, self.where, name)
            arrays[name] = t.detach().to("cpu", torch.float32).numpy().reshape(shape)
        self._write(arrays)
        return ()
