"""``import caffe`` for plain ``python``: an opt-in, reversible hook in one environment.

``caffe-compat alias install`` writes two small files into the site-packages
(purelib) of the running interpreter's environment (``sys.prefix``):

* ``_caffe_compat_alias.py``: a finder that, on the first ``import caffe``,
  calls :func:`caffe_compat.alias.install_alias` and hands back caffe_compat
  (so ``import caffe``, ``caffe.io``, ``from caffe.proto import caffe_pb2``
  ... are caffe_compat's modules, as under ``caffe-compat run``);
* ``caffe_compat_alias.pth``: one line that registers the finder when the
  interpreter starts (site-packages ``.pth`` files run at start-up). The
  finder imports nothing else, so start-up stays as fast as before, and
  caffe_compat (and torch) load only when a script imports ``caffe``.

The finder goes first on ``sys.meta_path``, so it wins over any other
``caffe`` on the path. That is why :func:`install` refuses when a ``caffe``
package (a compiled pycaffe, or anything named ``caffe``) is importable in
this environment, unless ``force`` is given; the other package is left as
it is, and :func:`uninstall` (removing both files) gives it back.
caffe_compat never installs the hook by itself.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from .errors import CaffeCompatError

__all__ = ["AliasStatus", "AliasInstallError", "site_dir", "status", "install", "uninstall",
           "HOOK_MODULE", "PTH_FILE"]

HOOK_MODULE = "_caffe_compat_alias"
PTH_FILE = "caffe_compat_alias.pth"
_MARK = "# written by `caffe-compat alias install`"

_HOOK_SOURCE = f'''{_MARK}; remove with `caffe-compat alias uninstall`.
"""Makes ``import caffe`` give caffe_compat in this environment (see caffe_compat.alias_install)."""

import sys


class _Loader:
    def create_module(self, spec):
        try:
            from caffe_compat.alias import install_alias
        except ImportError as exc:
            raise ModuleNotFoundError(
                "No module named 'caffe': the caffe-compat alias in this environment "
                f"({{__file__}}) cannot import caffe_compat ({{exc}}); reinstall caffe-compat or "
                "delete that file and caffe_compat_alias.pth beside it", name="caffe") from None
        return install_alias()  # caffe_compat itself, also registered as sys.modules["caffe"]

    def exec_module(self, module):
        pass


class CaffeCompatAliasFinder:
    """On ``import caffe``: caffe_compat (``caffe.<x>`` then follows through its own alias)."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "caffe":
            return None
        from importlib.machinery import ModuleSpec

        return ModuleSpec("caffe", _Loader())


def register():
    if not any(getattr(f, "__name__", "") == "CaffeCompatAliasFinder" for f in sys.meta_path):
        sys.meta_path.insert(0, CaffeCompatAliasFinder)
'''

_PTH_LINE = f"import {HOOK_MODULE}; {HOOK_MODULE}.register()\n"


class AliasInstallError(CaffeCompatError, RuntimeError):
    """The alias cannot be installed or removed here (as things are)."""


@dataclass
class AliasStatus:
    site: Path
    installed: bool          # both files are ours
    foreign: list[Path]      # files of our names that we did not write
    other_caffe: str | None  # another `caffe` importable in this environment

    def describe(self) -> str:
        lines = []
        if self.installed:
            lines.append(f"installed: plain `python` in this environment ({sys.prefix}) gets caffe_compat "
                         f"from `import caffe` (files {self.site / PTH_FILE} and "
                         f"{self.site / (HOOK_MODULE + '.py')})")
            if self.other_caffe:
                lines.append(f"it shadows the other `caffe` at {self.other_caffe} "
                             "(`caffe-compat alias uninstall` gives it back)")
        else:
            lines.append(f"not installed in this environment ({sys.prefix}); "
                         "`caffe-compat alias install` adds it")
            lines.append(f"`import caffe` gives {self.other_caffe}" if self.other_caffe
                         else "`import caffe` finds no module")
        for path in self.foreign:
            lines.append(f"warning: {path} exists but was not written by caffe-compat")
        return "\n".join(lines)


def site_dir() -> Path:
    """The active environment's site-packages: ``purelib`` of ``sys.prefix``."""
    return Path(sysconfig.get_paths(vars={"base": sys.prefix, "platbase": sys.exec_prefix})["purelib"])


def _ours(path: Path, expected: str) -> bool:
    try:
        return path.read_text(encoding="utf-8") == expected
    except OSError:
        return False


def _other_caffe() -> str | None:
    """Where ``import caffe`` would load a module from, without our hook: a description."""
    spec = importlib.machinery.PathFinder.find_spec("caffe")
    if spec is None:
        return None
    where = list(spec.submodule_search_locations or []) or [spec.origin or "?"]
    compiled = any(any(Path(loc).glob("_caffe*")) for loc in where if os.path.isdir(loc))
    return f"{'a compiled pycaffe' if compiled else 'a package named caffe'} at {where[0]}"


def status() -> AliasStatus:
    site = site_dir()
    files = {site / PTH_FILE: _PTH_LINE, site / (HOOK_MODULE + ".py"): _HOOK_SOURCE}
    present = {p: p.exists() for p in files}
    ours = {p: present[p] and _ours(p, text) for p, text in files.items()}
    foreign = [p for p in files if present[p] and not ours[p]]
    return AliasStatus(site, all(ours.values()), foreign, _other_caffe())


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise AliasInstallError(f"cannot write {path}: {exc.strerror or exc} (is this environment "
                                "yours? activate a virtual environment you can write to)") from None


def install(force: bool = False) -> AliasStatus:
    """Write the hook into this environment; see the module docstring."""
    now = status()
    if now.installed:
        return now
    if now.foreign and not force:
        raise AliasInstallError(f"{now.foreign[0]} exists and was not written by caffe-compat; "
                                "use --force to replace it")
    if now.other_caffe and not force:
        raise AliasInstallError(f"`import caffe` already gives {now.other_caffe}; the alias would "
                                "shadow it in this environment (use --force to install it anyway; "
                                "`caffe-compat alias uninstall` undoes it), or use `caffe-compat run "
                                "SCRIPT` for one script")
    now.site.mkdir(parents=True, exist_ok=True)
    _write(now.site / (HOOK_MODULE + ".py"), _HOOK_SOURCE)
    _write(now.site / PTH_FILE, _PTH_LINE)  # last: the hook module exists once the line runs
    return status()


def uninstall(force: bool = False) -> tuple[AliasStatus, list[Path]]:
    """Remove the hook's files; returns the new status and the files removed."""
    now = status()
    if now.foreign and not force:
        raise AliasInstallError(f"{now.foreign[0]} was not written by caffe-compat; leaving it "
                                "(use --force to remove it)")
    removed = []
    site = now.site
    for path in (site / PTH_FILE, site / (HOOK_MODULE + ".py")):  # the .pth line first
        if path.exists():
            try:
                path.unlink()
            except OSError as exc:
                raise AliasInstallError(f"cannot remove {path}: {exc.strerror or exc}") from None
            removed.append(path)
    cache = site / "__pycache__"
    for stale in cache.glob(HOOK_MODULE + ".*.pyc") if cache.is_dir() else ():
        stale.unlink(missing_ok=True)
    return status(), removed
