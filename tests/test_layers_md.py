"""LAYERS.md is what ``tools/gen_layers_md.py`` writes from the registry and the tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _generator():
    spec = importlib.util.spec_from_file_location("gen_layers_md", ROOT / "tools" / "gen_layers_md.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_layers_md_is_current():
    text = _generator().render()
    assert (ROOT / "LAYERS.md").read_text() == text, "LAYERS.md is stale: run python tools/gen_layers_md.py"


def test_every_registered_type_has_a_row():
    import caffe_compat

    text = (ROOT / "LAYERS.md").read_text()
    for name in caffe_compat.layer_type_list():
        assert f"\n| {name} |" in text, name


def test_fork_layers_are_marked():
    rows = {line.split("|")[1].strip(): line for line in (ROOT / "LAYERS.md").read_text().splitlines()
            if line.startswith("| ") and not line.startswith("| type")}
    for name in ("PriorBox", "DetectionOutput", "MultiBoxLoss", "Normalize", "ROIPooling", "Upsample",
                 "Interp", "ReLU6"):
        grad = "n/a" if name in ("PriorBox", "DetectionOutput") else "yes"
        for cell in ("forks", "formula", grad):
            assert f"| {cell} |" in rows[name], rows[name]
    assert "| golden |" in rows["Permute"]
