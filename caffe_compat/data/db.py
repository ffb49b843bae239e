"""Caffe's key-value databases: LMDB (``lmdb``) and LevelDB (``plyvel``).

Mirrors ``util/db_lmdb.cpp`` / ``util/db_leveldb.cpp``: records are read in
key order (both stores sort keys bytewise) and written in transactions.

* :class:`DBReader` opens a database read-only; several readers of one path
  (a train and a test net reading the same source) share one environment,
  which LMDB requires within a process and LevelDB's lock would otherwise
  refuse. :meth:`DBReader.records` loops over the records forever, starting
  again at the first after the last, as Caffe's data layer does.
* :class:`DBWriter` creates a new database (an existing one is an error, as
  Caffe's ``db::NEW``) and commits in batches; an LMDB map that fills up is
  grown and the transaction retried. It is built under a temporary name and
  renamed when closed, so a failed or killed run leaves nothing behind.

Differences from Caffe: none known for the stored bytes. LevelDB is optional
(``pip install plyvel``); without it a clear error says so.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Iterator, Union

from ..errors import DataError
from ..proto import caffe_pb2

__all__ = ["backend_name", "DBReader", "DBWriter", "open_writer"]

_log = logging.getLogger("caffe_compat")
PathLike = Union[str, "os.PathLike[str]"]

_shared: dict[tuple[str, str], list[Any]] = {}  # (backend, realpath) -> [handle, refcount]
_shared_lock = threading.Lock()


def backend_name(backend: Any) -> str:
    """"lmdb" or "leveldb" from a name or a ``DataParameter.DB`` value."""
    if isinstance(backend, int):
        if backend == caffe_pb2.DataParameter.LMDB:
            return "lmdb"
        if backend == caffe_pb2.DataParameter.LEVELDB:
            return "leveldb"
        raise DataError(f"unknown database backend {backend}")
    name = str(backend).strip().lower()
    if name not in ("lmdb", "leveldb"):
        raise DataError(f'unknown database backend "{backend}"; expected lmdb or leveldb')
    return name


def _plyvel():
    try:
        import plyvel
    except ImportError:  # pragma: no cover - depends on the install
        raise DataError("LevelDB support needs the plyvel package: pip install plyvel") from None
    return plyvel


def _open_shared(backend: str, path: str, key: tuple[str, str]) -> Any:
    with _shared_lock:
        entry = _shared.get(key)
        if entry is None:
            entry = _shared[key] = [_open_read(backend, path), 0]
        entry[1] += 1
        return entry[0]


def _release_shared(key: tuple[str, str]) -> None:
    with _shared_lock:
        entry = _shared.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del _shared[key]
            entry[0].close()


def _open_read(backend: str, path: str) -> Any:
    if not os.path.exists(path):
        raise DataError(f'{backend.upper()} database "{path}": no such file or directory')
    try:
        if backend == "lmdb":
            import lmdb

            return lmdb.open(path, readonly=True, lock=False, readahead=False,
                             subdir=os.path.isdir(path), max_readers=512)
        return _plyvel().DB(path, create_if_missing=False)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f'{backend.upper()} database "{path}": cannot open: {exc}') from None


class DBReader:
    """Read-only access to one database; records come as (key, value) bytes."""

    def __init__(self, path: PathLike, backend: Any) -> None:
        self.path = os.fspath(path)
        self.backend = backend_name(backend)
        # Keyed by the real path at open time: a relative path may name
        # another database once the working directory changes.
        self._key = (self.backend, os.path.realpath(self.path))
        self._handle = _open_shared(self.backend, self.path, self._key)
        self._closed = False

    def _iter_once(self) -> Iterator[tuple[bytes, bytes]]:
        if self.backend == "lmdb":
            with self._handle.begin(buffers=False) as txn:
                yield from txn.cursor().iternext(keys=True, values=True)
        else:
            with self._handle.iterator() as it:
                yield from it

    def first(self) -> tuple[bytes, bytes]:
        """The first record; an empty database is a DataError."""
        for record in self._iter_once():
            return record
        raise DataError(f'{self.backend.upper()} database "{self.path}" is empty')

    def __len__(self) -> int:
        if self.backend == "lmdb":
            return int(self._handle.stat()["entries"])
        return sum(1 for _ in self._iter_once())

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        """Every record once, in key order."""
        return self._iter_once()

    def records(self, skip: int = 0) -> Iterator[tuple[bytes, bytes]]:
        """Records forever: after the last comes the first again."""
        while True:
            seen = False
            for record in self._iter_once():
                seen = True
                if skip > 0:
                    skip -= 1
                    continue
                yield record
            if not seen:
                raise DataError(f'{self.backend.upper()} database "{self.path}" is empty')
            _log.info("Restarting data prefetching from start.")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _release_shared(self._key)

    def __enter__(self) -> "DBReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class DBWriter:
    """A new database filled in transactions of ``put``s ended by ``commit``.

    The database is built in a hidden temporary directory beside ``path``
    and renamed to ``path`` by :meth:`close` (:class:`caffe_compat.atomic.AtomicDirectory`):
    a run that fails or is killed leaves no half-written database under the
    final name, and a failure to write is a ``WriteError`` naming ``path``.
    """

    def __init__(self, path: PathLike, backend: Any, map_size: int = 1 << 26) -> None:
        from ..atomic import AtomicDirectory

        self.path = os.fspath(path)
        self.backend = backend_name(backend)
        self._pending: list[tuple[bytes, bytes]] = []
        self._closed = False
        if os.path.lexists(self.path):
            raise DataError(f'{self.backend.upper()} database "{self.path}" already exists; '
                            "remove it or choose another name")
        self._dir = AtomicDirectory(self.path, f"{self.backend.upper()} database")
        try:
            if self.backend == "lmdb":
                import lmdb

                self._map_size = map_size
                self._env = lmdb.open(self._dir.path, map_size=map_size, subdir=True)
            else:
                self._db = _plyvel().DB(self._dir.path, create_if_missing=True, error_if_exists=True,
                                        block_size=65536, write_buffer_size=268435456)
        except BaseException as exc:
            self._dir.abort()
            if isinstance(exc, DataError) or not isinstance(exc, Exception):
                raise
            raise self._dir.error(exc) from None

    def put(self, key: bytes | str, value: bytes) -> None:
        self._pending.append((key.encode() if isinstance(key, str) else bytes(key), bytes(value)))

    def commit(self) -> None:
        if not self._pending:
            return
        try:
            if self.backend == "leveldb":
                with self._db.write_batch() as batch:
                    for k, v in self._pending:
                        batch.put(k, v)
            else:
                self._commit_lmdb()
        except Exception as exc:
            self.abort()
            raise self._dir.error(exc) from None
        self._pending.clear()

    def _commit_lmdb(self) -> None:
        import lmdb

        while True:
            try:
                with self._env.begin(write=True) as txn:
                    for k, v in self._pending:
                        txn.put(k, v)
                return
            except lmdb.MapFullError:
                # Caffe's LMDB transaction doubles the map and retries too.
                self._map_size *= 2
                self._env.set_mapsize(self._map_size)

    def _close_handle(self) -> None:
        if self.backend == "lmdb":
            self._env.close()
        else:
            self._db.close()

    def close(self) -> None:
        """Write what is pending, close the database and move it to its name."""
        if self._closed:
            return
        self.commit()
        self._closed = True
        try:
            self._close_handle()
        except Exception as exc:
            self._dir.abort()
            raise self._dir.error(exc) from None
        self._dir.commit()

    def abort(self) -> None:
        """Drop the database being written (after a failure): nothing is left behind."""
        if self._closed:
            return
        self._closed = True
        self._pending.clear()
        try:
            self._close_handle()
        except Exception:  # pragma: no cover - it is being thrown away
            pass
        self._dir.abort()

    def __enter__(self) -> "DBWriter":
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def open_writer(path: PathLike, backend: Any) -> DBWriter:
    return DBWriter(path, backend)
