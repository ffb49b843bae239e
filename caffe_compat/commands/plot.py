"""``caffe-compat plot LOG [-o OUT.png]``: loss and accuracy curves from a training log.

Reads a log in Caffe's wording (ours or Caffe's own) and draws, against the
iteration number:

* the training loss (the smoothed ``Iteration N (...), loss = v`` values) and
  every test-net output whose name contains "loss", on a log scale when all
  are positive (a loss falls by orders of magnitude);
* every other test-net output (accuracy and the like), if any, labelled with
  their names;
* the learning rate (``Iteration N, lr = r``), if logged, continued (dashed)
  at its last logged value up to the log's last iteration (Caffe logs it
  every ``display`` iterations, so its last line is before the end).

Lines that are not Caffe's (warnings, a script's prints) are ignored. Drawn
with matplotlib's Agg backend (no display needed). :func:`read_log` returns the
curves as data for other uses.
"""

from __future__ import annotations

import argparse
import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ..cli import command
from ..errors import DataError

__all__ = ["TrainingLog", "read_log", "plot_log", "figure", "metrics_label"]

_NUM = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf))"
_TRAIN_LOSS = re.compile(r"Iteration (\d+)(?: \([^)]*\))?, loss = " + _NUM)
_LR = re.compile(r"Iteration (\d+), lr = " + _NUM)
_TESTING = re.compile(r"Iteration (\d+), Testing net \(#(\d+)\)")
_OUTPUT = re.compile(r"(Train|Test) net output #\d+: (\S+) = " + _NUM)
_ANY_ITERATION = re.compile(r"\bIteration (\d+)\b")

Curve = list[tuple[int, float]]


@dataclass
class TrainingLog:
    train_loss: Curve = field(default_factory=list)
    learning_rate: Curve = field(default_factory=list)
    train_outputs: "OrderedDict[str, Curve]" = field(default_factory=OrderedDict)
    test_outputs: "OrderedDict[str, Curve]" = field(default_factory=OrderedDict)
    last_iteration: int = 0  # the highest "Iteration N" in the log


def read_log(path: str | os.PathLike[str]) -> TrainingLog:
    """The curves of a Caffe training log."""
    try:
        f = open(path, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise DataError(f"plot: {path}: no such log file") from None
    log = TrainingLog()
    iteration = 0
    test_net = 0
    n_test_nets = 1
    with f:
        for line in f:
            m = _ANY_ITERATION.search(line)
            if m:
                log.last_iteration = max(log.last_iteration, int(m.group(1)))
            m = _TRAIN_LOSS.search(line)
            if m:
                iteration = int(m.group(1))
                log.train_loss.append((iteration, float(m.group(2))))
                continue
            m = _LR.search(line)
            if m:
                log.learning_rate.append((int(m.group(1)), float(m.group(2))))
                continue
            m = _TESTING.search(line)
            if m:
                iteration, test_net = int(m.group(1)), int(m.group(2))
                n_test_nets = max(n_test_nets, test_net + 1)
                continue
            m = _OUTPUT.search(line)
            if m:
                kind, name, value = m.group(1), m.group(2), float(m.group(3))
                if kind == "Train":
                    log.train_outputs.setdefault(name, []).append((iteration, value))
                else:
                    key = f"{name} (#{test_net})" if test_net else name
                    log.test_outputs.setdefault(key, []).append((iteration, value))
    if n_test_nets > 1:  # name every series by its net once several exist
        log.test_outputs = OrderedDict(
            (k if "(#" in k else f"{k} (#0)", v) for k, v in log.test_outputs.items())
    return log


def metrics_label(names: list[str]) -> str:
    """The y label of the test-outputs panel: what is drawn there."""
    if len(names) <= 2:
        return "test " + " and ".join(names)
    return f"test outputs ({len(names)}, see legend)"


def plot_log(log: TrainingLog, output: str, title: str | None = None) -> str:
    """Draw ``log`` into the image file ``output``; returns ``output``."""
    import matplotlib.pyplot as plt

    fig = figure(log, title)
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output


def figure(log: TrainingLog, title: str | None = None) -> Any:
    """The matplotlib figure of ``log`` (loss, test outputs, learning rate panels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = {k: v for k, v in log.test_outputs.items() if "loss" in k.lower()}
    metrics = {k: v for k, v in log.test_outputs.items() if "loss" not in k.lower()}
    panels = 1 + bool(metrics) + bool(log.learning_rate)
    fig, axes = plt.subplots(panels, 1, figsize=(8, 3.2 * panels), sharex=True, squeeze=False)
    ax = axes[0][0]
    if log.train_loss:
        ax.plot(*zip(*log.train_loss), label="train loss (smoothed)")
    for name, curve in losses.items():
        ax.plot(*zip(*curve), marker="o", markersize=3, label=f"test {name}")
    values = [y for curve in [log.train_loss, *losses.values()] for _, y in curve]
    if values and min(values) > 0:
        ax.set_yscale("log")
        ax.set_ylabel("loss (log scale)")
    else:
        ax.set_ylabel("loss")
    if log.train_loss or losses:
        ax.legend(loc="best")
    ax.grid(alpha=0.3, which="both" if values and min(values) > 0 else "major")
    row = 1
    if metrics:
        ax = axes[row][0]
        for name, curve in metrics.items():
            ax.plot(*zip(*curve), marker="o", markersize=3, label=f"test {name}")
        ax.set_ylabel(metrics_label(list(metrics)))
        ax.legend(loc="best")
        ax.grid(alpha=0.3)
        row += 1
    if log.learning_rate:
        ax = axes[row][0]
        its, rates = zip(*log.learning_rate)
        ax.plot(its, rates, color="gray")
        if log.last_iteration > its[-1]:  # not logged after the last display: held, dashed
            ax.plot([its[-1], log.last_iteration], [rates[-1]] * 2, color="gray", linestyle="--")
        ax.set_ylabel("learning rate")
        ax.grid(alpha=0.3)
    axes[-1][0].set_xlim(left=0, right=max(log.last_iteration, 1))
    axes[-1][0].set_xlabel("iteration")
    fig.suptitle(title or "training log")
    fig.tight_layout()
    return fig


@command("plot", "draw loss/accuracy curves of a training log to a PNG")
def setup(parser: argparse.ArgumentParser):
    parser.add_argument("log", help="a training log (caffe-compat train or caffe train output)")
    parser.add_argument("-o", "--output", default="", help="image file (default: LOG.png)")
    parser.add_argument("--title", default="", help="figure title (default: the log's name)")

    def run(args: argparse.Namespace) -> int:
        log = read_log(args.log)
        if not (log.train_loss or log.test_outputs or log.learning_rate):
            raise DataError(f"plot: {args.log}: no training lines found (expected Caffe's "
                            "'Iteration N ..., loss = v' or 'Test net output #k: ...' lines)")
        out = args.output or f"{args.log}.png"
        plot_log(log, out, args.title or os.path.basename(args.log))
        print(f"wrote {out}")
        return 0

    return run
