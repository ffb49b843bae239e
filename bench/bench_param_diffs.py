"""Large InnerProduct weight gradients added into the diff in place, on and off.

The model-zoo classifiers' weights (AlexNet fc6: 9216 x 4096, VGG-16 fc6: 25088 x 4096)
get their gradient from one ``addmm_`` into ``weight.grad`` while the net
backpropagates (``caffe_compat/layers/common/inner_product.py``), instead of a fresh
weight-sized tensor added afterwards. This times both, interleaved in one process,
on pycaffe's ``forward(); backward()``, batch 8, on the deploy nets with a diff
on ``prob`` (2-core VM, 2026-12-07: AlexNet 305 vs 392 ms, 1.28x; VGG-16 5.37 vs
5.72 s, 1.07x).

    python bench/bench_param_diffs.py [--nets alexnet,vgg16] [--rounds 5] [--batch 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import caffe_compat as caffe  # noqa: E402
from caffe_compat.layers.common import inner_product  # noqa: E402

NETS = {
    "alexnet": "examples/model_zoo/bvlc_alexnet/deploy.prototxt",
    "caffenet": "examples/model_zoo/bvlc_reference_caffenet/deploy.prototxt",
    "vgg16": "examples/model_zoo/vgg_ilsvrc_16_layers/deploy.prototxt",
    "googlenet": "examples/model_zoo/bvlc_googlenet/deploy.prototxt",
}


def _net(path: str, batch: int) -> "caffe.Net":
    with open(os.path.join(ROOT, path)) as f:
        text = "force_backward: true\n" + f.read()
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(text)
    try:
        net = caffe.Net(f.name, caffe.TRAIN)
    finally:
        os.unlink(f.name)
    shape = list(net.blobs["data"].data.shape)
    net.blobs["data"].reshape(batch, *shape[1:])
    net.reshape()
    rng = np.random.RandomState(0)
    net.blobs["data"].data[...] = rng.randn(batch, *shape[1:])
    return net


def _time(fn, rounds: int) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), (max(times) - min(times)) / statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default="alexnet,vgg16")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args(argv)
    caffe.set_mode_cpu()
    print(f"# in-place weight diffs (>= {inner_product._MIN_ACCUMULATED} values), batch {args.batch}")
    print("| net | pass | in place ms | fresh tensor ms | fresh / in place |")
    print("|---|---|---|---|---|")
    on = inner_product._MIN_ACCUMULATED
    for name in args.nets.split(","):
        net = _net(NETS[name], args.batch)
        prob = net.blobs["prob"]

        def pycaffe() -> None:
            net.forward()
            prob.diff[...] = 1e-3
            net.backward()

        for label, fn in (("forward(); backward()", pycaffe),):
            res = {}
            for _ in range(2):  # alternate twice: drift shows as a spread
                for mode in ("in place", "fresh"):
                    inner_product._MIN_ACCUMULATED = on if mode == "in place" else 1 << 62
                    for node in net._nodes:  # the per-layer choice is made when a layer is built
                        if node.type == "InnerProduct":
                            big = node.layer.params[0].numel() >= inner_product._MIN_ACCUMULATED
                            node.layer._into_diff = big
                    res.setdefault(mode, []).append(_time(fn, args.rounds)[0])
            inner_product._MIN_ACCUMULATED = on
            for node in net._nodes:
                if node.type == "InnerProduct":
                    node.layer._into_diff = node.layer.params[0].numel() >= on
            a, b = statistics.median(res["in place"]), statistics.median(res["fresh"])
            print(f"| {name} | {label} | {a * 1e3:.0f} | {b * 1e3:.0f} | {b / a:.2f} |", flush=True)


if __name__ == "__main__":
    main()
