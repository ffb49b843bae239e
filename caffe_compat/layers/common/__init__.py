"""Common layers: wiring and dense algebra."""

from . import inner_product, input, softmax, split

__all__ = ["inner_product", "input", "softmax", "split"]
