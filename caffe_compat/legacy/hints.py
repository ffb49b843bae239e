"""What translation cannot fix, said where it happens: Python 2's integer ``/``.

In Python 2, ``7 / 2`` between integers is ``3``; in Python 3 it is ``3.5``,
and no translation can tell an integer division from a true one. Code that
then uses the result as an index or a size fails (``list indices must be
integers``, ``'float' object cannot be interpreted as an integer``, NumPy's
``only integers, slices ... are valid indices``). :func:`add_division_hint`
adds a note to such an exception naming the user's file and line where it
failed and the lines of that function that divide with ``/``, suggesting
``//``.
"""

from __future__ import annotations

import io
import linecache
import re
import tokenize
from types import TracebackType

from .importer import is_user_path
from .translate import translated_files

__all__ = ["add_division_hint", "division_lines"]

_FLOAT_INDEX = re.compile(
    r"indices must be integers|cannot be interpreted as an integer|only integers, slices"
    r"|integer argument expected, got float|expected a sequence of integers or a single integer"
)


def _innermost_user_frame(tb: TracebackType | None) -> tuple[str, int, int, int] | None:
    """(file, line, first line, last line) of the innermost frame in the user's own files."""
    found = None
    while tb is not None:
        code = tb.tb_frame.f_code
        name = code.co_filename
        if not name.startswith("<") and is_user_path(name):
            lines = [ln for _, _, ln in code.co_lines() if ln is not None] or [tb.tb_lineno]
            found = (name, tb.tb_lineno, min(lines + [code.co_firstlineno]), max(lines))
        tb = tb.tb_next
    return found


def division_lines(path: str, first: int, last: int) -> list[int]:
    """Lines ``first..last`` of ``path`` that contain a ``/`` or ``/=`` operator."""
    text = "".join(linecache.getline(path, n) for n in range(first, last + 1))
    found: list[int] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.OP and tok.string in ("/", "/="):
                line = first + tok.start[0] - 1
                if line not in found:
                    found.append(line)
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass
    return found


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return seen


def add_division_hint(exc: BaseException) -> bool:
    """Add the integer-division note to ``exc`` where it fits; whether it did."""
    for inner in _chain(exc):
        if not isinstance(inner, (TypeError, IndexError, ValueError)) or not _FLOAT_INDEX.search(str(inner)):
            continue
        frame = _innermost_user_frame(inner.__traceback__)
        if frame is None:
            continue
        path, line, first, last = frame
        divisions = division_lines(path, first, last)
        if not divisions:
            continue
        shown = ", ".join(str(n) for n in divisions[:8]) + (", ..." if len(divisions) > 8 else "")
        origin = " (translated from Python 2)" if path in translated_files else ""
        note = (f"caffe-compat: {path}:{line}{origin}: a float was used where an integer is needed. "
                f"In Python 2, '/' between integers gave an integer; in Python 3 it gives a float. "
                f"This function divides with '/' at line{'s' if len(divisions) > 1 else ''} {shown}: "
                f"where an integer result is meant, write '//'.")
        if note not in getattr(exc, "__notes__", ()):
            exc.add_note(note)
        return True
    return False
