"""Neuron layers: element-wise functions of one bottom."""

from . import relu

__all__ = ["relu"]
