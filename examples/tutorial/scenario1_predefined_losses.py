"""Tutorial scenario 1: the pre-defined loss layers, each from its prototxt snippet.

    python examples/tutorial/scenario1_predefined_losses.py

Builds one small net per snippet in ``losses/`` (an Input layer stands in for
``fc8`` and ``label``), feeds random predictions and fitting labels, and
prints the loss and the size of its gradient.
"""

from __future__ import annotations

import os

import numpy as np

import caffe_compat as caffe

HERE = os.path.dirname(os.path.abspath(__file__))
SNIPPETS = ["softmax_with_loss", "sigmoid_cross_entropy_loss", "euclidean_loss", "l1_loss", "hinge_loss"]


def labels_for(name: str, shape: tuple, rng: np.random.RandomState, classes: int) -> np.ndarray:
    """Class ids, multi-hot targets or regression targets, as each loss expects."""
    if name in ("softmax_with_loss", "hinge_loss"):
        return rng.randint(0, classes, size=shape).astype(np.float32)
    if name == "sigmoid_cross_entropy_loss":
        return (rng.rand(*shape) < 0.3).astype(np.float32)
    return rng.randn(*shape).astype(np.float32)


def run(name: str, seed: int = 0) -> tuple[float, float]:
    """The loss of one snippet's net on random data, and the L2 norm of d loss / d fc8."""
    rng = np.random.RandomState(seed)
    net = caffe.Net(os.path.join(HERE, "losses", name + ".prototxt"), caffe.TRAIN)
    fc8 = net.blobs["fc8"]
    net.blobs["fc8"].data[...] = rng.randn(*fc8.data.shape)
    net.blobs["label"].data[...] = labels_for(name, net.blobs["label"].data.shape, rng, fc8.data.shape[1])
    net.forward()
    loss = float(net.blobs["loss"].data)  # a 1-element (or 0-d) array
    # fc8 is a net input here, so the nets say force_backward: true; labels
    # never get a gradient from a loss layer.
    net.backward()
    return loss, float(np.linalg.norm(net.blobs["fc8"].diff))


def main() -> None:
    for name in SNIPPETS:
        loss, grad = run(name)
        print(f"{name:28s} loss = {loss:.4f}   |d loss / d fc8| = {grad:.4f}")


if __name__ == "__main__":
    main()
