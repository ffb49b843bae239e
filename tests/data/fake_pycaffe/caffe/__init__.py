"""A stand-in pycaffe for tests/test_verify.py: caffe_compat under the name ``caffe``.

``FAKE_PYCAFFE_SKEW=<blob>`` adds 0.5 to that blob after each forward (a
reference that disagrees); ``FAKE_PYCAFFE_FAIL=1`` makes building a net fail.
"""

import os

from caffe_compat import *  # noqa: F401,F403
from caffe_compat import Net as _Net


class Net(_Net):
    def __init__(self, *args, **kwargs):
        if os.environ.get("FAKE_PYCAFFE_FAIL"):
            raise RuntimeError("fake pycaffe: asked to fail")
        super().__init__(*args, **kwargs)

    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        skew = os.environ.get("FAKE_PYCAFFE_SKEW")
        if skew:
            self.blobs[skew].data[...] += 0.5
        return out
