"""Neuron layers: element-wise functions of one bottom."""

from . import absval, bnll, dropout, elu, exp, log, power, prelu, relu, sigmoid, tanh, threshold
from . import clip, swish  # noqa: F401

__all__ = [
    "absval", "bnll", "dropout", "elu", "exp", "log", "power", "prelu", "relu", "sigmoid", "tanh",
    "threshold",
]
