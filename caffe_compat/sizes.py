"""Sizes checked when a net is built, before anything is allocated.

Caffe refuses a blob of more than INT_MAX elements the moment it is shaped
(``Blob::Reshape``, ``blob.cpp``); :func:`caffe_compat.blob.as_shape` makes
that check, and the net applies it to every shape it will allocate: each
parameter blob before its filler runs (``Layer.add_param``), each top
shape a layer's formula gives, and each data layer's batch before its
prefetch thread exists.

:func:`check_host_memory` adds one sanity check on the total, made only where
Caffe could not run the net either: Caffe fills every parameter blob and
zeroes every prefetch buffer when the net is set up (and, on the CPU, keeps
every top blob after the first forward), so a net whose sum of those exceeds
the machine's memory and swap would be killed by the kernel in Caffe too.
Refusing it at once, with the largest items named, beats a thread that eats
memory until the process dies.
"""

from __future__ import annotations

import os
from typing import Sequence

from .errors import NetError

__all__ = ["INT_MAX", "FLOAT_BYTES", "memory_limit", "MemoryBudget", "check_host_memory", "format_bytes"]

INT_MAX = 2**31 - 1
FLOAT_BYTES = 4  # Caffe's Dtype float


def format_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _meminfo(key: str) -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():
            return int(text)
    return None


def memory_limit() -> int | None:
    """Bytes this process could ever touch: physical memory (or the cgroup's
    limit, if lower) plus swap; None where it cannot be told."""
    physical = _meminfo("MemTotal")
    if physical is None:
        try:
            physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    cgroup = _cgroup_limit()
    if cgroup is not None:
        physical = min(physical, cgroup)
    return physical + (_meminfo("SwapTotal") or 0)


class MemoryBudget:
    """The host memory a net being built will hold, checked as it grows.

    ``Layer.add_param`` adds each parameter blob *before* its filler runs, so
    a net whose parameters alone exceed memory and swap is refused before the
    allocation that would kill it; the net adds its prefetch buffers and (on
    the CPU) its blobs once every layer is built, before any thread starts.
    """

    def __init__(self, where: str, limit: int | None = None) -> None:
        self.where = where
        self.limit = memory_limit() if limit is None else limit
        self.items: list[tuple[str, int]] = []
        self.total = 0

    def add(self, what: str, nbytes: int) -> None:
        self.items.append((what, int(nbytes)))
        self.total += int(nbytes)
        if self.limit is not None and self.total > self.limit:
            check_host_memory(self.items, self.where, self.limit)


def check_host_memory(items: Sequence[tuple[str, int]], where: str, limit: int | None = None) -> None:
    """Raise :class:`NetError` when the ``(what, bytes)`` items Caffe would
    hold in host memory at once exceed :func:`memory_limit`, naming the largest."""
    total = sum(n for _, n in items)
    limit = memory_limit() if limit is None else limit
    if limit is None or total <= limit:
        return
    largest = sorted(items, key=lambda item: -item[1])[:3]
    listed = "; ".join(f"{what}: {format_bytes(n)}" for what, n in largest)
    raise NetError(
        f"{where}: the net needs at least {format_bytes(total)} of memory for its parameters, "
        f"prefetch buffers and blobs ({listed}), more than this machine's {format_bytes(limit)} of "
        "memory and swap; Caffe would fill the same buffers when setting the net up and be killed"
    )
