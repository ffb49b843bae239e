"""Common layers: wiring and dense algebra."""

from . import inner_product, input, softmax, split
from . import batch_norm, bias, concat, crop, eltwise, flatten, reshape, scale, silence, slice
from . import argmax, batch_reindex, embed, filter, mvn, parameter, reduction, tile  # noqa: F401

__all__ = ["inner_product", "input", "softmax", "split"]
__all__ += ["batch_norm", "bias", "concat", "crop", "eltwise", "flatten", "reshape", "scale",
            "silence", "slice"]
