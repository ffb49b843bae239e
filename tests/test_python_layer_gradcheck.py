"""``caffe_compat.check_gradient``: finite differences against a Python layer's backward.

A correct layer passes; each planted bug is found in the right row (bottom or
parameter blob) and only there.
"""

from __future__ import annotations

import numpy as np
import pytest

import caffe_compat as caffe
from caffe_compat.gradcheck import GradientCheckError


class WeightedSquare(caffe.Layer):
    """top = sum(w * a^2) + sum(a * b), w a learnable blob shaped like a[0].

    ``param_str`` plants one bug: "a" (bottom 0 gradient off by a factor 2),
    "b" (bottom 1 gradient of the wrong sign), "w" (parameter gradient not
    summed over the batch), "forget" (bottom 1 diff never written).
    """

    def setup(self, bottom, top):
        self.bug = self.param_str
        self.blobs.add_blob(*bottom[0].data.shape[1:])
        self.blobs[0].data[...] = np.linspace(0.5, 1.5, self.blobs[0].count).reshape(self.blobs[0].data.shape)
        top[0].reshape(1)

    def forward(self, bottom, top):
        a, b, w = bottom[0].data, bottom[1].data, self.blobs[0].data
        top[0].data[0] = np.sum(w * a ** 2) + np.sum(a * b)

    def backward(self, top, propagate_down, bottom):
        a, b, w, g = bottom[0].data, bottom[1].data, self.blobs[0].data, top[0].diff[0]
        bottom[0].diff[...] = g * ((1 if self.bug == "a" else 2) * w * a + b)
        if self.bug != "forget":
            bottom[1].diff[...] = g * (-a if self.bug == "b" else a)
        self.blobs[0].diff[...] += g * ((a ** 2)[0] if self.bug == "w" else (a ** 2).sum(axis=0))


def check(bug: str = "", **kw):
    rng = np.random.RandomState(0)
    return caffe.check_gradient(WeightedSquare, [rng.randn(3, 4), rng.randn(3, 4)], param_str=bug, **kw)


def test_a_correct_layer_passes():
    report = check()
    assert report.ok
    assert [r.what for r in report.rows] == ["bottom 0", "bottom 1", "param 0"]
    assert all(r.checked == 12 or (r.what == "param 0" and r.checked == 4) for r in report.rows)
    report.assert_ok()


@pytest.mark.parametrize("bug, failing", [
    ("a", "bottom 0"),
    ("b", "bottom 1"),
    ("w", "param 0"),
    ("forget", "bottom 1"),
], ids=["factor-2-missing", "wrong-sign", "param-not-summed", "diff-not-written"])
def test_planted_bug_is_found_in_its_row(bug, failing):
    report = check(bug)
    assert not report.ok
    assert [r.what for r in report.rows if not r.ok] == [failing]
    row = report.row(failing)
    assert row.worst_error > 0.1
    assert abs(row.analytic - row.numeric) > 0.1
    if bug == "forget":
        assert "backward wrote no gradient for bottom 1" in str(report)


def test_report_text_and_assert_ok():
    report = check("a")
    text = str(report)
    assert text.startswith("gradient check of test_python_layer_gradcheck.WeightedSquare")
    assert "bottom 0" in text and "FAILED" in text and "worst error" in text
    with pytest.raises(GradientCheckError) as info:
        report.assert_ok()
    assert isinstance(info.value, AssertionError)


def test_check_selects_bottoms_and_params():
    report = check("b", check=[0], params=False)
    assert [r.what for r in report.rows] == ["bottom 0"] and report.ok


def test_large_blobs_are_sampled():
    rng = np.random.RandomState(1)
    report = caffe.check_gradient(WeightedSquare, [rng.randn(50, 40), rng.randn(50, 40)], max_points=30,
                                  params=False)
    assert [r.checked for r in report.rows] == [30, 30] and report.ok


def test_shapes_instead_of_arrays():
    report = caffe.check_gradient(WeightedSquare, [(2, 3), (2, 3)])
    assert report.ok and report.rows[0].shape == (2, 3)


def test_layer_given_as_prototxt_text():
    text = ('layer { type: "Python" python_param { module: "test_python_layer_gradcheck" '
            'layer: "WeightedSquare" } }')
    rng = np.random.RandomState(2)
    assert caffe.check_gradient(text, [rng.randn(2, 3), rng.randn(2, 3)]).ok
    assert not caffe.check_gradient(text, [rng.randn(2, 3), rng.randn(2, 3)], param_str="w").ok
