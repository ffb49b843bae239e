"""caffe.Classifier and caffe.Detector against real pycaffe's predictions.

The fixtures hold a tiny conv net, weights real Caffe saved, the images (and PNG files for
the Detector) and pycaffe's predictions for several preprocessing settings.
"""

from __future__ import annotations

import numpy as np
import pytest

import caffe_compat as caffe
from caffe_compat.errors import UnsupportedError
from golden_harness import assert_close, fixtures, load

CLASSIFIER = [load(p) for p in fixtures("classifier", groups=("io",))]
DETECTOR = [load(p) for p in fixtures("detector", groups=("io",))]


def _model(fx, tmp_path):
    proto = tmp_path / "deploy.prototxt"
    proto.write_text(fx.meta["prototxt"])
    weights = tmp_path / "tiny.caffemodel"
    weights.write_bytes(np.asarray(fx.arrays["weights"], np.uint8).tobytes())
    opts = dict(fx.meta["options"])
    if "mean" in opts:
        opts["mean"] = fx.arrays["mean"]
    return str(proto), str(weights), opts


@pytest.mark.parametrize("fx", CLASSIFIER, ids=[fx.path.stem for fx in CLASSIFIER])
def test_classifier_matches_pycaffe(fx, tmp_path):
    proto, weights, opts = _model(fx, tmp_path)
    clf = caffe.Classifier(proto, weights, **opts)
    images = [fx.arrays[f"image/{i}"] for i in range(fx.meta["count"])]
    assert_close(clf.predict(images, oversample=True), fx.arrays["oversample"], 1e-5,
                 f"{fx.id}: oversample")
    assert_close(clf.predict(images, oversample=False), fx.arrays["center"], 1e-5, f"{fx.id}: centre")


@pytest.mark.parametrize("fx", DETECTOR, ids=[fx.path.stem for fx in DETECTOR])
def test_detector_matches_pycaffe(fx, tmp_path):
    proto, weights, opts = _model(fx, tmp_path)
    det = caffe.Detector(proto, weights, **opts)
    pairs = []
    for i, windows in enumerate(fx.meta["windows"]):
        path = tmp_path / f"image{i}.png"
        path.write_bytes(np.asarray(fx.arrays[f"file/{i}"], np.uint8).tobytes())
        pairs.append((str(path), [np.array(w) for w in windows]))
    dets = det.detect_windows(pairs)
    assert [d["filename"] for d in dets] == [p for p, ws in pairs for _ in ws]
    np.testing.assert_array_equal(np.stack([d["window"] for d in dets]), fx.arrays["windows"])
    assert_close(np.stack([d["prediction"] for d in dets]), fx.arrays["predictions"], 1e-5, fx.id)


def test_classifier_is_a_test_phase_net(tmp_path):
    fx = CLASSIFIER[0]
    proto, weights, _ = _model(fx, tmp_path)
    clf = caffe.Classifier(proto, weights, image_dims=(10, 12))
    assert isinstance(clf, caffe.Net) and clf.phase == caffe.TEST
    assert list(clf.crop_dims) == [8, 8] and tuple(clf.image_dims) == (10, 12)
    assert clf.transformer.transpose["data"] == (2, 0, 1)
    probs = clf.predict([np.random.RandomState(0).rand(5, 7, 3)] * 3)  # 30 crops, batch 2
    assert probs.shape == (3, 5)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    np.testing.assert_allclose(probs[0], probs[2], rtol=1e-6)


def test_detector_crop_dims_and_no_context(tmp_path):
    proto, weights, _ = _model(DETECTOR[0], tmp_path)
    det = caffe.Detector(proto, weights)
    assert list(det.crop_dims) == [8, 8, 3] and not det.context_pad
    im = np.random.RandomState(0).rand(10, 10, 3)
    np.testing.assert_array_equal(det.crop(im, [1, 2, 5, 9]), im[1:5, 2:9])


def test_detector_context_pad_fills_outside_with_the_mean(tmp_path):
    proto, weights, _ = _model(DETECTOR[0], tmp_path)
    mean = np.array([10.0, 20.0, 30.0])
    det = caffe.Detector(proto, weights, mean=mean, raw_scale=255.0, channel_swap=(2, 1, 0),
                         context_pad=2)
    crop = det.crop(np.ones((12, 12, 3), np.float32), np.array([0, 0, 5, 5]))
    assert crop.shape == (8, 8, 3)
    # The window touches the corner: context beyond the image is the mean in raw RGB space.
    np.testing.assert_allclose(crop[0, 0], mean[::-1] / 255.0, rtol=1e-6)


def test_selective_search_without_its_tool(tmp_path):
    proto, weights, _ = _model(DETECTOR[0], tmp_path)
    det = caffe.Detector(proto, weights)
    with pytest.raises(UnsupportedError, match="selective_search_ijcv_with_python"):
        det.detect_selective_search(["a.jpg"])
