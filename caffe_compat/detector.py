"""pycaffe's ``caffe.Detector``: classify windows of images (R-CNN style).

``detect_windows([(image file, [(ymin, xmin, ymax, xmax), ...]), ...])`` crops
each window (optionally with ``context_pad`` pixels of surrounding context,
padding outside the image with the mean, as R-CNN's feature extraction does),
warps it to the net's input size through the Transformer and returns one
``{'window', 'prediction', 'filename'}`` dict per window.
``detect_selective_search`` needs the ``selective_search_ijcv_with_python``
package (and MATLAB); without it, it raises a clear error.

Differences from Caffe (pycaffe): the context-padding crop uses integer box
coordinates (pycaffe sliced with floats, which current NumPy rejects; older
NumPy truncated them, and so do we); ``detect_selective_search`` returns the
detections (under Python 3 pycaffe iterated its ``zip`` twice and returned none).
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Sequence

import numpy as np

from . import io as caffe_io
from .errors import UnsupportedError
from .classifier import input_transformer
from .net import TEST, Net

__all__ = ["Detector"]


class Detector(Net):
    """``Detector(model_file, pretrained_file, mean=None, input_scale=None,
    raw_scale=None, channel_swap=None, context_pad=None)``."""

    def __init__(self, model_file: Any, pretrained_file: Any, mean: np.ndarray | None = None,
                 input_scale: float | None = None, raw_scale: float | None = None,
                 channel_swap: Sequence[int] | None = None, context_pad: int | None = None) -> None:
        Net.__init__(self, model_file, TEST, weights=pretrained_file)
        self.transformer = input_transformer(self, mean, input_scale, raw_scale, channel_swap)
        self.configure_crop(context_pad)

    def detect_windows(self, images_windows: Iterable[tuple[str, Sequence[Sequence[int]]]]
                       ) -> list[dict[str, Any]]:
        """Predictions for each (image file, windows) pair; windows are (ymin, xmin, ymax, xmax)."""
        images_windows = [(fname, list(windows)) for fname, windows in images_windows]
        window_inputs = []
        for image_fname, windows in images_windows:
            image = caffe_io.load_image(image_fname).astype(np.float32)
            for window in windows:
                window_inputs.append(self.crop(image, window))
        in_ = self.inputs[0]
        caffe_in = np.zeros((len(window_inputs), window_inputs[0].shape[2])
                            + self.blobs[in_].data.shape[2:], dtype=np.float32)
        for ix, window_in in enumerate(window_inputs):
            caffe_in[ix] = self.transformer.preprocess(in_, window_in)
        predictions = self.forward_all(**{in_: caffe_in})[self.outputs[0]]  # type: ignore[attr-defined]
        detections = []
        ix = 0
        for image_fname, windows in images_windows:
            for window in windows:
                detections.append({"window": window, "prediction": predictions[ix],
                                   "filename": image_fname})
                ix += 1
        return detections

    def detect_selective_search(self, image_fnames: Sequence[str]) -> list[dict[str, Any]]:
        """Windowed detection over Selective Search proposals (needs its MATLAB tool)."""
        try:
            import selective_search_ijcv_with_python as selective_search
        except ImportError:
            raise UnsupportedError(
                "Detector.detect_selective_search needs the selective_search_ijcv_with_python "
                "package (https://github.com/sergeyk/selective_search_ijcv_with_python) and MATLAB; "
                "compute proposals another way and call detect_windows"
            ) from None
        image_fnames = [os.path.abspath(f) for f in image_fnames]  # MATLAB needs absolute paths
        windows_list = selective_search.get_windows(image_fnames, cmd="selective_search_rcnn")
        return self.detect_windows(list(zip(image_fnames, windows_list)))

    def crop(self, im: np.ndarray, window: Sequence[int]) -> np.ndarray:
        """The window of ``im`` (H×W×K), with ``context_pad`` context when configured."""
        win = np.asarray(window)
        crop = im[win[0]:win[2], win[1]:win[3]]
        if not self.context_pad:
            return crop
        box = win.astype(np.float64)
        crop_size = self.blobs[self.inputs[0]].width  # assumes square inputs, as R-CNN
        scale = crop_size / (1.0 * crop_size - self.context_pad * 2)
        half_h = (box[2] - box[0] + 1) / 2.0
        half_w = (box[3] - box[1] + 1) / 2.0
        center = (box[0] + half_h, box[1] + half_w)
        scaled = scale * np.array((-half_h, -half_w, half_h, half_w))
        box = np.round(np.tile(center, 2) + scaled)
        scale_h = crop_size / (box[2] - box[0] + 1)
        scale_w = crop_size / (box[3] - box[1] + 1)
        pad_y = int(round(max(0, -box[0]) * scale_h))  # context beyond the image edge
        pad_x = int(round(max(0, -box[1]) * scale_w))
        im_h, im_w = im.shape[:2]
        box = np.clip(box, 0.0, [im_h, im_w, im_h, im_w])
        clip_h = box[2] - box[0] + 1
        clip_w = box[3] - box[1] + 1
        if not (clip_h > 0 and clip_w > 0):
            raise ValueError(f"Detector.crop: window {list(win)} lies outside the "
                             f"{im_h}×{im_w} image")
        crop_h = min(int(round(clip_h * scale_h)), crop_size - pad_y)
        crop_w = min(int(round(clip_w * scale_w)), crop_size - pad_x)
        b = box.astype(int)  # pycaffe's float slice bounds, truncated as old NumPy did
        context_crop = caffe_io.resize_image(im[b[0]:b[2], b[1]:b[3]], (crop_h, crop_w))
        crop = np.ones(self.crop_dims, dtype=np.float32) * self.crop_mean
        crop[pad_y:pad_y + crop_h, pad_x:pad_x + crop_w] = context_crop
        return crop

    def configure_crop(self, context_pad: int | None) -> None:
        """Set the crop size (H, W, K) and, with context padding, the mean used as padding."""
        in_ = self.inputs[0]
        tpose = self.transformer.transpose[in_]
        inv_tpose = [tpose[t] for t in tpose]
        self.crop_dims = np.array(self.blobs[in_].data.shape[1:])[inv_tpose]
        self.context_pad = context_pad
        if not self.context_pad:
            return
        transpose = tpose
        channel_order = self.transformer.channel_swap.get(in_)
        raw_scale = self.transformer.raw_scale.get(in_)
        mean = self.transformer.mean.get(in_)
        if mean is None:
            self.crop_mean = np.zeros(self.crop_dims, dtype=np.float32)
            return
        # The padding is placed before preprocessing: the mean in unprocessed input space.
        crop_mean = mean.copy().transpose([transpose[t] for t in transpose])
        if channel_order is not None:
            order = list(channel_order)
            crop_mean = crop_mean[:, :, [order.index(i) for i in range(crop_mean.shape[2])]]
        if raw_scale is not None:
            crop_mean /= raw_scale
        self.crop_mean = crop_mean
