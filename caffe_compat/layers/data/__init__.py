"""Data layers: layers that produce batches from storage or memory."""

from . import data, hdf5_data, hdf5_output, image_data, memory_data, window_data  # noqa: F401
from . import dummy_data  # noqa: F401

__all__: list[str] = []
