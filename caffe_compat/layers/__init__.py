"""Every Caffe layer type, one module per type, grouped as Caffe groups them.

Importing this package registers all of them; see :mod:`.registry`.
"""

from . import common, data, loss, neuron, python, recurrent, vision
from . import forks  # noqa: F401  (layers of popular Caffe forks)
from .base import Layer, LayerContext, LossLayer
from .registry import get_layer_class, layer_type_list, register_layer

__all__ = [
    "Layer",
    "LayerContext",
    "LossLayer",
    "common",
    "data",
    "get_layer_class",
    "layer_type_list",
    "loss",
    "neuron",
    "python",
    "recurrent",
    "register_layer",
    "vision",
]


def __getattr__(name: str):  # PEP 562
    """``caffe.layers.Convolution(...)``: pycaffe's NetSpec layer factory.

    pycaffe exposes NetSpec's ``layers`` object as ``caffe.layers``; here that
    name is also this package, so attribute names that are not modules of the
    package resolve to NetSpec layer constructors.
    """
    if name.startswith("__"):
        raise AttributeError(name)
    from .. import net_spec

    return getattr(net_spec.layers, name)
