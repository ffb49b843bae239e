"""``caffe-compat verify``: run a model in caffe_compat and in a real pycaffe, compare every blob.

    caffe-compat verify --model deploy.prototxt --weights net.caffemodel \\
        [--input image.npy | --input data=image.npy ...] [--phase TEST] \\
        [--caffe-python /path/to/python-with-caffe] [--backward] [--tol 1e-4]

The reference runs in a subprocess with the interpreter of ``--caffe-python``
(or ``$CAFFE_COMPAT_REFERENCE_PYTHON``), which must ``import caffe`` (see
``_verify_reference.py``). Inputs not given are seeded values of the input
blob's shape: integer labels in range for inputs that feed a loss or
accuracy layer's label bottom (the class count that layer reads from its
first bottom), normal values otherwise; both sides get the same arrays
(and, with ``--backward``, the same random diffs on the non-loss outputs).

The table lists every blob (then, with ``--backward``, every blob diff and
parameter diff): its shape, max |ours − Caffe| and that over max |Caffe|.
A row fails when max |Δ| > tol · max(1, max |Caffe|) or the blob is missing
or shaped differently. Where the two differ on purpose (a Python loss layer
has loss weight 1 here and 0 in Caffe: README, "Differences from Caffe"),
the gradient rows that differ say so and do not fail the run. Exit status:
0 all within tolerance, 1 some row failed, 2 the reference could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..cli import command, report_error
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
    documented: bool = False  # differs because of a documented difference, not a failure


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    tol: float = 1e-4
    notes: list[str] = field(default_factory=list)

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
                          ("documented" if r.documented else "ok" if r.ok else "FAIL")
                          + (f" ({r.note})" if r.note else "")))
        widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
        text = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
        bad = sum(not r.ok for r in self.rows)
        documented = sum(r.documented for r in self.rows)
        if bad:
            summary = (f"{len(self.rows)} compared, {bad} over tolerance {self.tol:g} "
                       "(max|Δ| > tol · max(1, max|ref|))")
        elif documented:
            summary = (f"{len(self.rows)} compared: {len(self.rows) - documented} within tolerance "
                       f"{self.tol:g}, {documented} differ by a documented difference (see the note)")
        else:
            summary = f"{len(self.rows)} compared, all within tolerance {self.tol:g}"
        text.append(summary + (f"; {documented} more differ by a documented difference"
                               if bad and documented else ""))
        text.extend(self.notes)
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


def _loss_weight_differences(net: Any, ref_weights: dict[str, float]) -> list[str]:
    """Why gradients may differ on purpose: outputs whose loss weight is not Caffe's."""
    ours = net.blob_loss_weights
    producer = {top: layer for layer, tops in net.top_names.items() for top in tops}
    out = []
    for name, w in ours.items():
        if name in ref_weights and float(ref_weights[name]) != float(w):
            layer = producer.get(name, "?")
            kind = getattr(net.layer_dict.get(layer), "type", "")
            why = ("a Python loss layer: README, Differences from Caffe, \"Python layers used as losses\"; "
                   "give the layer loss_weight: 1 to compare gradients" if kind == "Python" else
                   "see README, Differences from Caffe")
            out.append(f'blob "{name}" of {kind or "?"} layer "{layer}" has loss weight {w:g} here and '
                       f"{float(ref_weights[name]):g} in Caffe ({why})")
    return out


def compare(net: Any, ref: dict[str, np.ndarray], tol: float, backward: bool) -> Report:
    """Rows for every blob (and diff) the reference recorded, in its order."""
    meta = json.loads(str(ref["meta"]))
    report = Report(tol=tol)
    for name in meta["blobs"]:
        ours = net.blobs[name].data if name in net.blobs else None
        report.rows.append(_row("blob", name, ours, ref["blob/" + name], tol))
    if backward:
        grads: list[Row] = []
        for name in meta["blobs"]:
            ours = net.blobs[name].diff if name in net.blobs else None
            grads.append(_row("diff", name, ours, ref["diff/" + name], tol))
        for key in sorted(k for k in ref if k.startswith("pdiff/")):
            layer, i = key.split("/", 1)[1].rsplit("/", 1)
            ours = net.params[layer][int(i)].diff if layer in net.params and int(i) < len(net.params[layer]) \
                else None
            grads.append(_row("param diff", f"{layer}[{i}]", ours, ref[key], tol))
        reasons = _loss_weight_differences(net, meta.get("loss_weights", {}))
        if reasons:
            for r in grads:
                if not r.ok and r.abs_diff is not None and not r.note:
                    r.ok, r.documented, r.note = True, True, "loss weight differs, see the note"
                    r.rel_diff = None
            report.notes.extend(f"note: {why}" for why in reasons)
        report.rows.extend(grads)
    return report


# Label bottoms: layer type -> (bottom index, how the class count is read from bottom 0).
_LABEL_BOTTOMS = {
    "SoftmaxWithLoss": (1, "softmax_param"),
    "Accuracy": (1, "accuracy_param"),
    "InfogainLoss": (1, "infogain_loss_param"),
    "MultinomialLogisticLoss": (1, None),
    "HingeLoss": (1, None),
    "SigmoidCrossEntropyLoss": (1, 2),
    "ContrastiveLoss": (2, 2),
}


def label_inputs(net: Any) -> dict[str, tuple[int, str]]:
    """Net inputs that feed a label bottom: name -> (class count, the layer that reads it).

    Inputs are followed through Split layers; with several readers the smallest
    class count wins, so the labels suit them all.
    """
    aliases = {name: name for name in net.inputs}  # blob -> the input it carries
    found: dict[str, tuple[int, str]] = {}
    for layer_name, layer in net.layer_dict.items():
        bottoms, tops = net.bottom_names[layer_name], net.top_names[layer_name]
        kind = getattr(layer, "type", "")
        if kind == "Split" and bottoms and bottoms[0] in aliases:
            for t in tops:
                aliases[t] = aliases[bottoms[0]]
            continue
        spec = _LABEL_BOTTOMS.get(kind)
        if spec is None or len(bottoms) <= spec[0] or bottoms[spec[0]] not in aliases:
            continue
        index, rule = spec
        shape = net.blobs[bottoms[0]].data.shape
        if isinstance(rule, int):
            classes = rule
        elif rule is None:  # count / num
            classes = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        else:
            param = getattr(getattr(layer, "layer_param", None), rule, None)
            axis = int(getattr(param, "axis", 1)) if param is not None else 1
            classes = int(shape[axis % len(shape)]) if shape else 1
        source = aliases[bottoms[index]]
        where = f'{kind} "{layer_name}"'
        if source not in found or classes < found[source][0]:
            found[source] = (max(classes, 1), where)
    return found


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
    labels = label_inputs(net)
    notes = []
    for name in net.inputs:
        if name in values:
            continue
        shape = net.blobs[name].data.shape
        if name in labels:
            classes, reader = labels[name]
            values[name] = rng.randint(0, classes, size=shape).astype(np.float32)
            notes.append(f'note: input "{name}" got random integer labels in [0, {classes}) (it feeds '
                         f"{reader}); give --input {name}=FILE.npy to choose them")
        else:
            values[name] = rng.randn(*shape).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="caffe-compat-verify-") as tmp:
        work = Path(tmp)
        if weights:
            ref_weights = str(Path(weights).resolve())
        else:  # the reference gets the weights our fillers drew
            ref_weights = str(work / "initial.caffemodel")
            net.save(ref_weights)
        job: dict = {"model": str(Path(model).resolve()), "weights": ref_weights, "phase": phase,
                     "inputs": {}, "backward": backward, "topdiffs": {}}
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
    report = compare(net, ref, tol, backward)
    report.notes[:0] = notes
    return report


@command("verify", "compare a model's blobs in caffe_compat with a real pycaffe",
         python_layers=True)
def setup(parser: argparse.ArgumentParser):
    parser.add_argument("--model", required=True, help="the net definition (.prototxt)")
    parser.add_argument("--weights", default="", help="trained weights (.caffemodel or .h5; default: "
                        "the weights caffe_compat's fillers draw, given to both sides)")
    parser.add_argument("--input", action="append", default=[], metavar="[NAME=]FILE.npy",
                        help="an input array (repeatable); without NAME= the inputs are filled in order; "
                             "missing inputs get seeded values: integer labels in range for label "
                             "inputs, normal values for the others")
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
            report_error("verify", exc)
            return 2
        print(report.table())
        return 0 if report.ok else 1

    return run
