"""The text files Caffe's data layers read: image lists, HDF5 lists, window files.

* image list (``ImageData``, ``convert_imageset``): one ``path label`` per
  line, split at the **last** space so paths may contain spaces; a line with
  no space is a path with label 0 (Caffe's ``atoi`` would read digits at the
  start of the path). Blank lines are not records. A label that is not an
  integer is an error naming the line (Caffe silently reads 0).
* HDF5 list (``HDF5Data``): whitespace-separated paths of ``.h5`` files.
* window file (``WindowData``): R-CNN's ``# index / path / C H W / n /
  n × (label overlap x1 y1 x2 y2)`` records.

Relative paths are taken from the working directory, as Caffe does; when no
such file exists, the list file's own directory is tried.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ..errors import DataError, SuspiciousInputWarning, warn_or_raise

__all__ = ["read_text_file", "read_image_list", "read_hdf5_list", "WindowImage", "read_window_file",
           "beside"]


def read_text_file(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except OSError as exc:
        raise DataError(f'{what}: cannot open "{path}": {exc.strerror or exc}') from None


def beside(path: str, list_file: str, cwd: str | None = None) -> str:
    """``path`` from the working directory (``cwd``, default the current one)
    if it exists there, else relative to ``list_file``'s directory; absolute."""
    here = os.path.join(cwd or os.getcwd(), path)
    if os.path.isabs(path) or os.path.exists(here):
        return here
    alt = os.path.join(os.path.dirname(os.path.abspath(list_file)), path)
    return alt if os.path.exists(alt) else here


_INT = re.compile(r"^[+-]?\d+$")


def read_image_list(source: str, what: str) -> list[tuple[str, int]]:
    """``(path, label)`` pairs of an image list file, in file order."""
    lines: list[tuple[str, int]] = []
    unlabelled: list[tuple[int, str]] = []
    for number, raw in enumerate(read_text_file(source, what).split("\n"), 1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        pos = line.rfind(" ")
        if pos < 0:  # Caffe: the whole line is the path, atoi(path) = 0 the label
            unlabelled.append((number, line))
            lines.append((line, 0))
            continue
        token = line[pos + 1:].strip()
        if not _INT.match(token):
            raise DataError(f'{what}: {source}:{number}: expected "path label" with an integer '
                            f"label, got {line!r}")
        lines.append((line[:pos], int(token)))
    if not lines:
        raise DataError(f'{what}: image list "{source}" is empty')
    if unlabelled:
        number, line = unlabelled[0]
        warn_or_raise(f'{what}: {source}:{number}: no label on {len(unlabelled)} line(s) of the image '
                      f'list (the first: {line!r}); Caffe reads such a line as a path with label 0',
                      SuspiciousInputWarning, DataError, stacklevel=4)
    return lines


def read_hdf5_list(source: str, what: str) -> list[str]:
    files = [beside(p, source) for p in read_text_file(source, what).split()]
    if not files:
        raise DataError(f'{what}: must have at least 1 HDF5 filename listed in "{source}"')
    return files


@dataclass
class WindowImage:
    path: str
    channels: int
    height: int
    width: int
    windows: list[tuple[int, float, int, int, int, int]] = field(default_factory=list)


def read_window_file(source: str, root_folder: str, what: str) -> dict[int, WindowImage]:
    """image_index → image and its windows (label, overlap, x1, y1, x2, y2)."""
    tokens = read_text_file(source, what).split()
    if len(tokens) < 2:
        raise DataError(f'{what}: window file "{source}" is empty')
    images: dict[int, WindowImage] = {}
    pos = 0

    def take(kind: type, name: str):  # type: ignore[no-untyped-def]
        nonlocal pos
        if pos >= len(tokens):
            raise DataError(f'{what}: window file "{source}" ends early (expected {name})')
        tok = tokens[pos]
        pos += 1
        try:
            return kind(tok)
        except ValueError:
            raise DataError(f'{what}: window file "{source}": expected {name}, got {tok!r}') from None

    while pos < len(tokens):
        mark = take(str, '"#"')
        if mark != "#":
            raise DataError(f'{what}: window file "{source}": expected "#", got {mark!r}')
        index = take(int, "an image index")
        img = WindowImage(os.path.abspath(root_folder + take(str, "an image path")), take(int, "channels"),
                          take(int, "height"), take(int, "width"))
        for _ in range(take(int, "the number of windows")):
            img.windows.append((take(int, "a class index"), take(float, "an overlap"),
                                take(int, "x1"), take(int, "y1"), take(int, "x2"), take(int, "y2")))
        images[index] = img
    return images
