"""Loss layers (and Accuracy, which Caffe groups with them)."""

from . import accuracy, softmax_loss

__all__ = ["accuracy", "softmax_loss"]
