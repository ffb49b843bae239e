"""``caffe-compat run SCRIPT [ARGS...]``: an unmodified pycaffe script on caffe_compat.

    caffe-compat run train_net.py --iters 100
    caffe-compat run -m mypackage.tool ARGS...
    python -m caffe_compat run SCRIPT ARGS...

Before the script starts, :func:`caffe_compat.install_alias` makes
``import caffe``, ``from caffe.proto import caffe_pb2``, ``import caffe.io``
... give caffe_compat, even if a compiled pycaffe is installed (asking for
``run`` says which one is meant). The script then runs as ``python SCRIPT``
would run it: ``__name__ == "__main__"``, ``sys.argv = [SCRIPT, *ARGS]``, the
script's directory first on ``sys.path``; its exit status is the command's,
and an uncaught exception prints its traceback and exits with status 1.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import traceback
from pathlib import Path
from types import TracebackType

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


def _user_frames(tb: TracebackType | None, target: str) -> TracebackType | None:
    """Drop the frames of this runner (and runpy) before the script's own."""
    first = tb
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name == target or (not name.endswith(("runpy.py", "run.py")) and "<frozen" not in name):
            return tb
        tb = tb.tb_next
    return first


def run_script(target: str, argv: list[str], as_module: bool = False) -> int:
    """Run a script (or ``-m`` module) with ``import caffe`` giving caffe_compat."""
    install_alias()
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
        else:
            runpy.run_path(where, run_name="__main__")
        return 0
    except SystemExit as exc:
        return _exit_status(exc.code)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - the script's own error: show it like python does
        tb = _user_frames(exc.__traceback__, where)
        traceback.print_exception(type(exc), exc, tb)
        return 1
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        sys.stdout.flush()


@command("run", "run a pycaffe script with 'import caffe' giving caffe_compat", passthrough=True)
def setup(parser: argparse.ArgumentParser):
    parser.usage = "caffe-compat run SCRIPT [ARGS...]  |  caffe-compat run -m MODULE [ARGS...]"
    parser.add_argument("script", help="the Python script to run (or -m MODULE)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")

    def run(args: argparse.Namespace) -> int:
        rest = list(args.args)
        if args.script in ("-h", "--help"):
            parser.print_help()
            return 0
        if args.script == "-m":
            if not rest:
                parser.error("-m needs a module name")
            return run_script(rest[0], rest[1:], as_module=True)
        return run_script(args.script, rest)

    return run
