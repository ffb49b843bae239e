"""Vision layers: convolution, pooling and normalization families."""

from . import convolution, lrn, pooling
from . import im2col, spp  # noqa: F401

__all__ = ["convolution", "lrn", "pooling"]
