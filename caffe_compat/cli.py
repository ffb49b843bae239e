"""The ``caffe-compat`` command: Caffe's ``caffe`` tool and its companions.

Subcommands live in :mod:`caffe_compat.commands`, one module each, and
register themselves with :func:`command`. Flags are accepted in every form
gflags accepts: ``-solver x``, ``--solver x``, ``-solver=x``, ``--solver=x``,
and booleans as ``--flag``, ``--flag=false`` or ``--noflag``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
import traceback
from typing import Callable, Sequence

from ._usercode import user_frames
from .errors import CaffeCompatError
from .glog import FILES_ONLY, setup_cli_logging

__all__ = ["main", "command", "gflags_argv", "bool_flags", "parse_bool", "Command"]

Handler = Callable[[argparse.Namespace], int]


class Command:
    def __init__(self, name: str, help: str, configure: Callable[[argparse.ArgumentParser], None],
                 run: Handler, passthrough: bool = False, python_layers: bool = False) -> None:
        self.name = name
        self.help = help
        self.configure = configure
        self.run = run
        self.passthrough = passthrough  # keeps raw argv after the name (e.g. `run SCRIPT ...`)
        # builds nets, so may import the user's Python-layer modules (translated from Python 2
        # when they need it, as under `caffe-compat run`)
        self.python_layers = python_layers


_COMMANDS: dict[str, Command] = {}


Setup = Callable[[argparse.ArgumentParser], Handler]


def command(name: str, help: str, passthrough: bool = False,
            python_layers: bool = False) -> Callable[[Setup], Setup]:
    """Register a subcommand. The decorated function adds its arguments to the
    parser and returns the function that runs it. ``python_layers``: the command
    builds nets, whose Python-layer modules may be Python 2 (Caffe-era layers run
    as they are unless strict mode is on, see :mod:`caffe_compat.legacy`)."""

    def deco(setup: Setup) -> Setup:
        holder: dict[str, Handler] = {}

        def configure(parser: argparse.ArgumentParser) -> None:
            holder["run"] = setup(parser)

        def run(args: argparse.Namespace) -> int:
            return holder["run"](args)

        _COMMANDS[name] = Command(name, help, configure, run, passthrough, python_layers)
        return setup

    return deco


def _load_commands() -> None:
    from . import commands

    for info in pkgutil.iter_modules(commands.__path__):
        importlib.import_module(f"{commands.__name__}.{info.name}")


def gflags_argv(argv: Sequence[str], booleans: Sequence[str] = ()) -> list[str]:
    """Rewrite gflags spellings into argparse's: ``-flag`` → ``--flag``,
    ``--noflag`` → ``--flag=false`` for known booleans."""
    out: list[str] = []
    bools = set(booleans)
    for arg in argv:
        if arg.startswith("-") and not arg.startswith("--") and len(arg) > 2 and not _is_number(arg):
            arg = "-" + arg
        if arg.startswith("--no") and arg[4:].split("=")[0] in bools and "=" not in arg:
            arg = f"--{arg[4:]}=false"
        out.append(arg)
    return out


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def bool_flags(parser: argparse.ArgumentParser, names: list[str]) -> None:
    """Let ``--flag`` / ``--noflag`` / ``--flag=false`` work for boolean ``names``
    without ``--flag`` swallowing the positional argument after it (gflags
    booleans never take the next word)."""
    parse = parser.parse_known_args
    bools = set(names)

    def parse_known_args(args=None, namespace=None):  # type: ignore[no-untyped-def]
        out = []
        for a in args or []:
            name = a.lstrip("-")
            if a.startswith("-") and "=" not in a and not a.startswith("---"):
                if name in bools:
                    a = f"--{name}=true"
                elif name.startswith("no") and name[2:] in bools:
                    a = f"--{name[2:]}=false"
            out.append(a)
        return parse(out, namespace)

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]


def parse_bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    v = value.strip().lower()
    if v in ("1", "true", "t", "yes", "y"):
        return True
    if v in ("0", "false", "f", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def build_parser() -> argparse.ArgumentParser:
    _load_commands()
    parser = argparse.ArgumentParser(
        prog="caffe-compat",
        description="Caffe's command line on PyTorch: train, test, time, device_query and tools.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in sorted(_COMMANDS):
        cmd = _COMMANDS[name]
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        cmd.configure(p)
        p.set_defaults(_command=cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] in _COMMANDS and _COMMANDS[argv[0]].passthrough:
        args = parser.parse_args(argv[:1] + ["--"] + argv[1:]) if len(argv) > 1 else parser.parse_args(argv)
    else:
        args = parser.parse_args(gflags_argv(argv))
    if not getattr(args, "_command", None):
        parser.print_help()
        return 1
    setup_cli_logging()
    if args._command.python_layers:
        from . import legacy, mode

        if not mode.is_strict():
            legacy.enable()
    try:
        return int(args._command.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - reported below, or re-raised if it is our bug
        frames = user_frames(exc)
        if not isinstance(exc, (CaffeCompatError, OSError)) and not frames:
            raise  # a bug in caffe_compat: keep the whole traceback
        report_error(args.command, exc, frames)
        return 1


# ------------------------------------------------------------------ errors
def error_message(exc: BaseException) -> str:
    """One line for ``exc``: its message, or its type and message when the type says something."""
    text = str(exc)
    if isinstance(exc, CaffeCompatError):
        return text or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def report_error(command_name: str, exc: BaseException,
                 frames: Sequence[traceback.FrameSummary] = ()) -> None:
    """The command's error, printed once: ``caffe-compat CMD: error: ...`` on stderr
    (and as an ``E`` line in glog's files), then where in the user's code it happened."""
    message = error_message(exc)
    logging.getLogger("caffe_compat").error("%s", message, extra=FILES_ONLY)
    print(f"caffe-compat {command_name}: error: {message}", file=sys.stderr)
    for f in frames:
        print(f'  File "{f.filename}", line {f.lineno}, in {f.name}', file=sys.stderr)
        if f.line:
            print(f"    {f.line.strip()}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
