"""Which code is the user's: their scripts, Python layers and modules, not Python's or ours.

Used where a message points at the user's own file and line (the command
line's error report, the division hint of Python 2 scripts) and where only
the user's tree may be translated from Python 2 (:mod:`caffe_compat.legacy`).
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
import traceback
from functools import lru_cache
from pathlib import Path

__all__ = ["is_user_path", "user_frames"]

_PACKAGE_DIR = Path(__file__).resolve().parent  # caffe_compat/


@lru_cache(maxsize=1)
def _system_roots() -> tuple[Path, ...]:
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots.update(p for p in sysconfig.get_paths().values() if p)
    try:
        roots.update(site.getsitepackages())
        roots.add(site.getusersitepackages())
    except AttributeError:  # pragma: no cover - virtualenv's old site module
        pass
    return tuple(Path(r).resolve() for r in roots if r) + (_PACKAGE_DIR,)


def is_user_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` belongs to the user's own tree (not Python's, an installed package's, ours)."""
    if isinstance(path, str) and path.startswith("<"):
        return False  # <string>, <frozen ...>
    try:
        real = Path(path or os.getcwd()).resolve()
    except OSError:
        return False
    if any(part in ("site-packages", "dist-packages") for part in real.parts):
        return False
    return not any(real == root or root in real.parents for root in _system_roots())


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from, innermost last."""
    out: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in out:
        out.append(link)
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
    return out


def user_frames(exc: BaseException, limit: int = 3) -> list[traceback.FrameSummary]:
    """The last ``limit`` frames of the user's own code (a Python layer, a script) in the
    traceback of ``exc`` or, innermost first, of the exceptions it was raised from."""
    for link in reversed(_chain(exc)):
        frames = [f for f in traceback.extract_tb(link.__traceback__) if is_user_path(f.filename)]
        if frames:
            return frames[-limit:]
    return []
