"""Caffe's ``DataTransformer`` (``src/caffe/data_transformer.cpp``) on whole batches.

For every item, in Caffe's order: decide the mirror (``mirror`` and a coin
flip — at TEST as well as TRAIN), then the crop offsets (random at TRAIN,
``(H - crop) // 2`` at TEST), then compute in float32

    out[c, h, w'] = (x[c, h_off + h, w_off + w] - mean) * scale

where ``mean`` is the mean file's value at the *uncropped* position, or the
per-channel ``mean_value`` (one value is used for every channel), and
``w' = crop - 1 - w`` for mirrored items. ``force_color``/``force_gray`` only
change how *encoded* Datums are decoded (see :mod:`.datum`).

Random choices come from a numpy generator the layer seeds from
``caffe.set_random_seed`` / the solver's ``random_seed`` when it is built, so
a run is reproducible whatever the prefetch thread's timing.

Differences from Caffe: Caffe draws from boost's mt19937, so which items are
mirrored/cropped where differs from a real Caffe run with the same seed (the
distribution is the same).
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np

from ..errors import DataError
from ..proto import caffe_pb2
from ..proto.files import read_binary

__all__ = ["DataTransformer", "load_mean_file"]

Resolver = Callable[[str], str]


def load_mean_file(path: str, what: str = "mean_file") -> np.ndarray:
    """A binaryproto mean (as compute_image_mean writes it) as a (C, H, W) float32 array."""
    from ..layers.base import blob_proto_to_tensor

    try:
        proto = read_binary(path, caffe_pb2.BlobProto())
        mean = blob_proto_to_tensor(proto).numpy()
    except Exception as exc:
        raise DataError(f'{what} "{path}": cannot read a BlobProto: {exc}') from None
    if mean.ndim == 4 and mean.shape[0] == 1:
        mean = mean[0]
    if mean.ndim != 3:
        raise DataError(f'{what} "{path}": expected a 1 x C x H x W blob, got shape {list(mean.shape)}')
    return np.ascontiguousarray(mean, dtype=np.float32)


class DataTransformer:
    """Scale, mean, crop and mirror exactly as Caffe's DataTransformer."""

    def __init__(self, param: caffe_pb2.TransformationParameter, phase: int,
                 rng: np.random.Generator | None = None, where: str = "transform_param",
                 resolve: Resolver | None = None) -> None:
        self.where = where
        self.phase = phase
        self.rng = rng if rng is not None else np.random.default_rng()
        self.scale = np.float32(param.scale)
        self.mirror = bool(param.mirror)
        self.crop = int(param.crop_size)
        self.force_color = bool(param.force_color)
        self.force_gray = bool(param.force_gray)
        if self.force_color and self.force_gray:
            raise DataError(f"{where}: cannot set both force_color and force_gray")
        self.mean: np.ndarray | None = None
        self.mean_path = ""
        self.mean_values = np.asarray(param.mean_value, dtype=np.float32)
        if param.HasField("mean_file"):
            if len(param.mean_value):
                raise DataError(f"{where}: cannot specify mean_file and mean_value at the same time")
            path = resolve(param.mean_file) if resolve else param.mean_file
            self.mean = load_mean_file(path, f"{where}: mean_file")
            self.mean_path = path

    @property
    def needs_rand(self) -> bool:
        return self.mirror or (self.phase == caffe_pb2.TRAIN and self.crop > 0)

    def infer_shape(self, item_shape: Sequence[int]) -> tuple[int, int, int, int]:
        """``InferBlobShape``: (1, C, h, w) of one transformed (C, H, W) item."""
        c, h, w = (int(d) for d in item_shape)
        if c <= 0:
            raise DataError(f"{self.where}: items must have at least one channel, got shape {[c, h, w]}")
        if self.crop and (h < self.crop or w < self.crop):
            raise DataError(f"{self.where}: crop_size {self.crop} is larger than the "
                            f"{h}x{w} item")
        return (1, c, self.crop or h, self.crop or w)

    def _check(self, shape: tuple[int, ...]) -> None:
        _, c, h, w = shape
        self.infer_shape((c, h, w))
        if self.mean is not None and self.mean.shape != (c, h, w):
            raise DataError(f'{self.where}: mean_file "{self.mean_path}" has shape {list(self.mean.shape)} '
                            f"but the data items have shape {[c, h, w]} (the mean must match the uncropped "
                            "items)")
        if self.mean_values.size not in (0, 1, c):
            raise DataError(f"{self.where}: specify either 1 mean_value or as many as channels "
                            f"({c}), got {self.mean_values.size}")

    def transform(self, batch: np.ndarray) -> np.ndarray:
        """Transform an (N, C, H, W) uint8 or float32 batch; returns float32."""
        if batch.ndim != 4:
            raise DataError(f"{self.where}: expected an N x C x H x W batch, got shape {list(batch.shape)}")
        self._check(batch.shape)
        n, c, h, w = batch.shape
        cs = self.crop
        mirror = np.zeros(n, dtype=bool)
        offsets = np.zeros((n, 2), dtype=np.int64)
        for i in range(n):  # Caffe's per-item order of random draws
            mirror[i] = self.mirror and bool(self.rng.integers(2))
            if cs:
                if self.phase == caffe_pb2.TRAIN:
                    offsets[i] = (self.rng.integers(h - cs + 1), self.rng.integers(w - cs + 1))
                else:
                    offsets[i] = ((h - cs) // 2, (w - cs) // 2)
        if not cs or self.phase != caffe_pb2.TRAIN or n == 0:
            ho, wo = offsets[0] if n else (0, 0)
            out = self._values(batch, ho, wo, h if not cs else cs, w if not cs else cs)
        else:
            out = np.empty((n, c, cs, cs), dtype=np.float32)
            for i in range(n):
                ho, wo = offsets[i]
                out[i] = self._values(batch[i:i + 1], ho, wo, cs, cs)[0]
        if mirror.any():
            out[mirror] = out[mirror][..., ::-1]
        return out

    def _values(self, x: np.ndarray, ho: int, wo: int, hh: int, ww: int) -> np.ndarray:
        x = x[:, :, ho:ho + hh, wo:wo + ww].astype(np.float32)
        if self.mean is not None:
            x -= self.mean[None, :, ho:ho + hh, wo:wo + ww]
        elif self.mean_values.size:
            mv = np.broadcast_to(self.mean_values, (x.shape[1],)) if self.mean_values.size == 1 \
                else self.mean_values
            x -= mv[None, :, None, None]
        x *= self.scale
        return x

    def transform_image(self, img: np.ndarray) -> np.ndarray:
        """One (H, W, C) image (a cv::Mat) → transformed (C, h, w) float32."""
        chw = np.ascontiguousarray(np.asarray(img).transpose(2, 0, 1))
        return self.transform(chw[None])[0]


def resolver(base_dir: "os.PathLike[str] | str | None") -> Resolver:
    """Resolve a relative path as Caffe does (from the working directory),
    falling back to the prototxt's directory when that does not exist."""

    def resolve(path: str) -> str:
        if not path or os.path.isabs(path) or os.path.exists(path) or base_dir is None:
            return path
        alt = os.path.join(os.fspath(base_dir), path)
        return alt if os.path.exists(alt) else path

    return resolve
