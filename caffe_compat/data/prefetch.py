"""Background prefetching of batches (Caffe's ``BasePrefetchingDataLayer`` thread).

A :class:`Prefetcher` runs one daemon thread that calls ``source.next_batch()``
and keeps up to ``count`` finished batches in a queue (``data_param.prefetch``,
default 4), so reading and decoding overlap the net's compute. ``count`` 0
loads each batch in the caller's thread when it is asked for.

An exception in the thread is handed to the consumer in order: the batches
read before it come out first, then :meth:`Prefetcher.get` raises it. The
thread never references the layer that owns it, so dropping the net stops it
(the layer registers :meth:`Prefetcher.close` with ``weakref.finalize``).
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Protocol, Sequence

import numpy as np

__all__ = ["BatchSource", "Prefetcher"]

_log = logging.getLogger("caffe_compat")

Batch = Sequence[Any]


class BatchSource(Protocol):
    def next_batch(self) -> Batch: ...

    def close(self) -> None: ...


class _Failure:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _worker(source: BatchSource, q: "queue.Queue[Any]", stop: threading.Event, pin: bool) -> None:
    try:
        while not stop.is_set():
            try:
                item: Any = source.next_batch()
                if pin:
                    item = _pinned(item)
            except BaseException as exc:  # handed to the consumer, not lost
                item = _Failure(exc)
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, _Failure):
                return
    finally:
        try:
            source.close()
        except Exception:  # pragma: no cover - best effort at shutdown
            _log.debug("data source close failed", exc_info=True)


def _pinned(batch: Batch) -> list[Any]:
    import torch

    return [torch.from_numpy(a).pin_memory() if isinstance(a, np.ndarray) else a for a in batch]


class Prefetcher:
    """Batches from ``source``, read ``count`` ahead in a background thread."""

    def __init__(self, source: BatchSource, count: int, name: str = "prefetch",
                 pin_memory: bool = False, start: bool = True) -> None:
        self._source = source
        self._count = int(count)
        self._stop = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._name = name
        self._pin = pin_memory
        # A source that can stop inside a long batch looks at this event.
        if hasattr(source, "stop_requested"):
            source.stop_requested = self._stop  # type: ignore[attr-defined]
        if self._count > 0:
            self._queue: queue.Queue[Any] = queue.Queue(maxsize=self._count)
        if start:
            self.start()

    def start(self) -> None:
        """Start the thread (once; a layer calls this when its net has been checked)."""
        if self._count <= 0 or self._thread is not None or self._closed:
            return
        self._thread = threading.Thread(
            target=_worker, args=(self._source, self._queue, self._stop, self._pin),
            name=f"caffe_compat {self._name}", daemon=True,
        )
        self._thread.start()

    @property
    def count(self) -> int:
        return self._count

    def ready(self) -> int:
        """How many batches are waiting (for tests and benchmarks)."""
        return self._queue.qsize() if self._thread is not None else 0

    @property
    def started(self) -> bool:
        return self._thread is not None

    def get(self) -> Batch:
        if self._closed:
            raise RuntimeError("the data source of this layer was closed")
        if self._count <= 0:
            return self._source.next_batch()
        self.start()  # a layer used outside a net
        item = self._queue.get()
        if isinstance(item, _Failure):
            self._closed = True
            raise item.exc
        return item

    def close(self) -> None:
        """Stop the thread (it finishes the batch it is reading) and release the source."""
        if self._closed and self._thread is None:
            return
        self._closed = True
        self._stop.set()
        if self._thread is None:
            self._source.close()
            return
        while True:  # unblock a put() waiting for room
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._thread = None
