"""Every file and database caffe_compat writes goes through here.

One mechanism, so that every writer (``net.save``, ``save_hdf5``, solver
snapshots, ``HDF5Output``, ``convert_imageset``, ``compute_image_mean``,
``extract_features``, ``upgrade_*``) fails and cleans up the same way:

* **Atomic.** The content goes to a hidden temporary beside the target,
  ``.<name>.<pid>-<token>.tmp``, which is renamed over the target when it is
  complete, so the target is either the old file or the whole new one.
  Databases (LMDB/LevelDB directories) are built in such a temporary
  directory and renamed the same way.
* **Clear errors.** Any failure (a missing directory, a read-only or special
  file system such as ``/proc``, a full disk, a file over the size limit) is a
  :class:`~caffe_compat.errors.WriteError` naming the *target*, never the
  temporary, and the temporary is removed.
* **No garbage after a crash.** The writer holds an exclusive ``flock`` on its
  temporary while it writes. The next writer to the same target (or the same
  snapshot prefix: :func:`clean_stale`) removes temporaries that no live
  process holds, so a process killed mid-write (SIGKILL, power loss) leaves at
  most the temporaries of its last write, and they go at the next start.
* **The user's umask.** Files are created with mode 0666 & ~umask (0644 under
  umask 022), as Caffe's ``std::ofstream`` makes them; overwriting a file keeps
  its mode. ``tempfile.mkstemp`` would make every file 0600.
"""

from __future__ import annotations

import errno
import io
import os
import re
import secrets
import shutil
import stat
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Union

from .errors import WriteError

try:  # POSIX; elsewhere liveness falls back to the process id
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["write_bytes", "write_hdf5", "AtomicDirectory", "atomic_directory", "probe_directory",
           "clean_stale", "write_error"]

PathLike = Union[str, "os.PathLike[str]"]

_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-(?P<token>[0-9a-f]{8})\.tmp$")
#: a temporary of a live process id that nobody locks is taken for stale once this old
#: (a lock is taken right after creation; the grace only covers that instant)
_GRACE_S = 30.0
_in_flight: set[str] = set()
_lock = threading.Lock()

_REASONS = {
    errno.ENOENT: "the directory does not exist",
    errno.ENOTDIR: "a component of the path is not a directory",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large (over the file-size limit, ulimit -f, or the file system's maximum)",
    errno.EISDIR: "it is a directory",
    errno.ENAMETOOLONG: "file name too long",
    errno.EIO: "input/output error",
}


# ----------------------------------------------------------------- errors
def write_error(exc: BaseException, target: PathLike, what: str = "") -> WriteError:
    """A :class:`WriteError` for ``exc`` that names ``target`` (not a temporary)."""
    target = os.fspath(target)
    code = getattr(exc, "errno", None)
    if code is None:  # h5py / lmdb put the errno into their message
        m = re.search(r"errno\s*=\s*(\d+)", str(exc))
        code = int(m.group(1)) if m else None
    reason = _REASONS.get(code) if code is not None else None
    directory = os.path.dirname(os.path.abspath(target))
    if code == errno.ENOENT:
        if os.path.isdir(directory):  # /proc, /sys: the directory exists but takes no new files
            reason = f"the directory {directory} does not accept new files (a special file system?)"
        else:
            reason = f"the directory {directory} does not exist"
    if reason is None:
        reason = (os.strerror(code) if code is not None else None) or f"{type(exc).__name__}: {exc}"
    prefix = f"{what}: " if what else ""
    return WriteError(f'{prefix}cannot write "{target}": {reason}', target, code)


# ---------------------------------------------------------- temporaries
def _temp_path(target: str) -> str:
    directory, name = os.path.split(target)
    return os.path.join(directory, f".{name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def _resolve(path: PathLike) -> str:
    p = os.fspath(path)
    return os.path.realpath(p) if os.path.islink(p) else p  # write through a link, as ofstream does


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # pragma: no cover
        return True
    try:  # a zombie has closed its files: it writes nothing any more
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return True


def _lock_state(fd: int) -> bool | None:
    """Take an exclusive lock without waiting: True taken, False held by another, None unsupported."""
    if fcntl is None:  # pragma: no cover
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:  # NFS without flock on a read-only descriptor, FUSE, ...
        return None


def _stale(path: str, pid: int, is_dir: bool) -> tuple[bool, int | None]:
    """Whether the temporary at ``path`` belongs to no live writer (and the fd holding its lock)."""
    try:
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)  # never wait on a FIFO of that name
        fd = os.open(path, flags | (getattr(os, "O_DIRECTORY", 0) if is_dir else 0))
    except OSError:
        return False, None
    state = _lock_state(fd)
    mine = pid == os.getpid()
    alive = _pid_alive(pid) and not mine  # ours but not in flight: a dead process had our pid
    if state is False:
        stale = False
    elif state is True:
        try:
            fresh = time.time() - os.fstat(fd).st_mtime < _GRACE_S
        except OSError:
            fresh = True
        stale = not (alive and fresh)  # a live writer between creating and locking
    else:
        stale = not alive
    if not stale:
        os.close(fd)
        return False, None
    return True, fd


def clean_stale(directory: PathLike, prefix: str) -> list[str]:
    """Remove the temporaries ``.<prefix>*.<pid>-<token>.tmp`` in ``directory``
    that no live writer holds; returns their paths.

    Called by every writer for its target name, and by the solver for its
    snapshot prefix (``<prefix base>_iter_``), so each crash's leftovers go at
    the next start instead of piling up.
    """
    directory = os.fspath(directory) or "."
    removed: list[str] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not name.startswith("." + prefix) or not name.endswith(".tmp"):
            continue
        m = _TEMP.match(name)
        if m is None:
            continue
        path = os.path.join(directory, name)
        with _lock:
            if path in _in_flight:
                continue
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            continue
        stale, fd = _stale(path, int(m.group("pid")), is_dir)
        if not stale:
            continue
        try:
            if is_dir:
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
            removed.append(path)
        except OSError:
            pass
        finally:
            if fd is not None:
                os.close(fd)
    return removed


@contextmanager
def _registered(path: str) -> Iterator[None]:
    with _lock:
        _in_flight.add(path)
    try:
        yield
    finally:
        with _lock:
            _in_flight.discard(path)


def _remove(path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:  # pragma: no cover - best effort
        pass


# ---------------------------------------------------------------- files
def write_bytes(path: PathLike, data: bytes | bytearray | memoryview, what: str = "") -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring).

    ``what`` (e.g. ``'HDF5Output layer "out"'``) starts the error message.
    """
    target = _resolve(path)
    if os.path.isdir(target):
        raise write_error(IsADirectoryError(errno.EISDIR, "is a directory"), target, what)
    directory, name = os.path.split(target)
    clean_stale(directory or ".", name + ".")
    tmp = _temp_path(target)
    view = memoryview(data).cast("B")
    with _registered(tmp):
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except OSError as exc:
            raise write_error(exc, target, what) from None
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    pass  # no lock support: the process id in the name still tells
            _keep_mode(fd, target)
            written = 0
            while written < len(view):
                written += os.write(fd, view[written:written + (1 << 26)])
            try:
                os.fsync(fd)
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EROFS):
                    raise
            os.replace(tmp, target)  # still locked: no cleaner can take it in between
        except BaseException as exc:
            os.close(fd)
            _remove(tmp)
            if isinstance(exc, OSError):
                raise write_error(exc, target, what) from None
            raise
        os.close(fd)


def _keep_mode(fd: int, target: str) -> None:
    """Overwriting keeps the target's permission bits (``ofstream`` truncates in place)."""
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return
    try:
        os.fchmod(fd, mode)
    except OSError:  # pragma: no cover - a file system without modes
        pass


def write_hdf5(path: PathLike, fill: Callable[[Any], None], what: str = "") -> None:
    """Build an HDF5 file in memory with ``fill(h5py.File)`` and write it atomically.

    Building in memory first means every failure of the disk shows up in
    :func:`write_bytes`, with one kind of error and cleanup.
    """
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        fill(f)
    write_bytes(path, buffer.getbuffer(), what)


# ----------------------------------------------------------- directories
class AtomicDirectory:
    """A temporary directory beside ``path`` that :meth:`commit` renames to ``path``.

    For databases (LMDB, LevelDB), which are directories written in place:
    build the database in :attr:`path`, close it, then :meth:`commit`; on any
    failure :meth:`abort` removes the temporary. An existing ``path`` is an
    error (Caffe's ``db::NEW``).
    """

    def __init__(self, target: PathLike, what: str = "") -> None:
        self.target = os.path.abspath(os.fspath(target))
        self.what = what
        directory, name = os.path.split(self.target)
        clean_stale(directory, name + ".")
        self.path = _temp_path(self.target)
        with _lock:
            _in_flight.add(self.path)
        try:
            os.mkdir(self.path, 0o777)
            self._fd: int | None = os.open(self.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError as exc:
            self._forget()
            raise write_error(exc, self.target, what) from None
        _lock_state(self._fd)

    def error(self, exc: BaseException) -> WriteError:
        """A :class:`WriteError` naming the target for a failure while writing."""
        return write_error(exc, self.target, self.what)

    def commit(self) -> None:
        try:
            if os.path.lexists(self.target):
                raise WriteError(f'{self.what + ": " if self.what else ""}cannot write "{self.target}": '
                                 "it was created by someone else meanwhile", self.target, errno.EEXIST)
            os.rename(self.path, self.target)
        except OSError as exc:
            self.abort()
            raise exc if isinstance(exc, WriteError) else self.error(exc) from None
        self._forget()

    def abort(self) -> None:
        """Remove the temporary (after a failure); idempotent."""
        if self._fd is not None or os.path.lexists(self.path):
            _remove(self.path)
        self._forget()

    def _forget(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)  # type: ignore[arg-type]
            self._fd = None
        with _lock:
            _in_flight.discard(self.path)


@contextmanager
def atomic_directory(path: PathLike, what: str = "") -> Iterator[str]:
    """:class:`AtomicDirectory` as a context manager yielding the temporary path."""
    d = AtomicDirectory(path, what)
    try:
        yield d.path
    except BaseException:
        d.abort()
        raise
    d.commit()


def probe_directory(target: PathLike, what: str = "") -> None:
    """Create and delete a temporary for ``target``: proof that files can be
    written beside it (``os.access`` says yes to root everywhere, even in
    ``/proc``). Caffe's ``CheckSnapshotWritePermissions`` probes the same way.
    The target itself is never touched.
    """
    target = _resolve(target)
    directory, name = os.path.split(target)
    clean_stale(directory or ".", name + ".")
    tmp = _temp_path(target)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise write_error(exc, target, what) from None
    os.close(fd)
    _remove(tmp)
