"""``import caffe`` → caffe_compat, for scripts and layer modules written for pycaffe.

:func:`install_alias` makes ``import caffe``, ``import caffe.io``,
``from caffe.proto import caffe_pb2``, ``from caffe import layers as L`` ...
give caffe_compat's modules (the *same* module objects, so classes and
protobuf messages are shared). It is what ``caffe-compat run SCRIPT`` does
before running the script.

When caffe_compat itself imports a Python layer's module (``python_param``
or ``.caffeinit``) and nothing called :func:`install_alias`, the module's
``import caffe`` must still find ``caffe.Layer`` — the tutorial's layer file
does exactly that. :func:`layer_import_scope` decides how:

* ``caffe`` already imported (ours, or a pycaffe): left as it is; an
  imported ``caffe`` without ``Layer`` is overridden while the module imports;
* no compiled pycaffe installed: the alias is installed for good (nothing
  else could be meant by ``import caffe``; a PyPI placeholder package named
  ``caffe`` is shadowed);
* a compiled pycaffe installed but not imported: the alias holds only while
  the layer module is imported, so the rest of the program still gets the
  real pycaffe from ``import caffe``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
import types
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["install_alias", "uninstall_alias", "alias_scope", "alias_installed", "layer_import_scope",
           "installed_pycaffe"]

_log = logging.getLogger("caffe_compat")

_ALIAS = "caffe"
_TARGET = "caffe_compat"


class _AliasLoader(importlib.abc.Loader):
    """Hands the import system an already imported caffe_compat module."""

    def __init__(self, module: types.ModuleType) -> None:
        self.module = module
        self.spec = module.__spec__

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return self.module

    def exec_module(self, module: types.ModuleType) -> None:
        # module_from_spec replaced __spec__ with the alias's; keep the real one.
        module.__spec__ = self.spec


class _AliasFinder(importlib.abc.MetaPathFinder):
    """``caffe.<x>`` → the module ``caffe_compat.<x>``."""

    def find_spec(self, fullname: str, path: object = None, target: object = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _ALIAS and not fullname.startswith(_ALIAS + "."):
            return None
        real = _TARGET + fullname[len(_ALIAS):]
        try:
            module = importlib.import_module(real)
        except ModuleNotFoundError as exc:
            if exc.name != real:
                raise
            raise ModuleNotFoundError(
                f"No module named {fullname!r} ({_ALIAS!r} is caffe_compat here, which has no "
                f"module {real!r})", name=fullname,
            ) from None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(module))


_finder = _AliasFinder()
# sys.modules entries the alias replaced, restored by uninstall_alias().
_saved: dict[str, types.ModuleType] | None = None


def alias_installed() -> bool:
    return _finder in sys.meta_path


def _is_ours(module: object) -> bool:
    name = getattr(module, "__name__", "")
    return name == _TARGET or name.startswith(_TARGET + ".")


def install_alias() -> types.ModuleType:
    """Make ``import caffe`` (and its submodules) resolve to caffe_compat.

    Returns the ``caffe_compat`` module. If a different ``caffe`` was already
    imported, it is replaced for later imports (with a warning: objects taken
    from it before stay what they were).
    """
    global _saved
    target = importlib.import_module(_TARGET)
    if alias_installed() and sys.modules.get(_ALIAS) is target:
        return target
    others = {k: m for k, m in sys.modules.items()
              if (k == _ALIAS or k.startswith(_ALIAS + ".")) and not _is_ours(m)}
    if others:
        warnings.warn(
            f"caffe_compat.install_alias(): replacing the already imported module "
            f"{_ALIAS!r} ({getattr(others.get(_ALIAS), '__file__', '?')}); names imported from it "
            "earlier still refer to it",
            RuntimeWarning, stacklevel=2,
        )
    if _saved is None:
        _saved = others
    for k in others:
        del sys.modules[k]
    if not alias_installed():
        sys.meta_path.insert(0, _finder)
    sys.modules[_ALIAS] = target
    importlib.invalidate_caches()
    _log.debug("import %s now gives %s", _ALIAS, _TARGET)
    return target


def uninstall_alias() -> None:
    """Undo :func:`install_alias` (restoring a ``caffe`` it replaced)."""
    global _saved
    while _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
    for k, m in list(sys.modules.items()):
        if (k == _ALIAS or k.startswith(_ALIAS + ".")) and _is_ours(m):
            del sys.modules[k]
    if _saved:
        sys.modules.update(_saved)
    _saved = None


@contextmanager
def alias_scope() -> Iterator[types.ModuleType]:
    """The alias, only inside the ``with`` block (a previous state is restored)."""
    was = alias_installed()
    module = install_alias()
    try:
        yield module
    finally:
        if not was:
            uninstall_alias()


def installed_pycaffe() -> str | None:
    """Where a compiled pycaffe (a ``caffe`` package with ``_caffe``) would be imported from."""
    found = alias_installed()
    if found:
        sys.meta_path.remove(_finder)
    try:
        spec = importlib.machinery.PathFinder.find_spec(_ALIAS)
    finally:
        if found:
            sys.meta_path.insert(0, _finder)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        if any(Path(location).glob("_caffe*")):
            return str(location)
    return None


@contextmanager
def layer_import_scope() -> Iterator[None]:
    """While caffe_compat imports a Python layer module (see the module docstring)."""
    current = sys.modules.get(_ALIAS)
    if current is not None and (_is_ours(current) or hasattr(current, "Layer")):
        yield  # ours, or a pycaffe the program chose to import
        return
    if current is not None:  # an imported 'caffe' without Layer (the PyPI placeholder)
        with alias_scope():
            yield
        return
    real = installed_pycaffe()
    if real is None:
        install_alias()
        yield
        return
    _log.info("a pycaffe is installed at %s; inside Python layer modules, 'import %s' gives "
              "caffe_compat", real, _ALIAS)
    with alias_scope():
        yield
