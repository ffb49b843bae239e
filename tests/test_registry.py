"""Meta-tests over the layer registry.

* every module under ``caffe_compat/layers/<group>/`` is imported by its
  group's ``__init__`` (so its types register);
* every registered type is exercised somewhere: a golden case prototxt or a
  test file mentions ``type: "<Type>"``.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from pathlib import Path

import pytest

import caffe_compat
from caffe_compat.layers import registry

ROOT = Path(__file__).resolve().parent
LAYERS = Path(caffe_compat.__file__).resolve().parent / "layers"


def _group_modules() -> list[str]:
    out = []
    for group in sorted(p for p in LAYERS.iterdir() if (p / "__init__.py").exists()):
        for info in pkgutil.iter_modules([str(group)]):
            if not info.name.startswith("_"):
                out.append(f"caffe_compat.layers.{group.name}.{info.name}")
    return out


@pytest.mark.parametrize("module", _group_modules())
def test_module_is_imported(module):
    importlib.import_module("caffe_compat.layers")
    group = module.rsplit(".", 1)[0]
    source = (LAYERS / group.split(".")[-1] / "__init__.py").read_text()
    name = module.rsplit(".", 1)[1]
    assert re.search(rf"\b{name}\b", source), f"{group}/__init__.py does not import {name}"
    assert module in sys.modules


def _mentioned_types() -> set[str]:
    text = []
    for path in list(ROOT.rglob("*.py")):
        text.append(path.read_text(errors="replace"))
    found = set(re.findall(r'type:\s*\\?"([A-Za-z0-9_]+)\\?"', "\n".join(text)))
    import json

    import numpy as np

    for npz in (ROOT / "golden" / "data").rglob("*.npz"):
        with np.load(npz) as z:
            proto = json.loads(str(z["meta"])).get("prototxt", "")
        found.update(re.findall(r'type:\s*"([A-Za-z0-9_]+)"', proto))
    return found


@pytest.mark.parametrize("type_name", registry.layer_type_list())
def test_type_has_tests(type_name):
    assert type_name in _mentioned_types(), f'no test or golden case uses type: "{type_name}"'


def test_layer_type_list_sorted_and_unique():
    types = caffe_compat.layer_type_list()
    assert types == sorted(set(types))
