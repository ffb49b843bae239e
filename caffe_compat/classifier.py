"""pycaffe's ``caffe.Classifier``: a Net that classifies H×W×K images.

Images are resized to ``image_dims`` (default: the net's input size), then
either cut into the 10 oversampled crops (corners, centre, mirrors; the
predictions averaged) or centre-cropped to the input size, preprocessed by a
:class:`~caffe_compat.io.Transformer` (transpose to K×H×W, channel swap,
raw scale, mean, input scale) and forwarded in net-sized batches.

Differences from Caffe (pycaffe): none known.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from . import io as caffe_io
from .net import TEST, Net

__all__ = ["Classifier"]


def input_transformer(net: Net, mean: np.ndarray | None, input_scale: float | None,
                      raw_scale: float | None, channel_swap: Sequence[int] | None
                      ) -> caffe_io.Transformer:
    """The Transformer pycaffe's Classifier and Detector set up for the first input:
    HxWxK images to KxHxW, then the optional mean, scales and channel order."""
    in_ = net.inputs[0]
    transformer = caffe_io.Transformer({in_: net.blobs[in_].data.shape})
    transformer.set_transpose(in_, (2, 0, 1))
    if mean is not None:
        transformer.set_mean(in_, mean)
    if input_scale is not None:
        transformer.set_input_scale(in_, input_scale)
    if raw_scale is not None:
        transformer.set_raw_scale(in_, raw_scale)
    if channel_swap is not None:
        transformer.set_channel_swap(in_, channel_swap)
    return transformer


class Classifier(Net):
    """``Classifier(model_file, pretrained_file, image_dims=None, mean=None,
    input_scale=None, raw_scale=None, channel_swap=None)``."""

    def __init__(self, model_file: Any, pretrained_file: Any, image_dims: Sequence[int] | None = None,
                 mean: np.ndarray | None = None, input_scale: float | None = None,
                 raw_scale: float | None = None, channel_swap: Sequence[int] | None = None) -> None:
        Net.__init__(self, model_file, TEST, weights=pretrained_file)
        in_ = self.inputs[0]
        self.transformer = input_transformer(self, mean, input_scale, raw_scale, channel_swap)
        self.crop_dims = np.array(self.blobs[in_].data.shape[2:])
        self.image_dims: Any = image_dims if image_dims else self.crop_dims

    def predict(self, inputs: Sequence[np.ndarray], oversample: bool = True) -> np.ndarray:
        """(N × classes) predictions for N images (H×W×K arrays).

        ``oversample``: average over the 10 corner/centre/mirror crops (default),
        else classify the centre crop only.
        """
        input_ = np.zeros((len(inputs), self.image_dims[0], self.image_dims[1], inputs[0].shape[2]),
                          dtype=np.float32)
        for ix, in_ in enumerate(inputs):
            input_[ix] = caffe_io.resize_image(in_, self.image_dims)
        if oversample:
            input_ = caffe_io.oversample(input_, self.crop_dims)
        else:
            center = np.array(self.image_dims) / 2.0
            crop = (np.tile(center, (1, 2))[0]
                    + np.concatenate([-self.crop_dims / 2.0, self.crop_dims / 2.0])).astype(int)
            input_ = input_[:, crop[0]:crop[2], crop[1]:crop[3], :]
        in_name = self.inputs[0]
        caffe_in = np.zeros(np.array(input_.shape)[[0, 3, 1, 2]], dtype=np.float32)
        for ix, in_ in enumerate(input_):
            caffe_in[ix] = self.transformer.preprocess(in_name, in_)
        out = self.forward_all(**{in_name: caffe_in})  # type: ignore[attr-defined]
        predictions = out[self.outputs[0]]
        if oversample:
            predictions = predictions.reshape((len(predictions) // 10, 10, -1)).mean(1)
        return predictions
