"""The import hook: modules of the user's own tree are translated from Python 2 when needed.

A path hook (ahead of Python's own) gives each ``sys.path`` directory of the
user's tree a ``FileFinder`` whose source loader compiles through
:func:`~caffe_compat.legacy.translate.compile_source`; every other directory —
the standard library, site-packages, the virtual environment, caffe_compat
itself — is left to Python's own finder and never translated. Translated code
is never written to ``__pycache__`` (a later plain ``python`` run must not
find it there); modules that compile as Python 3 are cached there as usual.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
from typing import Any

from .._usercode import is_user_path
from .translate import compile_source

__all__ = ["Py2SourceLoader", "is_user_path", "install_hook", "uninstall_hook", "hook_installed"]


class Py2SourceLoader(importlib.machinery.SourceFileLoader):
    """A source loader that translates Python 2 modules (and does not cache their bytecode)."""

    translated = False

    def source_to_code(self, data: Any, path: Any, *, _optimize: int = -1) -> Any:  # type: ignore[override]
        code, translation = compile_source(data, str(path), optimize=_optimize)
        if translation is not None:
            self.translated = True
        return code

    def set_data(self, path: Any, data: bytes, *, _mode: int = 0o666) -> None:  # type: ignore[override]
        if self.translated:
            return  # translated bytecode stays out of __pycache__
        super().set_data(path, data, _mode=_mode)


def _path_hook(entry: str) -> importlib.machinery.FileFinder:
    directory = entry or os.getcwd()
    if not os.path.isdir(directory) or not is_user_path(directory):
        raise ImportError("not a directory of the user's tree")  # Python's own finder takes it
    return importlib.machinery.FileFinder(
        entry,
        (Py2SourceLoader, importlib.machinery.SOURCE_SUFFIXES),
        (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
        (importlib.machinery.SourcelessFileLoader, importlib.machinery.BYTECODE_SUFFIXES),
    )


def hook_installed() -> bool:
    return _path_hook in sys.path_hooks


def install_hook() -> None:
    if hook_installed():
        return
    sys.path_hooks.insert(0, _path_hook)
    sys.path_importer_cache.clear()
    importlib.invalidate_caches()


def uninstall_hook() -> None:
    while _path_hook in sys.path_hooks:
        sys.path_hooks.remove(_path_hook)
    sys.path_importer_cache.clear()
    importlib.invalidate_caches()
