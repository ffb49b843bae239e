"""Vision layers: convolution, pooling and normalization families."""

from . import convolution, lrn, pooling

__all__ = ["convolution", "lrn", "pooling"]
