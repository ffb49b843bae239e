"""Loss layers (and Accuracy, which Caffe groups with them)."""

from . import (
    accuracy,
    contrastive_loss,
    euclidean_loss,
    hinge_loss,
    infogain_loss,
    l1_loss,
    multinomial_logistic_loss,
    sigmoid_cross_entropy_loss,
    smooth_l1_loss,
    softmax_loss,
)

__all__ = [
    "accuracy",
    "contrastive_loss",
    "euclidean_loss",
    "hinge_loss",
    "infogain_loss",
    "l1_loss",
    "multinomial_logistic_loss",
    "sigmoid_cross_entropy_loss",
    "smooth_l1_loss",
    "softmax_loss",
]
