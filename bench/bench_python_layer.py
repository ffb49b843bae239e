"""Benchmark: the per-call cost of the Python-layer bridge.

A net of K identity layers after an Input layer, against the same net with no
layers (the Input alone), gives the cost of one layer per pass:
``(time(K layers) - time(0 layers)) / K``. Compared kinds:

* ``python``: a pycaffe layer (numpy: ``top[0].data[...] = bottom[0].data``,
  backward copies the diff) through the autograd bridge;
* ``torch``: a ``TorchLayer`` returning ``x * 1``;
* ``builtin``: Caffe's ``Power`` layer (scale 1), a registered torch layer;
* ``plain torch``: hand-written ``y = x * 1`` K times (no net), for scale.

Forward alone (TEST net, no graph) and forward+backward (``force_backward``),
for a tiny blob (pure overhead) and a 64×3×32×32 one (copies). Rounds are
interleaved; medians are reported in microseconds per layer per pass.

    python bench/bench_python_layer.py [--layers 20] [--iters 50] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import caffe_compat  # noqa: F401  (first: its OpenMP set-up happens before torch loads)
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import caffe_compat as caffe  # noqa: E402


class Identity(caffe.Layer):
    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = top[0].diff


class TorchIdentity(caffe.TorchLayer):
    def forward(self, x):
        return x * 1


def net_text(kind: str, k: int, shape: tuple[int, ...], backward: bool) -> str:
    dims = " ".join(f"dim: {d}" for d in shape)
    text = ("force_backward: true\n" if backward else "") + \
        f'layer {{ name: "in" type: "Input" top: "b0" input_param {{ shape {{ {dims} }} }} }}\n'
    for i in range(k):
        if kind == "builtin":
            body = 'type: "Power" power_param { scale: 1 }'
        else:
            cls = "Identity" if kind == "python" else "TorchIdentity"
            body = f'type: "Python" python_param {{ module: "bench_python_layer" layer: "{cls}" }}'
        text += f'layer {{ name: "l{i}" {body} bottom: "b{i}" top: "b{i + 1}" }}\n'
    return text


def time_net(net: "caffe.Net", iters: int, backward: bool) -> float:
    last = net.outputs[0]
    start = time.perf_counter()
    for _ in range(iters):
        net.forward()
        if backward:
            net.blobs[last].diff[...] = 1
            net.backward()
    return (time.perf_counter() - start) / iters


def time_plain(k: int, shape: tuple[int, ...], iters: int, backward: bool) -> float:
    x0 = torch.randn(shape)
    start = time.perf_counter()
    for _ in range(iters):
        x = x0.requires_grad_(backward)
        y = x
        for _ in range(k):
            y = y * 1
        if backward:
            y.backward(torch.ones_like(y))
            x0.grad = None
    return (time.perf_counter() - start) / iters


def bench(k: int, shape: tuple[int, ...], iters: int, rounds: int, backward: bool) -> dict[str, float]:
    phase = caffe.TRAIN if backward else caffe.TEST
    nets = {kind: caffe.Net(net_text(kind, k, shape, backward), phase)
            for kind in ("python", "torch", "builtin")}
    empty = caffe.Net(net_text("python", 0, shape, backward), phase)
    samples: dict[str, list[float]] = {kind: [] for kind in (*nets, "plain torch")}
    for net in (*nets.values(), empty):  # warm up
        time_net(net, 3, backward and net is not empty)
    for _ in range(rounds):
        base = time_net(empty, iters, False)
        for kind, net in nets.items():
            samples[kind].append((time_net(net, iters, backward) - base) / k)
        samples["plain torch"].append(time_plain(k, shape, iters, backward) / k)
    return {kind: statistics.median(v) * 1e6 for kind, v in samples.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=20)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.layers} layers, "
          f"{args.iters} passes x {args.rounds} rounds; microseconds per layer per pass (median)")
    kinds = ("python", "torch", "builtin", "plain torch")
    print(f"{'blob':<14}{'pass':<18}" + "".join(f"{k:>13}" for k in kinds))
    for shape in ((1, 10), (64, 3, 32, 32)):
        for backward in (False, True):
            res = bench(args.layers, shape, args.iters, args.rounds, backward)
            label = "x".join(map(str, shape))
            print(f"{label:<14}{'forward+backward' if backward else 'forward':<18}"
                  + "".join(f"{res[k]:>13.1f}" for k in kinds))
    np.random.seed(0)


if __name__ == "__main__":
    main()
