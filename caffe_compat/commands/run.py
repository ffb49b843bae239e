"""``caffe-compat run SCRIPT [ARGS...]``: an unmodified pycaffe script on caffe_compat.

    caffe-compat run train_net.py --iters 100
    caffe-compat run -m mypackage.tool ARGS...
    caffe-compat run --strict SCRIPT ARGS...
    python -m caffe_compat run SCRIPT ARGS...

Before the script starts, :func:`caffe_compat.install_alias` makes
``import caffe``, ``from caffe.proto import caffe_pb2``, ``import caffe.io``
... give caffe_compat, even if a compiled pycaffe is installed (asking for
``run`` says which one is meant). The script then runs as ``python SCRIPT``
would run it: ``__name__ == "__main__"``, ``sys.argv = [SCRIPT, *ARGS]``, the
script's directory first on ``sys.path``; its exit status is the command's,
and an uncaught exception prints its traceback and exits with status 1.

Caffe-era scripts run as they are (:mod:`caffe_compat.legacy`): Python 2
files of the user's tree (the script, the modules it imports, Python-layer
modules) are translated when they do not compile as Python 3, NumPy's
removed aliases (``np.float``, ...) work, and a float used as an index says
where and hints at ``//``. ``--strict`` turns all of that off and turns on
caffe_compat's strict mode (:func:`caffe_compat.set_strict`); so does
``CAFFE_COMPAT_STRICT=1``.
"""

from __future__ import annotations

import argparse
import builtins
import os
import runpy
import sys
import traceback
import types
from pathlib import Path
from types import TracebackType

from .. import legacy, mode
from ..alias import install_alias
from ..cli import command

__all__ = ["run_script"]


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # sys.exit("message"), as the interpreter does
    return 1


_OURS = str(Path(__file__).resolve().parents[1])  # caffe_compat/


def _user_frames(tb: TracebackType | None, target: str) -> TracebackType | None:
    """Drop the frames of this runner (runpy, caffe_compat's) before the script's own."""
    first = tb
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name == target or not (name.endswith("runpy.py") or name.startswith((_OURS, "<frozen"))):
            return tb
        tb = tb.tb_next
    return first


def _run_main(path: str) -> None:
    """``runpy.run_path(path, run_name="__main__")``, with Python 2 translation."""
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=path, __cached__=None, __loader__=None, __package__=None,
                         __spec__=None, __builtins__=builtins)
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = main
    try:
        legacy.run_code(path, main.__dict__)
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved


def run_script(target: str, argv: list[str], as_module: bool = False, strict: bool = False) -> int:
    """Run a script (or ``-m`` module) with ``import caffe`` giving caffe_compat.

    Unless ``strict`` (or caffe_compat's strict mode is on), Python 2 files are
    translated and NumPy's removed aliases restored while it runs.
    """
    install_alias()
    was_strict = mode.is_strict()
    if strict:
        mode.set_strict(True)
    lenient = not mode.is_strict()
    was_enabled = legacy.enabled()
    if lenient:
        legacy.enable()
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    if as_module:
        sys.argv = [target, *argv]
        sys.path.insert(0, os.getcwd())
        where = target
    else:
        path = Path(target)
        if not path.is_file():
            print(f"caffe-compat run: can't open file {str(path)!r}: no such file", file=sys.stderr)
            return 2
        sys.argv = [target, *argv]
        sys.path.insert(0, str(path.resolve().parent))
        where = str(path)
    try:
        if as_module:
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        elif lenient:
            _run_main(where)
        else:
            runpy.run_path(where, run_name="__main__")
        return 0
    except SystemExit as exc:
        return _exit_status(exc.code)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - the script's own error: show it like python does
        if lenient:
            legacy.add_division_hint(exc)
        elif isinstance(exc, SyntaxError):
            exc.add_note("caffe-compat run: Python 2 translation is off in strict mode (--strict or "
                         "CAFFE_COMPAT_STRICT=1)")
        tb = _user_frames(exc.__traceback__, where)
        traceback.print_exception(type(exc), exc, tb)
        return 1
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        if lenient and not was_enabled:
            legacy.disable()
        mode.set_strict(was_strict)
        sys.stdout.flush()


@command("run", "run a pycaffe script with 'import caffe' giving caffe_compat", passthrough=True)
def setup(parser: argparse.ArgumentParser):
    parser.usage = "caffe-compat run [--strict] SCRIPT [ARGS...]  |  ... run [--strict] -m MODULE [ARGS...]"
    parser.description = (
        "Run a pycaffe script with 'import caffe' giving caffe_compat. Python 2 files of your tree are "
        "translated when they do not compile as Python 3, and NumPy's removed aliases (np.float, ...) "
        "work; --strict turns that off (and turns on caffe_compat's strict mode).")
    parser.add_argument("script", help="the Python script to run (or -m MODULE)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")

    def run(args: argparse.Namespace) -> int:
        rest = [args.script, *args.args]
        strict = False
        while rest and rest[0] == "--strict":
            strict = True
            rest.pop(0)
        if not rest:
            parser.error("no script given")
        first, rest = rest[0], rest[1:]
        if first in ("-h", "--help"):
            parser.print_help()
            return 0
        if first == "-m":
            if not rest:
                parser.error("-m needs a module name")
            return run_script(rest[0], rest[1:], as_module=True, strict=strict)
        return run_script(first, rest, strict=strict)

    return run
