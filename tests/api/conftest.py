"""The ``caffe`` fixture: each API test runs once per available implementation.

* ``caffe_compat`` always (in the project's environment);
* real pycaffe when ``import caffe`` finds the compiled one (run
  ``/path/to/caffe-venv/bin/python -m pytest tests/api`` to check that these
  tests state Caffe's behaviour — that environment has no torch, so only the
  real implementation runs there).
"""

from __future__ import annotations

import importlib
import os

import pytest


def _implementations():
    found = []
    try:
        importlib.import_module("caffe_compat")
        found.append("caffe_compat")
    except ImportError:
        pass
    # Quiet a real pycaffe's glog while it loads (glog reads the variable then); put the
    # environment back after, since caffe_compat's command line honours the variable too.
    saved = os.environ.get("GLOG_minloglevel")
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        real = importlib.import_module("caffe")
        if hasattr(real, "_caffe") and real.__name__ == "caffe":  # not caffe_compat under the alias
            found.append("caffe")
    except ImportError:
        pass
    finally:
        if saved is None:
            os.environ.pop("GLOG_minloglevel", None)
    return found


IMPLEMENTATIONS = _implementations()


@pytest.fixture(params=IMPLEMENTATIONS)
def caffe(request):
    module = importlib.import_module(request.param)
    module.set_mode_cpu()
    return module


@pytest.fixture
def is_real(caffe):
    return caffe.__name__ == "caffe"
