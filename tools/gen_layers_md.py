"""Write LAYERS.md: every registered layer type, its proof and its known differences.

    python tools/gen_layers_md.py           # rewrite LAYERS.md
    python tools/gen_layers_md.py --check   # exit 1 when LAYERS.md is stale

One row per type of ``caffe_compat.layer_type_list()``:

* group: the package under ``caffe_compat/layers`` (``forks`` for fork layers);
* Caffe source: the first ``*.cpp``/``*.cu`` file the module docstring names;
* golden: how many fixtures made by a real Caffe (``tests/golden/data``) use
  the type;
* gradcheck: whether a float64 gradcheck covers it — a ``type: "X"`` inside a
  module-level table whose name contains ``GRAD`` or a test function whose
  name contains ``gradcheck`` (the convention of the test files); "n/a" for data layers and
  layers whose docstring says "No backward";
* status: "golden" (proved against real Caffe), "formula" (a fork layer,
  checked against the fork's code ported to numpy and hand-computed values),
  "tested" (tests, no real-Caffe fixture) or "untested";
* the "Differences from Caffe:" paragraph of the module docstring.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
OUT = ROOT / "LAYERS.md"
_TYPE = re.compile(r'type:\s*\\?"([A-Za-z0-9_]+)\\?"')

FORK_FIELDS = [  # (where, fork, what)
    ("`pooling_param { ceil_mode }`", "several forks (their field 13 is upstream's `round_mode`; here 10013)",
     "`true` = `round_mode: CEIL`, `false` = FLOOR; both given and disagreeing is an error"),
    ("`batch_norm_param { scale_bias, scale_filler, bias_filler }`", "NVCaffe",
     "5-blob BatchNorm (mean, variance, factor, scale, bias): `layers/forks/fused_batch_norm.py`"),
    ("`batch_norm_param { use_weight_bias, bias_term, filler }`", "Intel Caffe (here 10005-10007)",
     "4/5-blob BatchNorm with scale (and shift)"),
    ("`smooth_l1_loss_param { sigma }`", "Fast R-CNN (8266712)",
     "SmoothL1Loss, `layers/loss/smooth_l1_loss.py`"),
    ("unknown fields and `engine` values", "any fork",
     "skipped with an `UnknownFieldWarning` naming field and place (strict mode: error), "
     "`proto/tolerant.py`"),
]
FORK_VARIANTS = "\n".join(["## Fork fields of upstream layers", "", "| where | fork | what |",
                           "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in FORK_FIELDS]) + "\n"


def _docstring(cls: type) -> str:
    module = sys.modules[cls.__module__]
    return (module.__doc__ or "") + "\n" + (cls.__doc__ or "")


def _source(doc: str) -> str:
    m = re.search(r"\b([A-Za-z0-9_]+\.(?:cpp|cu))\b", doc)
    return m.group(1) if m else "-"


def _differences(doc: str) -> str:
    m = re.search(r"Differences from Caffe:(.*?)(?:\n\s*\n|\Z)", doc, re.S)
    if not m:
        return "(not stated)"
    text = " ".join(m.group(1).split())
    return text.replace("|", "\\|")


def golden_counts() -> dict[str, int]:
    counts: dict[str, int] = {}
    for path in sorted((TESTS / "golden" / "data").rglob("*.npz")):
        with np.load(path) as z:
            if "meta" not in z.files:
                continue
            text = json.loads(str(z["meta"])).get("prototxt", "")
        for t in set(_TYPE.findall(text)):
            counts[t] = counts.get(t, 0) + 1
    return counts


def gradchecked() -> set[str]:
    found: set[str] = set()
    for path in sorted(TESTS.rglob("test_*.py")):
        source = path.read_text(errors="replace")
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            segment = None
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and "GRAD" in t.id for t in targets):
                    segment = ast.get_source_segment(source, node)
            elif isinstance(node, ast.FunctionDef) and "gradcheck" in node.name:
                segment = ast.get_source_segment(source, node)
            if segment:
                found.update(_TYPE.findall(segment))
    return found


def tested() -> set[str]:
    text = "\n".join(p.read_text(errors="replace") for p in TESTS.rglob("*.py"))
    return set(_TYPE.findall(text))


def render() -> str:
    sys.path.insert(0, str(ROOT))
    from caffe_compat.layers.registry import registry

    reg = registry()
    golden, grads, mentioned = golden_counts(), gradchecked(), tested()
    rows = []
    status_count: dict[str, int] = {}
    for name in sorted(reg):
        cls = reg[name]
        group = cls.__module__.split(".")[2] if cls.__module__.startswith("caffe_compat.layers.") else "-"
        doc = _docstring(cls)
        n = golden.get(name, 0)
        if n:
            status = "golden"
        elif group == "forks":
            status = "formula"
        elif name in mentioned:
            status = "tested"
        else:
            status = "untested"
        status_count[status] = status_count.get(status, 0) + 1
        no_backward = group == "data" or re.search(r"\bNo backward\b", doc) is not None
        grad = "yes" if name in grads else ("n/a" if no_backward else "no")
        rows.append(f"| {name} | {group} | {_source(doc)} | {n} | {grad} | {status} | {_differences(doc)} |")
    summary = ", ".join(f"{v} {k}" for k, v in sorted(status_count.items()))
    return "\n".join([
        "# Layer types",
        "",
        "Generated by `python tools/gen_layers_md.py` from the layer registry, the layer",
        "modules' docstrings and the tests (`tests/test_layers_md.py` checks it is current).",
        "",
        "*golden*: fixtures made by a real Caffe that use the type; *gradcheck*: a float64",
        "gradcheck covers it; *status*: golden = proved against real Caffe, formula = a fork",
        "layer checked against the fork's code ported to numpy and hand-computed values,",
        "tested = tests without a real-Caffe fixture.",
        "",
        f"{len(reg)} types: {summary}.",
        "",
        "| type | group | Caffe source | golden | gradcheck | status | differences from Caffe |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        FORK_VARIANTS,
    ])


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if OUT.exists() and OUT.read_text() == text:
            return 0
        print(f"{OUT} is stale: run python tools/gen_layers_md.py", file=sys.stderr)
        return 1
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
