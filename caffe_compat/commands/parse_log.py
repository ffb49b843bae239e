"""``caffe-compat parse_log LOGFILE OUTPUT_DIR``: Caffe's ``tools/extra/parse_log.py``.

Reads a training log in glog's format (Caffe's, or ours) and writes
``OUTPUT_DIR/<log name>.train`` and ``.test``: CSV with columns NumIters,
Seconds, LearningRate and one column per net output, rows as Caffe's tool
builds them:

* nothing before the first ``Solving`` line counts; Seconds are measured from
  it; the log's year is the file's change-time year (a month going backwards
  means the next year);
* lines count from the first ``Iteration N``; ``lr = x`` updates the current
  rate; ``Train net output #k: name = v`` / ``Test net output #k: name = v``
  fill the row of the current iteration;
* a row is written once it has as many columns as the first row (the first row
  is written when the next iteration's outputs start); an unfinished last row
  is dropped; the first row takes the second row's LearningRate (the rate is
  logged after the first outputs);
* a file with no rows is not written. Fields are written by Python's ``csv``
  (``excel`` dialect: ``\\r\\n`` line ends) with ``str(float)`` values.

Differences from Caffe: glog's newer ``I20261128`` line heads (with the year) are
read too (Caffe's tool stopped on them); lines without a glog time stamp (blank lines, text a
script printed) are skipped (Caffe's tool stopped with an IndexError on blank
lines); outputs missing from the first row are left out instead of stopping
the CSV writer.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import os
import re
from collections import OrderedDict
from typing import Dict, Iterator

from ..cli import command
from ..errors import DataError

__all__ = ["parse_log", "save_csv_files", "write_csv", "extract_datetime_from_line"]

Row = Dict[str, float]  # an OrderedDict: columns in the order they appeared

_ITERATION = re.compile(r"Iteration (\d+)")
_TRAIN_OUTPUT = re.compile(r"Train net output #(\d+): (\S+) = ([\.\deE+-]+)")
_TEST_OUTPUT = re.compile(r"Test net output #(\d+): (\S+) = ([\.\deE+-]+)")
_LEARNING_RATE = re.compile(r"lr = ([-+]?[0-9]*\.?[0-9]+([eE]?[-+]?[0-9]+)?)")


def extract_datetime_from_line(line: str, year: int) -> _dt.datetime:
    """The time stamp of a glog line (``I0210 13:39:22.381027 ...``) in ``year``.

    Lines of newer glog versions carry their own year (``I20240210 ...``), which wins.
    Raises ValueError for a line without a time stamp.
    """
    fields = line.strip().split()
    if len(fields) < 2:
        raise ValueError(f"not a glog line: {line!r}")
    head, clock = fields[0], fields[1]
    if len(head) == 9 and head[1:].isdigit():  # newer glog: I20261128 (the year is written)
        year, month, day = int(head[1:5]), int(head[5:7]), int(head[7:9])
    else:
        month, day = int(head[1:3]), int(head[3:])
    pos = clock.rfind(".")
    hms = [int(x) for x in clock[:pos].split(":")]
    if len(hms) != 3:
        raise ValueError(f"not a glog time: {clock!r}")
    return _dt.datetime(year, month, day, hms[0], hms[1], hms[2], int(clock[pos + 1:]))


def _lines_after_start(f: Iterator[str], year: int) -> _dt.datetime | None:
    """Consume lines up to the first ``Solving`` line; its time is the start."""
    for line in f:
        if "Solving" in line:
            return extract_datetime_from_line(line, year)
    return None


def _add_output(regex: re.Pattern[str], row: Row | None, rows: list, line: str, iteration: float,
                seconds: float, learning_rate: float) -> Row | None:
    match = regex.search(line)
    if match:
        if not row or row["NumIters"] != iteration:
            if row:  # a new iteration began before the row filled up: keep what it has
                rows.append(row)
            row = OrderedDict([("NumIters", iteration), ("Seconds", seconds),
                               ("LearningRate", learning_rate)])
        row[match.group(2)] = float(match.group(3))
    if row and rows and len(row) == len(rows[0]):  # as many columns as the first row: done
        rows.append(row)
        row = None
    return row


def parse_log(path_to_log: str | os.PathLike[str]) -> tuple[list[Row], list[Row]]:
    """(train rows, test rows) of a Caffe training log."""
    try:
        year = _dt.datetime.fromtimestamp(os.path.getctime(path_to_log)).year
        f = open(path_to_log, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise DataError(f"parse_log: {path_to_log}: no such log file") from None
    iteration = -1.0
    learning_rate = float("nan")
    train: list[Row] = []
    test: list[Row] = []
    train_row: Row | None = None
    test_row: Row | None = None
    with f:
        start = _lines_after_start(f, year)
        last = start
        for line in f:
            match = _ITERATION.search(line)
            if match:
                iteration = float(match.group(1))
            if iteration == -1:
                continue  # nothing counts before the first iteration
            try:
                when = extract_datetime_from_line(line, year)
            except ValueError:
                continue  # no time stamp (e.g. a resumed solver's banner)
            assert start is not None and last is not None
            if when.month < last.month:  # the log ran into a new year
                year += 1
                when = extract_datetime_from_line(line, year)
            last = when
            seconds = (when - start).total_seconds()
            match = _LEARNING_RATE.search(line)
            if match:
                learning_rate = float(match.group(1))
            train_row = _add_output(_TRAIN_OUTPUT, train_row, train, line, iteration, seconds,
                                    learning_rate)
            test_row = _add_output(_TEST_OUTPUT, test_row, test, line, iteration, seconds,
                                   learning_rate)
    for rows in (train, test):
        if len(rows) > 1:  # the rate is logged after the first outputs
            rows[0]["LearningRate"] = rows[1]["LearningRate"]
    return train, test


class _Dialect(csv.excel):
    pass


def write_csv(output_filename: str, dict_list: list[Row], delimiter: str = ",",
              verbose: bool = False) -> None:
    """One CSV file with the first row's columns; nothing is written for no rows."""
    if len(delimiter) != 1:
        raise DataError(f"parse_log: the delimiter must be one character, got {delimiter!r}")
    if not dict_list:
        if verbose:
            print(f"Not writing {output_filename}; no lines to write")
        return
    dialect = type("_ParseLogDialect", (_Dialect,), {"delimiter": delimiter})
    with open(output_filename, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict_list[0].keys()), dialect=dialect,
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(dict_list)
    if verbose:
        print(f"Wrote {output_filename}")


def save_csv_files(logfile_path: str | os.PathLike[str], output_dir: str | os.PathLike[str],
                   train_dict_list: list[Row], test_dict_list: list[Row], delimiter: str = ",",
                   verbose: bool = False) -> None:
    """``<output_dir>/<log basename>.train`` and ``.test``."""
    base = os.path.basename(os.fspath(logfile_path))
    write_csv(os.path.join(output_dir, base + ".train"), train_dict_list, delimiter, verbose)
    write_csv(os.path.join(output_dir, base + ".test"), test_dict_list, delimiter, verbose)


@command("parse_log", "training log → CSV files of train/test outputs (Caffe's parse_log.py)")
def setup(parser: argparse.ArgumentParser):
    parser.add_argument("logfile_path", help="path to the log file")
    parser.add_argument("output_dir", help="directory in which to place the output CSV files")
    parser.add_argument("--verbose", action="store_true", help="print the output file names")
    parser.add_argument("--delimiter", default=",", help="column delimiter (default: ',')")

    def run(args: argparse.Namespace) -> int:
        if len(args.delimiter) != 1:
            raise DataError(f"parse_log: the delimiter must be one character, got {args.delimiter!r}")
        if not os.path.isdir(args.output_dir):
            raise DataError(f"parse_log: output directory {args.output_dir} does not exist")
        train, test = parse_log(args.logfile_path)
        save_csv_files(args.logfile_path, args.output_dir, train, test,
                       delimiter=args.delimiter, verbose=args.verbose)
        return 0

    return run
