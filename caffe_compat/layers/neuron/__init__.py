"""Neuron layers: element-wise functions of one bottom."""

from . import absval, bnll, dropout, elu, exp, log, power, prelu, relu, sigmoid, tanh, threshold

__all__ = [
    "absval", "bnll", "dropout", "elu", "exp", "log", "power", "prelu", "relu", "sigmoid", "tanh",
    "threshold",
]
