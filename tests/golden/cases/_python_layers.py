"""Python layers used by the golden cases in ``python.py`` (Python 3.9, numpy).

``import caffe`` is the real pycaffe when the fixtures are generated and
caffe_compat (its ``import caffe`` alias) when they are replayed, so the same
layer code runs on both sides.
"""

import caffe
import numpy as np


class Scale(caffe.Layer):
    """y = s * x with s from param_str."""

    def setup(self, bottom, top):
        self.s = float(self.param_str)

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.s * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = self.s * top[0].diff


class ChannelScale(caffe.Layer):
    """y[n, c, ...] = w[c] * x[n, c, ...] with a learnable w (one blob)."""

    def setup(self, bottom, top):
        self.blobs.add_blob(bottom[0].data.shape[1])
        self.blobs[0].data[...] = 1

    def _w(self, x):
        return self.blobs[0].data.reshape((1, -1) + (1,) * (x.ndim - 2))

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data * self._w(bottom[0].data)

    def backward(self, top, propagate_down, bottom):
        x, dy = bottom[0].data, top[0].diff
        axes = (0,) + tuple(range(2, x.ndim))
        self.blobs[0].diff[...] += (dy * x).sum(axis=axes)
        if propagate_down[0]:
            bottom[0].diff[...] = dy * self._w(x)


class EuclideanLoss(caffe.Layer):
    """sum((a - b)^2) / (2 N), gradients to both bottoms (pycaffe's example layer)."""

    def setup(self, bottom, top):
        if len(bottom) != 2:
            raise ValueError("EuclideanLoss needs two bottoms")
        top[0].reshape(1)

    def reshape(self, bottom, top):
        if bottom[0].count != bottom[1].count:
            raise ValueError("inputs must have the same count")
        self.diff = np.zeros_like(bottom[0].data, dtype=np.float32)

    def forward(self, bottom, top):
        self.diff[...] = bottom[0].data - bottom[1].data
        top[0].data[...] = np.sum(self.diff ** 2) / bottom[0].num / 2.0

    def backward(self, top, propagate_down, bottom):
        for i, sign in ((0, 1), (1, -1)):
            if propagate_down[i]:
                bottom[i].diff[...] = sign * self.diff * top[0].diff[0] / bottom[i].num


class SumAndProduct(caffe.Layer):
    """Two bottoms, two tops: a + b and a * b."""

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)
        top[1].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        a, b = bottom[0].data, bottom[1].data
        top[0].data[...] = a + b
        top[1].data[...] = a * b

    def backward(self, top, propagate_down, bottom):
        a, b = bottom[0].data, bottom[1].data
        ds, dp = top[0].diff, top[1].diff
        if propagate_down[0]:
            bottom[0].diff[...] = ds + dp * b
        if propagate_down[1]:
            bottom[1].diff[...] = ds + dp * a


class NegateFirstRow(caffe.Layer):
    """Meant to run in place: negates row 0 and leaves the other rows alone."""

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[0] = -bottom[0].data[0]

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[0] = -top[0].diff[0]


class RandomRegression(caffe.Layer):
    """A data layer: param_str "seed,batch,dim"; the same batch every pass."""

    def setup(self, bottom, top):
        seed, self.batch, self.dim = (int(v) for v in self.param_str.split(","))
        rng = np.random.RandomState(seed)
        self.x = rng.randn(self.batch, self.dim).astype(np.float32)
        self.y = (self.x.sum(axis=1, keepdims=True) * 0.5).astype(np.float32)

    def reshape(self, bottom, top):
        top[0].reshape(self.batch, self.dim)
        top[1].reshape(self.batch, 1)

    def forward(self, bottom, top):
        top[0].data[...] = self.x
        top[1].data[...] = self.y

    def backward(self, top, propagate_down, bottom):
        pass


class PhaseGate(caffe.Layer):
    """y = x at TRAIN, 2 x at TEST (reads self.phase)."""

    def setup(self, bottom, top):
        self.k = 1.0 if self.phase == caffe.TRAIN else 2.0

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.k * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = self.k * top[0].diff
