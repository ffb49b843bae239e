"""Python 2 source → Python 3 code, with fissix (a maintained lib2to3), cached.

:func:`compile_source` is what the ``caffe-compat run`` import hook, the script
runner and the Python-layer loader call: source that compiles as Python 3 is
compiled as it is; only source that does not is translated with fissix's
standard fixers (2to3's default set) and compiled under the *original* file
name, so tracebacks, ``__file__`` and ``linecache`` show the user's file. Where
a fixer changes the number of lines (``def f((a, b))``, ``from urllib import
a, b``), the code's line numbers are mapped back to the original lines.

Translations are cached under ``$XDG_CACHE_HOME/caffe_compat/py2`` (default
``~/.cache/caffe_compat/py2``; ``CAFFE_COMPAT_PY2_CACHE`` overrides), keyed by a
hash of the source, its path and the translator's version, as the translated
text (readable), what changed, and the compiled code: a second run neither
imports fissix nor compiles again. Each translated file is logged once per run
with the fixers that changed something.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import importlib.metadata
import json
import logging
import marshal
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType
from typing import Any

__all__ = ["Translation", "TranslationError", "cache_dir", "compile_source", "translate", "translated_files"]

_log = logging.getLogger("caffe_compat")

#: bump when the translation of a given source changes (invalidates caches)
_FORMAT = 1
_FIXERS = "fissix.fixes"


class TranslationError(SyntaxError):
    """Source that is neither Python 3 nor Python 2 that fissix can parse."""


@dataclass
class Translation:
    """The Python 3 text of a Python 2 file and how it maps to the original."""

    path: str
    text: str
    fixers: list[str]
    #: original line of each translated line (index 0 = line 1); None when they are the same
    line_map: list[int] | None = None
    cached: bool = False
    code: CodeType | None = field(default=None, repr=False)


#: path → fixers, for every file translated in this process (error hints read it)
translated_files: dict[str, list[str]] = {}


def cache_dir() -> Path:
    given = os.environ.get("CAFFE_COMPAT_PY2_CACHE")
    if given:
        return Path(given).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "caffe_compat" / "py2"


def _fissix_version() -> str:
    try:
        return importlib.metadata.version("fissix")
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def _key(source: bytes, path: str) -> str:
    h = hashlib.sha256()
    h.update(f"{_FORMAT}\0{_fissix_version()}\0{path}\0".encode())
    h.update(source)
    return h.hexdigest()[:32]


# ------------------------------------------------------------------ fissix
def _refactor(text: str, path: str) -> tuple[str, list[str]]:
    """fissix's standard fixers on ``text``; the names of those that changed something."""
    try:
        from fissix.refactor import RefactoringTool, get_fixers_from_package
    except ImportError:  # pragma: no cover - an install without the extra
        raise ImportError("translating Python 2 source needs the 'fissix' package "
                          "(pip install fissix, or caffe-compat[py2])") from None

    changed: list[str] = []

    class Tool(RefactoringTool):  # type: ignore[misc]
        def get_fixers(self) -> tuple[list[Any], list[Any]]:
            pre, post = super().get_fixers()
            for fixer in pre + post:
                fixer.transform = _recording(fixer, changed)
            return pre, post

    tool = Tool(get_fixers_from_package(_FIXERS))
    tree = tool.refactor_string(text if text.endswith("\n") else text + "\n", path)
    out = str(tree)
    if not text.endswith("\n") and out.endswith("\n"):
        out = out[:-1]
    return out, sorted(set(changed), key=changed.index)


def _recording(fixer: Any, changed: list[str]) -> Any:
    transform = fixer.transform
    name = type(fixer).__module__.rsplit(".", 1)[-1].removeprefix("fix_")

    def recorded(node: Any, results: Any) -> Any:
        before, parent = str(node), node.parent
        new = transform(node, results)
        if new is not None:
            differs = str(new) != before
        else:  # changed in place, or replaced the node itself in its parent
            differs = str(node) != before or (parent is not None and node.parent is None)
        if differs:
            changed.append(name)
        return new

    return recorded


def _expand_tabs(text: str) -> str:
    """Leading tabs as Python 2 read them (to the next multiple of 8 columns)."""
    out = []
    for line in text.splitlines(keepends=True):
        body = line.lstrip(" \t")
        out.append(line[:len(line) - len(body)].expandtabs(8) + body)
    return "".join(out)


def _line_map(original: str, translated: str) -> list[int] | None:
    """For each translated line, the original line it came from (None if 1:1)."""
    a, b = original.splitlines(), translated.splitlines()
    if len(a) == len(b):
        return None
    mapping: list[int] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        for k in range(j2 - j1):
            if tag == "equal":
                mapping.append(i1 + k + 1)
            elif i2 > i1:  # replaced: spread over the original lines, extras on the last
                mapping.append(min(i1 + k, i2 - 1) + 1)
            else:  # inserted: belongs to the line before
                mapping.append(max(i1, 1))
    return mapping


# ------------------------------------------------------------------ compile
def _compile(t: Translation, original: str, optimize: int) -> CodeType:
    """Compile ``t.text`` under the original path, positions pointing at the original lines."""
    tree = ast.parse(t.text, t.path)
    lines = original.splitlines()
    new = t.text.splitlines()
    mapping = t.line_map

    def where(n: int) -> int:
        return mapping[n - 1] if mapping is not None and 0 < n <= len(mapping) else n

    def changed(n: int) -> bool:
        o = where(n)
        return not (0 < n <= len(new) and 0 < o <= len(lines) and new[n - 1] == lines[o - 1])

    for each in ast.walk(tree):
        if not hasattr(each, "lineno"):
            continue
        node: Any = each
        start, end = node.lineno, getattr(node, "end_lineno", None) or node.lineno
        if changed(start) or changed(end):
            # Columns of a rewritten line mean nothing in the original: cover the whole line.
            o_start, o_end = where(start), where(end)
            text_s = lines[o_start - 1] if 0 < o_start <= len(lines) else ""
            text_e = lines[o_end - 1] if 0 < o_end <= len(lines) else ""
            node.col_offset = len(text_s) - len(text_s.lstrip())
            node.end_col_offset = len(text_e.rstrip())
        node.lineno, node.end_lineno = where(start), max(where(start), where(end))
    return compile(tree, t.path, "exec", dont_inherit=True, optimize=optimize)


# ------------------------------------------------------------------ cache
def _read_cache(key: str, path: str) -> Translation | None:
    folder = cache_dir()
    meta_file = folder / f"{key}.json"
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        text = (folder / f"{key}.py").read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    t = Translation(path, text, list(meta.get("fixers", [])), meta.get("line_map"), cached=True)
    try:
        code = marshal.loads((folder / f"{key}.{sys.implementation.cache_tag}.code").read_bytes())
        if isinstance(code, CodeType) and code.co_filename == path:
            t.code = code
    except (OSError, ValueError, EOFError, TypeError):
        pass
    return t


def _write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_cache(key: str, t: Translation, code_only: bool = False) -> None:
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not code_only:
            _write(folder / f"{key}.py", t.text.encode("utf-8"))
            meta = {"path": t.path, "fixers": t.fixers, "line_map": t.line_map}
            _write(folder / f"{key}.json", json.dumps(meta).encode("utf-8"))
        if t.code is not None:
            _write(folder / f"{key}.{sys.implementation.cache_tag}.code", marshal.dumps(t.code))
    except OSError as exc:
        _log.debug("cannot cache the Python 2 translation of %s in %s: %s", t.path, folder, exc)


# ------------------------------------------------------------------ entry points
def translate(source: bytes | str, path: str, error: SyntaxError | None = None) -> Translation:
    """The Python 3 translation of ``source`` (from the cache when there is one).

    ``error`` is the SyntaxError compiling ``source`` as Python 3 gave; it is
    what is raised (with a note) when fissix cannot parse the source either.
    """
    data = source.encode("utf-8") if isinstance(source, str) else source
    key = _key(data, path)
    hit = _read_cache(key, path)
    if hit is not None:
        return hit
    text = data.decode(_encoding(data)) if isinstance(source, bytes) else source
    fixers: list[str] = []
    if isinstance(error, TabError):
        text = _expand_tabs(text)
        fixers.append("tabs")
        try:
            compile(text, path, "exec", dont_inherit=True)
            t = Translation(path, text, fixers)
            _write_cache(key, t)
            return t
        except SyntaxError:
            pass
    try:
        out, changed = _refactor(text, path)
    except ImportError:
        raise
    except Exception as exc:  # fissix's ParseError / TokenError: not Python 2 either
        if error is None:
            raise TranslationError(f"{path}: not Python 2 that fissix can parse: {exc}") from exc
        if hasattr(error, "add_note"):
            error.add_note(f"(not Python 2 either: fissix could not parse {path}: {exc})")
        raise error.with_traceback(None) from None
    original = data.decode(_encoding(data))
    t = Translation(path, out, fixers + changed, _line_map(original, out))
    _write_cache(key, t)
    return t


def _encoding(data: bytes) -> str:
    import io
    import tokenize

    try:
        return tokenize.detect_encoding(io.BytesIO(data).readline)[0]
    except SyntaxError:
        return "latin-1"


def compile_source(source: bytes | str, path: str, optimize: int = -1) -> tuple[CodeType, Translation | None]:
    """Compile ``source`` as Python 3, translating it from Python 2 if it does not compile.

    Returns the code and the :class:`Translation` (None when none was needed).
    """
    try:
        return compile(source, path, "exec", dont_inherit=True, optimize=optimize), None
    except SyntaxError as exc:
        error = exc
    t = translate(source, path, error)
    data = source.encode("utf-8") if isinstance(source, str) else source
    original = data.decode(_encoding(data))
    if t.code is None:
        try:
            t.code = _compile(t, original, optimize)
        except SyntaxError as exc:
            exc.add_note(f"(in the Python 3 translation of {path}; fixers applied: "
                         f"{', '.join(t.fixers) or 'none'}; translated text in {cache_dir()})")
            raise
        if optimize == -1:
            _write_cache(_key(data, path), t, code_only=True)
    if path not in translated_files:
        translated_files[path] = t.fixers
        _log.info("%s: translated from Python 2 (%s)%s", path,
                  ", ".join(t.fixers) or "no fixer changed anything",
                  "; cached translation" if t.cached else "")
    return t.code, t
