"""A Python data layer for the custom-loss scenario: a noisy linear regression.

Each batch holds ``x ~ N(0, 1)`` (batch_size x dim) and ``y = x W + 0.05 noise``
(batch_size x outputs) for a fixed random ``W``, so the loss can fall close to
zero. ``param_str`` is a Python dict literal::

    param_str: "{'batch_size': 16, 'dim': 8, 'outputs': 2, 'seed': 0}"
"""

import ast

import caffe
import numpy as np


class RegressionDataLayer(caffe.Layer):
    def setup(self, bottom, top):
        if len(bottom) != 0 or len(top) != 2:
            raise ValueError("RegressionDataLayer has no bottoms and two tops (data, label)")
        params = ast.literal_eval(self.param_str) if self.param_str else {}
        self.batch_size = int(params.get("batch_size", 16))
        self.dim = int(params.get("dim", 8))
        self.outputs = int(params.get("outputs", 2))
        self.rng = np.random.RandomState(int(params.get("seed", 0)))
        self.w = self.rng.randn(self.dim, self.outputs).astype(np.float32)

    def reshape(self, bottom, top):
        top[0].reshape(self.batch_size, self.dim)
        top[1].reshape(self.batch_size, self.outputs)

    def forward(self, bottom, top):
        x = self.rng.randn(self.batch_size, self.dim).astype(np.float32)
        top[0].data[...] = x
        top[1].data[...] = x @ self.w + 0.05 * self.rng.randn(self.batch_size, self.outputs)

    def backward(self, top, propagate_down, bottom):
        pass
