"""Large InnerProduct weights get their gradient added into the diff in place while
the net backpropagates (one GEMM with beta = 1, as Caffe's backward): same numbers as
the fresh-gradient path, accumulation across passes, and plain autograd outside."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import caffe_compat as caffe
from caffe_compat.layers.base import accumulating_param_diffs
from caffe_compat.layers.common import inner_product

NET = """
name: "fc" force_backward: true
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 3 dim: 1024 } } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
        inner_product_param { num_output: 1024 transpose: %s weight_filler { type: "gaussian" std: 0.01 }
                              bias_filler { type: "constant" value: 0.1 } } }
layer { name: "out" type: "InnerProduct" bottom: "fc" top: "out"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.1 } } }
"""


def _reference(net):
    x = torch.from_numpy(net.blobs["data"].data.copy())
    w = torch.from_numpy(net.params["fc"][0].data.copy()).requires_grad_()
    b = torch.from_numpy(net.params["fc"][1].data.copy()).requires_grad_()
    w2 = torch.from_numpy(net.params["out"][0].data.copy())
    b2 = torch.from_numpy(net.params["out"][1].data.copy())
    wt = w if not net.layer_dict["fc"].transpose else w.t()
    out = torch.nn.functional.linear(torch.nn.functional.linear(x, wt, b), w2, b2)
    out.backward(torch.from_numpy(net.blobs["out"].diff.copy()))
    return w.grad.numpy(), b.grad.numpy()


@pytest.mark.parametrize("transpose", ["false", "true"])
def test_in_place_weight_diff_matches_and_accumulates(tmp_path, transpose):
    path = tmp_path / "fc.prototxt"
    path.write_text(NET % transpose)
    net = caffe.Net(str(path), caffe.TRAIN)
    assert net.params["fc"][0].data.size >= inner_product._MIN_ACCUMULATED
    net.blobs["data"].data[...] = np.random.RandomState(0).randn(3, 1024)
    net.forward()
    net.blobs["out"].diff[...] = np.random.RandomState(1).randn(3, 4)
    diff = net.params["fc"][0].diff  # kept: Caffe's diff buffer is written in place
    net.backward()
    gw, gb = _reference(net)
    np.testing.assert_allclose(diff, gw, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(net.params["fc"][1].diff, gb, rtol=1e-4, atol=1e-6)
    net.forward()
    net.backward()
    np.testing.assert_allclose(diff, 2 * gw, rtol=1e-4, atol=1e-6)
    net.clear_param_diffs()
    net.backward()  # no graph now: the layer-by-layer backward adds in place too
    np.testing.assert_allclose(diff, gw, rtol=1e-4, atol=1e-6)


def test_outside_the_net_the_gradient_is_returned():
    w = torch.randn(1024, 1024, dtype=torch.float64, requires_grad=True)
    w.grad = torch.zeros_like(w)
    x = torch.randn(2, 1024, dtype=torch.float64, requires_grad=True)
    y = inner_product._LinearIntoDiff.apply(x, w, None, False)
    (gw,) = torch.autograd.grad(y.sum(), [w])
    torch.testing.assert_close(gw, torch.ones(2, 1024, dtype=torch.float64).t() @ x.detach())
    assert not w.grad.any()
    with accumulating_param_diffs():
        y = inner_product._LinearIntoDiff.apply(x, w, None, False)
        y.sum().backward()
    torch.testing.assert_close(w.grad, gw)


def test_gradcheck_small_linear_into_diff():
    w = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, requires_grad=True)
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: inner_product._LinearIntoDiff.apply(x, w, b, False),
                                    (x, w, b))
    wt = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: inner_product._LinearIntoDiff.apply(x, w, b, True),
                                    (x, wt, b))
