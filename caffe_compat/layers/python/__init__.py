"""Layers whose code the user writes: pycaffe's ``type: "Python"`` (numpy, or torch
through :class:`caffe_compat.torch_layer.TorchLayer`) and ``.caffeinit`` names."""

from . import python  # noqa: F401
