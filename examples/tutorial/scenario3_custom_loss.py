"""Tutorial scenario 3: the custom Python loss layer, trained two ways.

    python examples/tutorial/scenario3_custom_loss.py [--iters N]

``my_custom_loss.py`` is the tutorial's file unchanged (it does ``import caffe``
and subclasses ``caffe.Layer``), ``.caffeinit`` holds the tutorial's line
``python_layer my_custom_loss MyCustomLossLayer my_custom_loss.py`` and
``custom_loss_train.prototxt`` ends with the tutorial's layer snippet. The
script checks the layer's value and gradient against the formula
``sum((pred - label)^2) / N``, checks its backward with
``caffe.check_gradient``, and trains with pycaffe's ``solver.step``. The
command-line way is ``caffe-compat train --solver=custom_loss_solver.prototxt``
from this directory.

Note: the tutorial's prototxt gives no ``loss_weight``. Real Caffe then
treats the Python layer's output as an ordinary blob and trains nothing;
caffe_compat sees the layer is named as a loss and uses weight 1 (the log
says so).
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import caffe_compat as caffe

HERE = os.path.dirname(os.path.abspath(__file__))


def check_formula(net: caffe.Net) -> float:
    """Forward + backward once; compare with the formula; return the loss."""
    net.forward()
    pred, label = net.blobs["fc8"].data.copy(), net.blobs["label"].data.copy()
    n = pred.shape[0]
    loss = float(net.blobs["loss"].data[0])
    assert np.isclose(loss, np.sum((pred - label) ** 2) / n, rtol=1e-5), "loss != sum((p - y)^2) / N"
    net.backward()
    weight = net.blob_loss_weights["loss"]
    assert np.allclose(net.blobs["fc8"].diff, weight * 2 * (pred - label) / n, rtol=1e-5, atol=1e-7)
    return loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=100)
    args = ap.parse_args()
    os.chdir(HERE)  # ./.caffeinit registers my_custom_loss; solver paths are relative

    solver = caffe.get_solver("custom_loss_solver.prototxt")
    net = solver.net
    print(f"loss weight of the Python loss: {net.blob_loss_weights['loss']}")
    print(f"loss = sum((pred - label)^2) / N holds; first loss {check_formula(net):.4f}")

    from my_custom_loss import MyCustomLossLayer  # importable now: the net loaded it

    rng = np.random.RandomState(0)
    report = caffe.check_gradient(MyCustomLossLayer, [rng.randn(4, 3), rng.randn(4, 3)], check=[0])
    print(report)
    report.assert_ok()

    losses = []
    for _ in range(args.iters):
        solver.step(1)
        losses.append(float(net.blobs["loss"].data[0]))
    print(f"after {args.iters} iterations of solver.step: loss {losses[0]:.4f} -> "
          f"{np.mean(losses[-10:]):.4f}")
    assert np.mean(losses[-10:]) < 0.5 * losses[0], "training did not lower the loss"


if __name__ == "__main__":
    main()
