"""Vision layers: convolution and pooling families."""

from . import convolution, pooling

__all__ = ["convolution", "pooling"]
