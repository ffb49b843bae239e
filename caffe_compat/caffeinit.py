"""Where Python layer classes come from: ``.caffeinit`` registries and module search.

A ``.caffeinit`` file registers Python layers by name, one per line::

    # comments and blank lines are ignored
    python_layer my_custom_loss MyCustomLossLayer my_custom_loss.py

``python_layer <name> <ClassName> <file.py>``: the file path is relative to
the ``.caffeinit`` file (quotes allow spaces). The registered ``<name>`` then
works both as ``python_param { module: "<name>" layer: "<ClassName>" }`` and
as a layer ``type: "<name>"``. Files are read in this order, the first entry
for a name winning:

1. ``./.caffeinit`` (the current directory),
2. ``~/.caffeinit``,
3. ``$CAFFE_ROOT/.caffeinit`` (the tutorial's "Caffe root directory"),
4. the files named by ``$CAFFE_COMPAT_INIT`` (``os.pathsep``-separated).

A malformed line is an error naming the file and line. Real Caffe has no
``.caffeinit``; this is the registry the tutorial describes.

A ``python_param.module`` that no registry names is imported from Python's
import path, then the current directory, then the prototxt's directory (a
module name ending in ``.py`` is read as a file path from those places).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import inspect
import os
import shlex
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Iterator

from .alias import layer_import_scope
from .errors import CaffeCompatError
from .layers.registry import add_resolver
from .python_layer import PythonLayerClassError, PythonLayerImportError, user_error

if TYPE_CHECKING:
    from .layers.base import Layer

__all__ = ["ENV_VAR", "Entry", "CaffeInitError", "registry_files", "read_registry", "entries", "lookup",
           "load_module", "find_layer_class", "resolve_type"]

ENV_VAR = "CAFFE_COMPAT_INIT"
FILE_NAME = ".caffeinit"
_USAGE = "python_layer <name> <ClassName> <file.py>"


class CaffeInitError(CaffeCompatError, ValueError):
    """A ``.caffeinit`` file is malformed or names a file that does not exist."""


@dataclass(frozen=True)
class Entry:
    """One ``python_layer`` line."""

    name: str
    class_name: str
    path: Path  # absolute (resolved against the registry file's directory)
    source: Path  # the .caffeinit file
    line: int

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


# ---------------------------------------------------------------- registry
def registry_files() -> list[Path]:
    """The registry files that exist, in lookup order."""
    candidates: list[tuple[Path, bool]] = [(Path.cwd() / FILE_NAME, False), (Path.home() / FILE_NAME, False)]
    if os.environ.get("CAFFE_ROOT"):
        candidates.append((Path(os.environ["CAFFE_ROOT"]) / FILE_NAME, False))
    for item in os.environ.get(ENV_VAR, "").split(os.pathsep):
        if item.strip():
            candidates.append((Path(item.strip()).expanduser(), True))
    out: list[Path] = []
    seen: set[Path] = set()
    for path, required in candidates:
        if not path.is_file():
            if required:
                raise CaffeInitError(f"${ENV_VAR} names {path}, which is not a file")
            continue
        real = path.resolve()
        if real not in seen:
            seen.add(real)
            out.append(path)
    return out


_parsed: dict[Path, tuple[tuple[int, int], dict[str, Entry]]] = {}


def read_registry(path: Path) -> dict[str, Entry]:
    """The entries of one registry file (cached until the file changes)."""
    path = Path(path).absolute()
    st = path.stat()
    key = (st.st_mtime_ns, st.st_size)
    hit = _parsed.get(path)
    if hit is not None and hit[0] == key:
        return hit[1]
    found: dict[str, Entry] = {}
    text = path.read_text(encoding="utf-8", errors="replace")
    for lineno, raw in enumerate(text.splitlines(), 1):
        where = f"{path}:{lineno}"
        try:
            words = shlex.split(raw, comments=True)
        except ValueError as exc:
            raise CaffeInitError(f"{where}: cannot split the line ({exc}): {raw.strip()}") from None
        if not words:
            continue
        if words[0] != "python_layer":
            raise CaffeInitError(f"{where}: unknown directive {words[0]!r}; expected '{_USAGE}'")
        if len(words) != 4:
            raise CaffeInitError(f"{where}: expected '{_USAGE}' (4 words), got {len(words)}: {raw.strip()}")
        _, name, class_name, file = words
        if not all(part.isidentifier() for part in name.split(".")):
            raise CaffeInitError(f"{where}: layer name {name!r} must be a Python identifier (dots allowed)")
        if not class_name.isidentifier():
            raise CaffeInitError(f"{where}: class name {class_name!r} is not a Python identifier")
        if not file.endswith(".py"):
            raise CaffeInitError(f"{where}: {file!r} should be a Python file (ending in .py)")
        if name in found:
            raise CaffeInitError(f"{where}: {name!r} is registered twice (first at line {found[name].line})")
        target = Path(file).expanduser()
        if not target.is_absolute():
            target = path.parent / target
        found[name] = Entry(name, class_name, target, path, lineno)
    _parsed[path] = (key, found)
    return found


def entries() -> dict[str, Entry]:
    """Every registered name (the first registry naming it wins)."""
    merged: dict[str, Entry] = {}
    for path in registry_files():
        for name, entry in read_registry(path).items():
            merged.setdefault(name, entry)
    return merged


def lookup(name: str) -> Entry | None:
    return entries().get(name)


def resolve_type(type_name: str) -> "type[Layer] | None":
    """Registry resolver: a ``.caffeinit`` name used as a layer ``type``."""
    entry = lookup(type_name)
    if entry is None:
        return None
    from .layers.python.python import bound_layer_class

    return bound_layer_class(caffeinit_name=type_name)


add_resolver(resolve_type)


# ------------------------------------------------------------------ modules
_file_modules: dict[Path, ModuleType] = {}


@contextmanager
def _extra_path(dirs: list[Path], front: bool = False) -> Iterator[None]:
    """``dirs`` on ``sys.path`` (before or after the rest) while importing."""
    added = [str(d) for d in dirs if str(d) not in sys.path]
    if front:
        sys.path[:0] = added
    else:
        sys.path.extend(added)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        for d in added:
            if d in sys.path:
                sys.path.remove(d)


def load_module(name: str, path: Path, where: str) -> ModuleType:
    """Import the file ``path`` as module ``name`` (once per file)."""
    real = path.resolve()
    if real in _file_modules:
        return _file_modules[real]
    existing = sys.modules.get(name)
    if existing is not None and getattr(existing, "__file__", None) and \
            Path(existing.__file__).resolve() == real:  # type: ignore[arg-type]
        _file_modules[real] = existing
        return existing
    mod_name = name if existing is None else f"_caffeinit_{name.replace('.', '_')}_{len(_file_modules)}"
    spec = importlib.util.spec_from_file_location(mod_name, real, loader=_legacy_loader(mod_name, real))
    if spec is None or spec.loader is None:  # pragma: no cover - .py files always have a loader
        raise PythonLayerImportError(f"{where}: cannot load {real} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        with layer_import_scope(), _extra_path([real.parent], front=True):
            spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(mod_name, None)
        _python2_hint(exc)
        raise user_error(exc, f"{where}: importing {real} failed: {type(exc).__name__}: {exc}") from exc
    _file_modules[real] = module
    return module


def _legacy_loader(name: str, path: Path) -> importlib.abc.Loader | None:
    """The Python-2-translating loader while ``caffe-compat run`` (caffe_compat.legacy) is on."""
    from . import legacy

    if not legacy.enabled() or not legacy.is_user_path(path.parent):
        return None
    from .legacy.importer import Py2SourceLoader

    return Py2SourceLoader(name, str(path))


def _python2_hint(exc: BaseException) -> None:
    """A SyntaxError importing a layer module outside ``caffe-compat run``: say how to translate it."""
    from . import legacy

    if isinstance(exc, SyntaxError) and not legacy.enabled() and hasattr(exc, "add_note"):
        exc.add_note("if this is Python 2, 'caffe-compat run SCRIPT' translates it on import "
                     "(or call caffe_compat.legacy.enable() first)")


def _search_dirs(source_dir: Path | None) -> list[Path]:
    dirs = [Path.cwd()]
    if source_dir is not None and source_dir.resolve() != dirs[0].resolve():
        dirs.append(source_dir)
    return dirs


def _import(module: str, source_dir: Path | None, where: str) -> ModuleType:
    dirs = _search_dirs(source_dir)
    if module.endswith(".py"):
        given = Path(module).expanduser()
        tried = [given] if given.is_absolute() else [d / given for d in dirs]
        for path in tried:
            if path.is_file():
                return load_module(path.stem, path, where)
        raise PythonLayerImportError(
            f"{where}: python_param.module {module!r}: no such file; looked at "
            + ", ".join(str(p) for p in tried), name=module)
    try:
        with layer_import_scope(), _extra_path(dirs):
            return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module == exc.name or module.startswith(exc.name + ".")):
            raise user_error(exc, f"{where}: importing module {module!r} failed: {exc}") from exc
        registries = [str(p) for p in registry_files()]
        raise PythonLayerImportError(
            f"{where}: cannot find Python layer module {module!r}. Looked in: "
            f".caffeinit registries ({', '.join(registries) or 'none found'}; no entry {module!r}); "
            f"Python's import path ({len(sys.path)} entries: {', '.join(p or repr(p) for p in sys.path)}); "
            f"the current directory ({dirs[0]}); "
            + (f"the prototxt's directory ({dirs[1]})" if len(dirs) > 1 else "(no prototxt directory)")
            + f". Add a line '{_USAGE}' to ./.caffeinit or put the module on PYTHONPATH",
            name=module,
        ) from None
    except CaffeCompatError:
        raise
    except Exception as exc:
        _python2_hint(exc)
        raise user_error(exc, f"{where}: importing module {module!r} failed: "
                              f"{type(exc).__name__}: {exc}") from exc


def find_layer_class(module: str, class_name: str, source_dir: Path | None, where: str) -> tuple[type, str]:
    """The class a Python layer names, and a description of its origin for messages."""
    entry = lookup(module)
    if entry is not None:
        paths = [entry.path] + [d / entry.path.name for d in _search_dirs(source_dir)]
        path = next((p for p in paths if p.is_file()), None)
        if path is None:
            raise PythonLayerImportError(
                f"{where}: {entry.where} registers {module!r} as {entry.path}, which does not exist "
                f"(also looked for {entry.path.name} in " + ", ".join(str(p.parent) for p in paths[1:]) + ")",
                name=module)
        mod = load_module(module, path, where)
        class_name = class_name or entry.class_name
        origin = f"{path} ({entry.where})"
    else:
        if not module:
            raise PythonLayerImportError(f"{where}: python_param.module is empty; name the module "
                                         "that defines the layer class", name=module)
        mod = _import(module, source_dir, where)
        origin = getattr(mod, "__file__", None) or module
    if not class_name:
        raise PythonLayerClassError(f"{where}: python_param.layer is empty; name the layer class "
                                    f"defined in {origin}")
    cls = getattr(mod, class_name, None)
    if not inspect.isclass(cls):
        classes = sorted(n for n, v in vars(mod).items()
                         if inspect.isclass(v) and getattr(v, "__module__", None) == mod.__name__)
        raise PythonLayerClassError(
            f"{where}: module {mod.__name__!r} ({origin}) has no class {class_name!r}; "
            f"classes it defines: {', '.join(classes) or 'none'}")
    return cls, f"{mod.__name__}.{class_name}"
