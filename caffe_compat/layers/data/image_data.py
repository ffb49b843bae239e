"""ImageData: batches of image files named in a list (``image_data_layer.cpp``).

Bottoms: none. Tops: data (N, C, H, W) float32 after ``transform_param``,
and label (N,). ``image_data_param.source`` lists ``path label`` lines;
each path is read from ``root_folder + path`` (plain string concatenation,
as Caffe does: give the folder a trailing "/"), as colour (BGR, C = 3) or,
with ``is_color: false``, gray (C = 1), resized to new_height × new_width
with OpenCV's bilinear filter when both are set. ``shuffle`` shuffles the
list at setup and after each pass; ``rand_skip`` starts at a random line
below it. The first image of each batch sets the batch's shape.

Differences from Caffe: an unreadable image, or an image of another size
than the first of its batch, is a DataError naming the file and its list
line (Caffe aborts, or reads out of bounds); a label that is not an integer
is an error (Caffe reads 0). Shuffles use our generator, not boost's.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from ...data.image import read_image
from ...data.sources import beside, read_image_list
from ...data.transformer import DataTransformer
from ...errors import DataError
from ..base import Shape
from ..registry import register_layer
from ._base import PrefetchingDataLayer

_log = logging.getLogger("caffe_compat")


class _ListSource:
    def __init__(self, lines: list[tuple[str, int]], start: int, param, transformer: DataTransformer,
                 rng: np.random.Generator, list_file: str, where: str) -> None:
        self.lines = lines
        self.pos = start
        self.p = param
        self.transformer = transformer
        self.rng = rng
        self.list_file = list_file
        self.where = where
        self.cwd = os.getcwd()  # relative paths stay relative to where the net was built

    def read(self, i: int) -> np.ndarray:
        path, _ = self.lines[i]
        full = beside(self.p.root_folder + path, self.list_file, self.cwd)
        try:
            return read_image(full, self.p.new_height, self.p.new_width, self.p.is_color)
        except DataError as exc:
            hint = ""
            if self.p.root_folder and not self.p.root_folder.endswith(("/", os.sep)):
                hint = ' (root_folder is prepended as text: does it need a trailing "/"?)'
            raise DataError(f'{self.where}: could not load "{path}" listed in {self.list_file}: '
                            f"{exc}{hint}") from None

    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        images: list[np.ndarray] = []
        labels: list[int] = []
        for _ in range(self.p.batch_size):
            img = self.read(self.pos)
            if images and img.shape != images[0].shape:
                raise DataError(f'{self.where}: image "{self.lines[self.pos][0]}" is '
                                f"{img.shape[0]}x{img.shape[1]}x{img.shape[2]} but the batch's first "
                                f"image is {'x'.join(map(str, images[0].shape))} (set new_height and "
                                "new_width to resize all images to one size)")
            images.append(img)
            labels.append(self.lines[self.pos][1])
            self.pos += 1
            if self.pos >= len(self.lines):
                _log.debug("Restarting data prefetching from start.")
                self.pos = 0
                if self.p.shuffle:
                    self.rng.shuffle(self.lines)
        batch = np.stack(images).transpose(0, 3, 1, 2)
        return self.transformer.transform(batch), np.asarray(labels, dtype=np.float32)

    def close(self) -> None:
        pass


@register_layer("ImageData")
class ImageData(PrefetchingDataLayer):
    def make_source(self) -> tuple[_ListSource, list[Shape]]:
        p = self.layer_param.image_data_param
        if (p.new_height == 0) != (p.new_width == 0):
            raise self.error("new_height and new_width must be set at the same time", DataError)
        if p.batch_size <= 0:
            raise self.error("image_data_param.batch_size must be > 0", DataError)
        source = self.resolve(p.source)
        lines = read_image_list(source, self.where)
        if p.shuffle:
            self.rng.shuffle(lines)
        start = 0
        if p.rand_skip:
            start = int(self.rng.integers(2**32)) % p.rand_skip
            _log.info("Skipping first %d data points.", start)
            if start >= len(lines):
                raise self.error(f"not enough points to skip: rand_skip drew {start}, the list has "
                                 f"{len(lines)} lines", DataError)
        src = _ListSource(lines, start, p, self.transformer, self.rng, source, self.where)
        first = src.read(start)
        shape = self.transformer.infer_shape((first.shape[2], first.shape[0], first.shape[1]))
        _log.info("A total of %d images. output data size: %d,%d,%d,%d", len(lines), p.batch_size,
                  *shape[1:])
        return src, [(p.batch_size,) + tuple(shape[1:]), (p.batch_size,)]
