"""``caffe-compat verify``: run a model in caffe_compat and in a real pycaffe, compare every blob.

    caffe-compat verify --model deploy.prototxt --weights net.caffemodel \\
        [--input image.npy | --input data=image.npy ...] [--phase TEST] \\
        [--caffe-python /path/to/python-with-caffe] [--backward] [--tol 1e-4]

The reference runs in a subprocess with the interpreter of ``--caffe-python``
(or ``$CAFFE_COMPAT_REFERENCE_PYTHON``), which must ``import caffe`` (see
``_verify_reference.py``). Inputs not given are seeded normal values of the
input blob's shape; both sides get the same arrays (and, with
``--backward``, the same random diffs on the non-loss outputs).

The table lists every blob (then, with ``--backward``, every blob diff and
parameter diff): its shape, max |ours − Caffe| and that over max |Caffe|.
A row fails when max |Δ| > tol · max(1, max |Caffe|) or the blob is missing
or shaped differently. Exit status: 0 all within tolerance, 1 some row
failed, 2 the reference could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..cli import command
from ..errors import CaffeCompatError

__all__ = ["Row", "Report", "run_reference", "compare", "verify"]

REFERENCE_SCRIPT = Path(__file__).with_name("_verify_reference.py")
ENV_PYTHON = "CAFFE_COMPAT_REFERENCE_PYTHON"


class ReferenceError(CaffeCompatError, RuntimeError):
    """The reference pycaffe is missing or failed."""


@dataclass
class Row:
    kind: str  # "blob", "diff" or "param diff"
    name: str
    shape: tuple[int, ...] | None
    abs_diff: float | None
    rel_diff: float | None
    ok: bool
    note: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    tol: float = 1e-4

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    def table(self) -> str:
        head = ("what", "name", "shape", "max|Δ|", "max|Δ|/max|ref|", "")
        lines = [head]
        for r in self.rows:
            lines.append((r.kind, r.name, "x".join(map(str, r.shape)) if r.shape is not None else "-",
                          "-" if r.abs_diff is None else f"{r.abs_diff:.3g}",
                          "-" if r.rel_diff is None else f"{r.rel_diff:.3g}",
                          ("ok" if r.ok else "FAIL") + (f" ({r.note})" if r.note else "")))
        widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
        text = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
        bad = sum(not r.ok for r in self.rows)
        text.append(f"{len(self.rows)} compared, {bad} over tolerance {self.tol:g} "
                    "(max|Δ| > tol · max(1, max|ref|))" if bad else
                    f"{len(self.rows)} compared, all within tolerance {self.tol:g}")
        return "\n".join(text)


def reference_python(given: str | None) -> str:
    python = given or os.environ.get(ENV_PYTHON, "")
    if not python:
        raise ReferenceError(f"no reference pycaffe: give --caffe-python PATH or set {ENV_PYTHON} to a "
                             "Python interpreter that can `import caffe`")
    return python


def run_reference(python: str, job: dict, workdir: Path, timeout: float = 3600) -> dict[str, np.ndarray]:
    """Run the job in the reference interpreter; the arrays it wrote."""
    job = dict(job, out=str(workdir / "reference.npz"))
    (workdir / "job.json").write_text(json.dumps(job))
    env = dict(os.environ, GLOG_minloglevel=os.environ.get("GLOG_minloglevel", "2"))
    model_dir = str(Path(job["model"]).resolve().parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (model_dir, env.get("PYTHONPATH", "")) if p)
    try:
        done = subprocess.run([python, str(REFERENCE_SCRIPT), str(workdir / "job.json")], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReferenceError(f"cannot run the reference pycaffe {python!r}: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise ReferenceError(f"the reference pycaffe ({python}) failed with status "
                             f"{done.returncode}:\n{tail}")
    with np.load(job["out"]) as z:
        return {k: z[k] for k in z.files}


def _row(kind: str, name: str, ours: np.ndarray | None, ref: np.ndarray, tol: float) -> Row:
    if ours is None:
        return Row(kind, name, tuple(ref.shape), None, None, False, "missing in caffe_compat")
    ours = np.asarray(ours, dtype=np.float64)
    ref64 = np.asarray(ref, dtype=np.float64)
    if ours.shape != ref64.shape:
        return Row(kind, name, tuple(ref.shape), None, None, False, f"caffe_compat shape {list(ours.shape)}")
    if not ref64.size:
        return Row(kind, name, tuple(ref.shape), 0.0, 0.0, True)
    nan = np.isnan(ours) != np.isnan(ref64)
    err = np.abs(np.nan_to_num(ours) - np.nan_to_num(ref64))
    worst = float(err.max())
    top = float(np.nanmax(np.abs(ref64))) if np.isfinite(ref64).any() else 0.0
    ok = worst <= tol * max(1.0, top) and not nan.any()
    return Row(kind, name, tuple(ref.shape), worst, worst / top if top else (0.0 if worst == 0 else np.inf),
               ok, "NaN positions differ" if nan.any() else "")


def compare(net: Any, ref: dict[str, np.ndarray], tol: float, backward: bool) -> Report:
    """Rows for every blob (and diff) the reference recorded, in its order."""
    meta = json.loads(str(ref["meta"]))
    report = Report(tol=tol)
    for name in meta["blobs"]:
        ours = net.blobs[name].data if name in net.blobs else None
        report.rows.append(_row("blob", name, ours, ref["blob/" + name], tol))
    if backward:
        for name in meta["blobs"]:
            ours = net.blobs[name].diff if name in net.blobs else None
            report.rows.append(_row("diff", name, ours, ref["diff/" + name], tol))
        for key in sorted(k for k in ref if k.startswith("pdiff/")):
            layer, i = key.split("/", 1)[1].rsplit("/", 1)
            ours = net.params[layer][int(i)].diff if layer in net.params and int(i) < len(net.params[layer]) \
                else None
            report.rows.append(_row("param diff", f"{layer}[{i}]", ours, ref[key], tol))
    return report


def _load_inputs(specs: Sequence[str], input_names: Sequence[str]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    positional = [s for s in specs if "=" not in s]
    for spec in specs:
        if "=" in spec:
            name, path = spec.split("=", 1)
            if name not in input_names:
                raise CaffeCompatError(f"--input {spec}: the net has no input {name!r} "
                                       f"(inputs: {', '.join(input_names)})")
            out[name] = np.load(path)
    free = [n for n in input_names if n not in out]
    if len(positional) > len(free):
        raise CaffeCompatError(f"{len(positional)} positional --input files for {len(free)} free inputs "
                               f"({', '.join(free)})")
    for name, path in zip(free, positional):
        out[name] = np.load(path)
    return out


def verify(model: str, weights: str | None = None, inputs: Sequence[str] = (), phase: str = "TEST",
           caffe_python: str | None = None, tol: float = 1e-4, backward: bool = False,
           seed: int = 0) -> Report:
    """Run ``model`` in caffe_compat and in the reference pycaffe; the comparison."""
    from .. import Net, TEST, TRAIN

    python = reference_python(caffe_python)
    net = Net(model, TRAIN if phase == "TRAIN" else TEST)
    if weights:
        net.copy_from(weights)
    values = _load_inputs(inputs, net.inputs)
    rng = np.random.RandomState(seed)
    for name in net.inputs:
        if name not in values:
            values[name] = rng.randn(*net.blobs[name].data.shape).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="caffe-compat-verify-") as tmp:
        work = Path(tmp)
        job: dict = {"model": str(Path(model).resolve()), "weights": str(Path(weights).resolve()) if weights
                     else "", "phase": phase, "inputs": {}, "backward": backward, "topdiffs": {}}
        reshaped = False
        for name, value in values.items():
            value = np.asarray(value, dtype=np.float32)
            np.save(work / f"input_{len(job['inputs'])}.npy", value)
            job["inputs"][name] = str(work / f"input_{len(job['inputs'])}.npy")
            if net.blobs[name].data.shape != value.shape:
                net.blobs[name].reshape(*value.shape)
                reshaped = True
            net.blobs[name].data[...] = value
        if reshaped:
            net.reshape()
        net.forward()
        if backward:
            weights_ = net.blob_loss_weights
            for k, name in enumerate(net.outputs):
                if not weights_[name]:
                    diff = np.asarray(rng.randn(*net.blobs[name].data.shape), dtype=np.float32)
                    np.save(work / f"topdiff_{k}.npy", diff)
                    job["topdiffs"][name] = str(work / f"topdiff_{k}.npy")
                    net.blobs[name].diff[...] = diff
            net.backward()
        ref = run_reference(python, job, work)
    return compare(net, ref, tol, backward)


@command("verify", "compare a model's blobs in caffe_compat with a real pycaffe")
def setup(parser: argparse.ArgumentParser):
    parser.add_argument("--model", required=True, help="the net definition (.prototxt)")
    parser.add_argument("--weights", default="", help="trained weights (.caffemodel or .h5)")
    parser.add_argument("--input", action="append", default=[], metavar="[NAME=]FILE.npy",
                        help="an input array (repeatable); without NAME= the inputs are filled in order; "
                             "missing inputs get seeded normal values")
    parser.add_argument("--phase", default="TEST", choices=["TRAIN", "TEST"])
    parser.add_argument("--caffe-python", "--caffe_python", dest="caffe_python", default=None,
                        help=f"a Python whose `import caffe` is a real pycaffe (default ${ENV_PYTHON})")
    parser.add_argument("--backward", action="store_true",
                        help="also compare the diffs after a backward pass "
                             "(random diffs on non-loss outputs)")
    parser.add_argument("--tol", type=float, default=1e-4, help="tolerance relative to max(1, max|Caffe|)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated inputs and diffs")

    def run(args: argparse.Namespace) -> int:
        try:
            report = verify(args.model, args.weights or None, args.input, args.phase, args.caffe_python,
                            args.tol, args.backward, args.seed)
        except ReferenceError as exc:
            print(f"caffe-compat verify: {exc}", file=sys.stderr)
            return 2
        print(report.table())
        return 0 if report.ok else 1

    return run
