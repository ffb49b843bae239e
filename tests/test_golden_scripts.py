"""pycaffe script patterns (deepdream, net surgery, a solver step then backward)
recorded with a real Caffe, replayed on caffe_compat (cases in
``tests/golden/cases/scripts.py``): every array the script looks at agrees
within the case tolerance (relative to max(1, max|golden|))."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import caffe_compat as caffe
from golden.cases import scripts
from golden_harness import assert_close

ROOT = Path(__file__).resolve().parent / "golden" / "data" / "scripts"
CASES = {c["name"]: c for c in scripts.CASES}


@pytest.mark.parametrize("name", sorted(CASES))
def test_script_matches_caffe(name):
    with np.load(ROOT / f"{name}.npz") as z:
        golden = {k: z[k] for k in z.files}
    meta = json.loads(str(golden.pop("meta")))
    caffe.set_mode_cpu()
    ours = scripts.run(CASES[name], caffe, np.random.RandomState(CASES[name]["seed"]))
    assert sorted(ours) == sorted(golden)
    for key, want in golden.items():
        assert_close(np.asarray(ours[key]), want, meta["tol"], f"{name}: {key}")
