"""WindowData: R-CNN training windows cut from images (``window_data_layer.cpp``).

Bottoms: none. Tops: data (batch_size, C, crop, crop) and label (batch_size,).
The window file lists images and their candidate boxes with an overlap
score; boxes with overlap ≥ fg_threshold are foreground (label > 0 required),
boxes with overlap < bg_threshold background (label and overlap set to 0).
Each batch takes batch_size − ⌊batch_size·fg_fraction⌋ background windows,
then the foreground ones, each drawn at random (TRAIN and TEST alike), reads
its image in colour, grows the box by context_pad pixels of the warped
output (``crop_mode: "square"`` first squares it), clips it to the image,
warps it with OpenCV's bilinear resize, mirrors it at random if
transform_param.mirror, and writes ``(pixel − mean) · window_data_param.scale``
into a zeroed crop_size × crop_size output (transform_param gives crop_size,
mirror and mean_file/mean_value; the mean file is indexed at the centre).

Differences from Caffe: random draws use our generator, not boost's
mt19937; a window with no image, an empty foreground or background set that
is sampled from, or a box outside its image is a DataError (Caffe crashes).
"""

from __future__ import annotations

import logging
import math

import numpy as np

from ...data.image import IMREAD_COLOR, decode, read, resize_linear
from ...data.sources import read_window_file
from ...errors import DataError
from ..base import Shape
from ..registry import register_layer
from ._base import PrefetchingDataLayer

_log = logging.getLogger("caffe_compat")
f32 = np.float32


def _round(x: np.float32) -> int:
    # C's round(): halves away from zero (numpy's rounds them to even).
    return int(math.copysign(math.floor(abs(float(x)) + 0.5), float(x)))


class _WindowSource:
    def __init__(self, layer: "WindowData", images, fg, bg) -> None:  # type: ignore[no-untyped-def]
        p = layer.layer_param.window_data_param
        tp = layer.layer_param.transform_param
        self.p, self.images, self.fg, self.bg = p, images, fg, bg
        self.crop, self.mirror = int(tp.crop_size), bool(tp.mirror)
        self.channels = layer.channels
        self.mean, self.mean_values = layer.transformer.mean, layer.transformer.mean_values
        self.scale = f32(p.scale)
        self.rng, self.where = layer.rng, layer.where
        self.cache: dict[int, bytes] = {}

    def _image(self, index: int) -> np.ndarray:
        img = self.images.get(index)
        if img is None:
            raise DataError(f"{self.where}: window refers to image index {index}, not in the window file")
        if self.p.cache_images:
            if index not in self.cache:
                with open(img.path, "rb") as f:
                    self.cache[index] = f.read()
            return decode(self.cache[index], IMREAD_COLOR, img.path)
        return read(img.path, IMREAD_COLOR)

    def _window(self, out: np.ndarray, window: tuple, do_mirror: bool) -> None:
        index, _, _, x1, y1, x2, y2 = window
        img = self._image(index)
        rows, cols = img.shape[:2]
        crop, pad = self.crop, int(self.p.context_pad)
        out_w = out_h = crop
        pad_w = pad_h = 0
        if pad > 0 or self.p.crop_mode == "square":
            context_scale = f32(crop) / f32(crop - 2 * pad)
            half_h, half_w = f32((y2 - y1 + 1) / 2.0), f32((x2 - x1 + 1) / 2.0)
            cx, cy = f32(x1) + half_w, f32(y1) + half_h
            if self.p.crop_mode == "square":
                half_h = half_w = max(half_h, half_w)
            x1, x2 = _round(cx - half_w * context_scale), _round(cx + half_w * context_scale)
            y1, y2 = _round(cy - half_h * context_scale), _round(cy + half_h * context_scale)
            unclipped_h, unclipped_w = y2 - y1 + 1, x2 - x1 + 1
            px1, py1 = max(0, -x1), max(0, -y1)
            px2, py2 = max(0, x2 - cols + 1), max(0, y2 - rows + 1)
            x1, x2, y1, y2 = x1 + px1, x2 - px2, y1 + py1, y2 - py2
            sx, sy = f32(crop) / f32(unclipped_w), f32(crop) / f32(unclipped_h)
            out_w, out_h = _round(f32(x2 - x1 + 1) * sx), _round(f32(y2 - y1 + 1) * sy)
            px1, px2 = _round(f32(px1) * sx), _round(f32(px2) * sx)
            pad_h = _round(f32(py1) * sy)
            pad_w = px2 if do_mirror else px1  # the padding is mirrored too
            out_h = min(out_h, crop - pad_h)
            out_w = min(out_w, crop - pad_w)
        if not (0 <= x1 <= x2 < cols and 0 <= y1 <= y2 < rows) or out_w <= 0 or out_h <= 0:
            raise DataError(f"{self.where}: window ({x1}, {y1}, {x2}, {y2}) does not fit image "
                            f'"{self.images[index].path}" of {cols}x{rows}')
        patch = resize_linear(img[y1:y2 + 1, x1:x2 + 1], out_h, out_w)
        if do_mirror:
            patch = patch[:, ::-1]
        vals = patch.transpose(2, 0, 1).astype(f32)
        if self.mean is not None:
            off = (self.mean.shape[2] - crop) // 2
            vals -= self.mean[:, off + pad_h:off + pad_h + out_h, off + pad_w:off + pad_w + out_w]
        elif self.mean_values.size:
            vals -= np.broadcast_to(self.mean_values, (self.channels,))[:, None, None]
        out[:, pad_h:pad_h + out_h, pad_w:pad_w + out_w] = vals * self.scale

    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        bs, crop = int(self.p.batch_size), self.crop
        data = np.zeros((bs, self.channels, crop, crop), dtype=f32)
        labels = np.zeros(bs, dtype=f32)
        num_fg = int(f32(bs) * f32(self.p.fg_fraction))
        item = 0
        for pool, count, kind in ((self.bg, bs - num_fg, "background"), (self.fg, num_fg, "foreground")):
            for _ in range(count):
                if not pool:
                    raise DataError(f"{self.where}: no {kind} windows to sample from "
                                    f"(check fg_threshold/bg_threshold)")
                window = pool[int(self.rng.integers(2**32)) % len(pool)]
                do_mirror = self.mirror and bool(self.rng.integers(2**32) % 2)
                self._window(data[item], window, do_mirror)
                labels[item] = window[1]
                item += 1
        return data, labels

    def close(self) -> None:
        self.cache.clear()


@register_layer("WindowData")
class WindowData(PrefetchingDataLayer):
    exact_num_top = 2
    min_top = max_top = None

    def make_source(self) -> tuple[_WindowSource, list[Shape]]:
        p, tp = self.layer_param.window_data_param, self.layer_param.transform_param
        if tp.crop_size <= 0:
            raise self.error("transform_param.crop_size must be > 0 (the warped window size)", DataError)
        if p.batch_size <= 0:
            raise self.error("window_data_param.batch_size must be > 0", DataError)
        images = read_window_file(self.resolve(p.source), p.root_folder, self.where)
        fg, bg = [], []
        for index, img in images.items():
            for label, overlap, x1, y1, x2, y2 in img.windows:
                if f32(overlap) >= f32(p.fg_threshold):
                    if label <= 0:
                        raise self.error(f'foreground window of "{img.path}" has label {label}; '
                                         "foreground labels must be > 0", DataError)
                    fg.append((index, label, overlap, x1, y1, x2, y2))
                elif f32(overlap) < f32(p.bg_threshold):
                    bg.append((index, 0, 0.0, x1, y1, x2, y2))
        # Caffe takes the channel count of the last image record in the file.
        self.channels = list(images.values())[-1].channels
        mv = self.transformer.mean_values.size
        if mv not in (0, 1, self.channels):
            raise self.error(f"specify either 1 mean_value or as many as channels ({self.channels}), "
                             f"got {mv}", DataError)
        _log.info("WindowData: %d images, %d foreground and %d background windows",
                  len(images), len(fg), len(bg))
        shape = [(int(p.batch_size), self.channels, int(tp.crop_size), int(tp.crop_size)),
                 (int(p.batch_size),)]
        return _WindowSource(self, images, fg, bg), shape
