"""Data layers: layers that produce batches from storage or memory."""

__all__: list[str] = []
