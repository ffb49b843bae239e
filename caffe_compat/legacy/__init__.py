"""Caffe-era scripts as they are: Python 2 source and removed NumPy names.

``caffe-compat run SCRIPT`` calls :func:`enable` (``--strict`` does not):

* Python 2 source is translated on import — only files that do not compile
  as Python 3: the script itself, modules imported from the user's own tree
  (never the standard library, site-packages or the virtual environment), and
  Python-layer modules loaded through ``python_param`` or ``.caffeinit``
  (:mod:`.translate`, :mod:`.importer`);
* NumPy's removed aliases (``np.float``, ``np.int``, ...) and binary
  ``np.fromstring`` work again, each logged once (:mod:`.numpy_aliases`);
* a float used as an index, the usual result of Python 2's integer ``/``,
  gets a note naming the line and suggesting ``//`` (:mod:`.hints`).

``import caffe_compat`` changes none of this; a program may call
:func:`enable` itself. Translating needs the ``fissix`` package (installed
with caffe_compat); it is imported only when a file needs translating.
"""

from __future__ import annotations

from .hints import add_division_hint
from .importer import hook_installed, install_hook, is_user_path, uninstall_hook
from .translate import Translation, cache_dir, compile_source, translated_files

__all__ = ["enable", "disable", "enabled", "compile_source", "Translation", "cache_dir",
           "is_user_path", "add_division_hint", "translated_files", "run_code"]


def enable(numpy_aliases: bool = True) -> None:
    """Translate Python 2 modules of the user's tree on import; restore NumPy's removed aliases."""
    install_hook()
    if numpy_aliases:
        from . import numpy_aliases as _np

        _np.install()


def disable() -> None:
    """Undo :func:`enable` (modules already imported stay as they are)."""
    from . import numpy_aliases as _np

    uninstall_hook()
    _np.uninstall()


def enabled() -> bool:
    return hook_installed()


def run_code(path: str, globals_: dict[str, object]) -> None:
    """Run the file ``path`` in ``globals_``, translated from Python 2 if it needs it."""
    with open(path, "rb") as f:
        source = f.read()
    code, _ = compile_source(source, path)
    exec(code, globals_)
