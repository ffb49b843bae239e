"""``caffe-compat convert_imageset``: Caffe's ``tools/convert_imageset.cpp``.

    caffe-compat convert_imageset [FLAGS] ROOTFOLDER/ LISTFILE DB_NAME

LISTFILE has one ``path label`` per line (split at the last space); each image
``ROOTFOLDER + path`` is read as OpenCV reads it (BGR, or gray with
``--gray``), resized with bilinear filtering when ``--resize_height`` and
``--resize_width`` are both set, and stored as a Datum under the key
``%08d_<path>`` (the line number, so the database keeps the list order, or
the shuffled order with ``--shuffle``). ``--encoded`` (or ``--encode_type``)
stores image file bytes instead of pixels: the original file when it needs no
change and its extension matches, otherwise the image re-encoded. Flags:
``--backend`` lmdb|leveldb, ``--check_size`` (all items the same size).

Differences from Caffe: re-encoded images are written by the installed
OpenCV's ``imencode`` (or, without OpenCV, by Pillow with OpenCV's JPEG
quality 95 and PNG level 1), whose libraries may differ from the ones Caffe
was built with, and so may their bytes; ``--shuffle`` draws
from caffe_compat's seeded generator. Unreadable images are logged and left
out, as in Caffe, and counted in a summary line.
"""

from __future__ import annotations

import argparse
import logging
import os

from tqdm import tqdm

from .. import mode
from ..cli import bool_flags, command, parse_bool
from ..data.datum import encoded_datum, image_to_datum
from ..data.db import DBWriter
from ..data.image import encode, read_image
from ..data.sources import read_image_list
from ..errors import DataError

__all__ = ["convert_imageset", "read_image_to_datum"]

_log = logging.getLogger("caffe_compat")


def _match_ext(filename: str, encoding: str) -> bool:
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else filename.lower()
    enc = encoding.lower()
    return ext == enc or (enc == "jpg" and ext == "jpeg")


def read_image_to_datum(filename: str, label: int, height: int = 0, width: int = 0,
                        is_color: bool = True, encoding: str = ""):
    """Caffe's ``ReadImageToDatum``; returns (datum, (C, H, W) of the pixels)."""
    img = read_image(filename, height, width, is_color)
    shape = (img.shape[2], img.shape[0], img.shape[1])
    if encoding:
        if (img.shape[2] == 3) == is_color and not height and not width \
                and _match_ext(filename, encoding):
            with open(filename, "rb") as f:
                return encoded_datum(f.read(), label), shape
        return encoded_datum(encode(img, encoding), label), shape
    return image_to_datum(img, label), shape


def convert_imageset(root_folder: str, list_file: str, db_name: str, *, gray: bool = False,
                     shuffle: bool = False, backend: str = "lmdb", resize_height: int = 0,
                     resize_width: int = 0, check_size: bool = False, encoded: bool = False,
                     encode_type: str = "", progress: bool | None = None) -> int:
    """Write the images of ``list_file`` into a new database; returns how many."""
    lines = read_image_list(list_file, "convert_imageset")
    if shuffle:
        _log.info("Shuffling data")
        mode.host_rng().shuffle(lines)
    _log.info("A total of %d images.", len(lines))
    if encode_type and not encoded:
        _log.info("encode_type specified, assuming encoded=true.")
    resize_height, resize_width = max(0, resize_height), max(0, resize_width)
    count = failed = 0
    size = None
    with DBWriter(db_name, backend) as db:
        for line_id, (path, label) in enumerate(tqdm(lines, desc="convert_imageset", unit="img",
                                                     disable=None if progress is None else not progress)):
            enc = encode_type
            if encoded and not enc:
                enc = path.rsplit(".", 1)[-1].lower() if "." in path else ""
                if not enc:
                    _log.warning("Failed to guess the encoding of '%s'", path)
            try:
                datum, shape = read_image_to_datum(root_folder + path, label, resize_height,
                                                   resize_width, not gray, enc)
            except DataError as exc:
                _log.error("Could not open or find file %s (%s)", root_folder + path, exc)
                failed += 1
                continue
            if check_size:
                if size is None:
                    size = shape
                elif shape != size:
                    raise DataError(f'convert_imageset: "{path}" has shape {list(shape)}, the first '
                                    f"image {list(size)} (--check_size)")
            db.put(f"{line_id:08d}_{path}", datum.SerializeToString())
            count += 1
            if count % 1000 == 0:
                db.commit()
                _log.info("Processed %d files.", count)
    _log.info("Processed %d files.", count)
    if failed:
        _log.error("%d of %d images could not be read and were left out", failed, len(lines))
    return count


@command("convert_imageset", "convert a list of images into an LMDB/LevelDB of Datums")
def setup(parser: argparse.ArgumentParser):
    parser.usage = "caffe-compat convert_imageset [FLAGS] ROOTFOLDER/ LISTFILE DB_NAME"
    bool_flags(parser, ["gray", "shuffle", "check_size", "encoded"])

    def flag(name: str, help: str) -> None:
        parser.add_argument(f"--{name}", default=False, type=parse_bool, metavar="BOOL",
                            help=f"{help} (--{name}, --{name}=false or --no{name})")

    parser.add_argument("root_folder", help="prepended (as text) to each path of the list")
    parser.add_argument("list_file", help='lines of "path label"')
    parser.add_argument("db_name", help="the database to create")
    flag("gray", "read images as gray")
    flag("shuffle", "shuffle the order of images and their labels")
    parser.add_argument("--backend", default="lmdb", choices=("lmdb", "leveldb"))
    parser.add_argument("--resize_width", type=int, default=0, help="width images are resized to")
    parser.add_argument("--resize_height", type=int, default=0, help="height images are resized to")
    flag("check_size", "check that all items have the same size")
    flag("encoded", "store encoded image files in the Datums")
    parser.add_argument("--encode_type", default="", help="format for re-encoding: png, jpg, ...")

    def run(args: argparse.Namespace) -> int:
        if not os.path.exists(args.list_file):
            raise DataError(f'convert_imageset: list file "{args.list_file}" does not exist')
        convert_imageset(args.root_folder, args.list_file, args.db_name, gray=args.gray,
                         shuffle=args.shuffle, backend=args.backend,
                         resize_height=args.resize_height, resize_width=args.resize_width,
                         check_size=args.check_size, encoded=args.encoded,
                         encode_type=args.encode_type)
        return 0

    return run
