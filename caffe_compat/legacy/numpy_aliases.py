"""NumPy names Caffe-era code uses and NumPy removed: back, for ``caffe-compat run`` only.

``np.float``, ``np.int``, ``np.bool``, ``np.object``, ``np.str``, ``np.long``,
``np.unicode`` and ``np.complex`` were the builtin types until NumPy 1.24
removed them; ``np.fromstring(data, dtype)`` without ``sep`` (binary mode, deprecated
since NumPy 1.14) is an error in NumPy 2. :func:`install` adds a fallback to numpy's module
``__getattr__`` (asked only for names numpy does not define, so numpy's own
names and lazy submodules are unchanged; where a NumPy defines the name again,
e.g. ``np.bool`` and ``np.long`` in NumPy 2, NumPy's wins) and wraps
``np.fromstring`` so binary mode reads through ``np.frombuffer`` (a copy, as
``fromstring`` gave). Each name is logged once, where it is first used.
"""

from __future__ import annotations

import functools
import logging
import sys
from typing import Any, Callable

__all__ = ["ALIASES", "install", "uninstall", "installed"]

_log = logging.getLogger("caffe_compat")

#: the removed name → what it was
ALIASES: dict[str, type] = {
    "float": float, "int": int, "bool": bool, "object": object, "str": str, "long": int,
    "unicode": str, "complex": complex,
}

_saved: dict[str, Any] | None = None
_reported: set[str] = set()


def _caller() -> str:
    frame = sys._getframe(3)  # _caller ← _report ← numpy's __getattr__ / fromstring ← the user
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def _report(name: str, what: str) -> None:
    if name not in _reported:
        _reported.add(name)
        _log.info("%s: %s (caffe-compat run's NumPy aliases; --strict turns them off)", _caller(), what)


def installed() -> bool:
    return _saved is not None


def install() -> None:
    """Give numpy the removed names back (idempotent)."""
    global _saved
    if _saved is not None:
        return
    import numpy

    original_getattr: Callable[[str], Any] | None = numpy.__dict__.get("__getattr__")
    original_fromstring = numpy.fromstring

    def __getattr__(name: str) -> Any:
        alias = ALIASES.get(name)
        if alias is not None:
            _report(name, f"np.{name} is not in NumPy {numpy.__version__} (removed in 1.24); "
                          f"using the builtin {alias.__name__}, as NumPy < 1.24 did")
            return alias
        if original_getattr is None:
            raise AttributeError(f"module 'numpy' has no attribute {name!r}")
        return original_getattr(name)

    @functools.wraps(original_fromstring)
    def fromstring(string: Any, dtype: Any = float, count: int = -1, *, sep: str = "", **kwargs: Any) -> Any:
        if sep == "":
            _report("fromstring", "np.fromstring without sep (binary mode, removed from NumPy) "
                                  "reads through np.frombuffer(...).copy()")
            data = string.encode("latin-1") if isinstance(string, str) else string
            return numpy.frombuffer(data, dtype=dtype, count=count).copy()
        return original_fromstring(string, dtype=dtype, count=count, sep=sep, **kwargs)

    _saved = {"__getattr__": original_getattr, "fromstring": original_fromstring}
    setattr(numpy, "__getattr__", __getattr__)
    setattr(numpy, "fromstring", fromstring)


def uninstall() -> None:
    """Restore numpy as it was."""
    global _saved
    if _saved is None:
        return
    import numpy

    if _saved["__getattr__"] is None:
        numpy.__dict__.pop("__getattr__", None)
    else:
        setattr(numpy, "__getattr__", _saved["__getattr__"])
    setattr(numpy, "fromstring", _saved["fromstring"])
    _saved = None
    _reported.clear()
