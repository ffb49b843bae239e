"""Every net fixture made by real Caffe, replayed on caffe_compat.

Forward values, input diffs and parameter diffs must agree within the
fixture's tolerance (about 1e-4 relative to max(1, max|golden|)).
"""

from __future__ import annotations

import pytest

from golden_harness import fixtures, load, run

FIXTURES = fixtures("net")


@pytest.mark.parametrize("path", FIXTURES, ids=[f"{p.parent.name}/{p.stem}" for p in FIXTURES])
def test_matches_caffe(path):
    run(load(path))
