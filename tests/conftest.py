"""Shared test fixtures: a clean global Caffe mode for every test.

The pycaffe API tests under ``tests/api/`` also run against a real pycaffe
(Python 3.9, no torch); this file therefore tolerates a missing caffe_compat.
"""

from __future__ import annotations

import os

import pytest

# A fixed thread count for the suite (torch is imported first here, so libgomp spins as it
# always did): the load governor (caffe_compat/threads.py) would change the count with the
# other test workers' load, and with it the last bits of reductions between two runs of a
# test. tests/test_threads.py runs the default mode in fresh interpreters.
os.environ.setdefault("CAFFE_COMPAT_OMP_WAIT", "spin")

try:
    import torch

    import caffe_compat as caffe
    from caffe_compat import mode
except ImportError:  # running the API tests against real pycaffe only
    torch = None
    caffe = None


@pytest.fixture(autouse=True)
def _caffe_defaults():
    """Each test starts in CPU mode with a fixed seed, and leaves it that way."""
    if caffe is None:
        yield
        return
    caffe.set_mode_cpu()
    caffe.set_random_seed(1701)
    mode.set_strict(False)
    yield
    caffe.set_mode_cpu()
    mode.set_strict(False)


def pytest_collection_modifyitems(config, items):
    if torch is not None and torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; none on this machine")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=["opencv", "pillow"])
def image_backend(request):
    """Each image backend of caffe_compat.data.image in turn (OpenCV skipped when not installed)."""
    from caffe_compat.data import image

    if request.param == "opencv" and image._cv2() is None:
        pytest.skip("opencv-python-headless is not installed (pip install caffe-compat[opencv])")
    with image.use_backend(request.param):
        yield request.param
