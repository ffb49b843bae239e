"""A Python data layer for the tutorial's classifier: coloured-noise images.

Class ``k`` images are a fixed random pattern ``P_k`` plus twice as strong noise, so a small
net learns them in a few dozen iterations. ``param_str`` is a Python dict
literal, as many pycaffe data layers use::

    param_str: "{'batch_size': 10, 'classes': 10, 'shape': (3, 8, 8), 'seed': 1}"
"""

import ast

import caffe
import numpy as np


class ClassPatternsLayer(caffe.Layer):
    def setup(self, bottom, top):
        if len(bottom) != 0 or len(top) != 2:
            raise ValueError("ClassPatternsLayer has no bottoms and two tops (data, label)")
        params = ast.literal_eval(self.param_str) if self.param_str else {}
        self.batch_size = int(params.get("batch_size", 10))
        self.classes = int(params.get("classes", 10))
        self.shape = tuple(params.get("shape", (3, 8, 8)))
        self.rng = np.random.RandomState(int(params.get("seed", 1)))
        self.patterns = self.rng.randn(self.classes, *self.shape).astype(np.float32)

    def reshape(self, bottom, top):
        top[0].reshape(self.batch_size, *self.shape)
        top[1].reshape(self.batch_size)

    def forward(self, bottom, top):
        labels = self.rng.randint(0, self.classes, size=self.batch_size)
        noise = 2 * self.rng.randn(self.batch_size, *self.shape).astype(np.float32)
        top[0].data[...] = self.patterns[labels] + noise
        top[1].data[...] = labels

    def backward(self, top, propagate_down, bottom):
        pass  # a data layer has nothing to propagate
