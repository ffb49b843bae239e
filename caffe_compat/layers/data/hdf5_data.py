"""HDF5Data: rows of HDF5 datasets, one top per dataset (``hdf5_data_layer.cpp``).

Bottoms: none. Tops: one per name in ``top``, each read from the dataset of
that name; top i has shape (batch_size, *dataset_i.shape[1:]), values as
float32. ``hdf5_data_param.source`` is a text file listing .h5 files (paths
relative to the working directory, or else to the list file). Rows are taken
in order across files; a batch may span the end of one file and the start of
the next. Each file is loaded whole when reached (as in Caffe). ``shuffle``
permutes the file order at setup and at each new pass, and the rows of each
file when it is loaded. No transform_param is applied.

Differences from Caffe: a missing file or dataset, datasets of unequal row
counts, or a later file whose row shape differs from the first is a DataError
naming the file and dataset (Caffe aborts or copies wrong rows). Shuffles use
our generator, not std::random_shuffle.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ... import mode
from ...data.sources import read_hdf5_list
from ...errors import DataError
from ...proto import caffe_pb2
from ..base import LayerContext, Shape
from ..registry import register_layer
from ._base import DataLayerBase


def load_hdf5_file(path: str, names: Sequence[str], where: str) -> list[np.ndarray]:
    """The named datasets of one file as float32 arrays with equal row counts."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise DataError(f'{where}: failed opening HDF5 file "{path}": {exc}') from None
    with f:
        arrays = []
        for name in names:
            if name not in f or not isinstance(f[name], h5py.Dataset):
                have = ", ".join(sorted(k for k in f.keys() if isinstance(f[k], h5py.Dataset))) or "none"
                raise DataError(f'{where}: HDF5 file "{path}" has no dataset "{name}" '
                                f"(top names must be dataset names; datasets: {have})")
            ds = f[name]
            if ds.ndim < 1 or ds.dtype.kind not in "fiub":
                raise DataError(f'{where}: dataset "{name}" in "{path}" must be a numeric array '
                                f"with at least 1 axis, got {ds.dtype} of shape {list(ds.shape)}")
            arrays.append(np.asarray(ds[()], dtype=np.float32))
    num = arrays[0].shape[0]
    for name, arr in zip(names, arrays):
        if arr.shape[0] != num:
            raise DataError(f'{where}: dataset "{name}" in "{path}" has {arr.shape[0]} rows but '
                            f'"{names[0]}" has {num}')
    return arrays


@register_layer("HDF5Data")
class HDF5Data(DataLayerBase):
    max_top = None

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        p = param.hdf5_data_param
        self.batch_size = int(p.batch_size)
        if self.batch_size <= 0:
            raise self.error("hdf5_data_param.batch_size must be > 0", DataError)
        self.names = list(param.top)
        self.files = read_hdf5_list(self.resolve(p.source), self.where)
        self.shuffle = p.shuffle
        self.file_order = np.arange(len(self.files))
        if self.shuffle:
            self.rng.shuffle(self.file_order)
        self.current_file = 0
        self._load(self.file_order[0])
        self._shapes = [(self.batch_size,) + a.shape[1:] for a in self.arrays]
        self.row_shapes = [a.shape[1:] for a in self.arrays]
        self.offset = 0

    def _load(self, index: int) -> None:
        self.path = self.files[index]
        self.arrays = load_hdf5_file(self.path, self.names, self.where)
        for name, arr in zip(self.names, self.arrays):
            want = getattr(self, "row_shapes", None)
            if want is not None and arr.shape[1:] != want[self.names.index(name)]:
                raise DataError(f'{self.where}: dataset "{name}" in "{self.path}" has rows of shape '
                                f"{list(arr.shape[1:])}, the first file's have "
                                f"{list(want[self.names.index(name)])}")
        self.rows = np.arange(self.arrays[0].shape[0])
        if self.shuffle:
            self.rng.shuffle(self.rows)
        self.current_row = 0

    def _next(self) -> None:
        self.current_row += 1
        if self.current_row == len(self.rows):
            if len(self.files) > 1:
                self.current_file += 1
                if self.current_file == len(self.files):
                    self.current_file = 0
                    if self.shuffle:
                        self.rng.shuffle(self.file_order)
                self._load(self.file_order[self.current_file])
            elif self.shuffle:
                self.rng.shuffle(self.rows)
            self.current_row = 0
        self.offset += 1

    def _skip(self) -> bool:
        count = mode.solver_count()
        return self.phase == caffe_pb2.TRAIN and count > 1 and self.offset % count != mode.solver_rank()

    def forward(self, *bottoms: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not len(self.rows):
            raise self.error(f'HDF5 file "{self.path}" has no rows', DataError)
        out = [np.empty((self.batch_size,) + shape, dtype=np.float32) for shape in self.row_shapes]
        for i in range(self.batch_size):
            while self._skip():
                self._next()
            row = self.rows[self.current_row]
            for arr, dst in zip(self.arrays, out):
                dst[i] = arr[row]
            self._next()
        return self._to_tops(out)
