"""Data layers: layers that produce batches from storage or memory."""

from . import dummy_data  # noqa: F401

__all__: list[str] = []
