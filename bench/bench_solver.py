"""Benchmark: ``solver.step(1)`` against a hand-written PyTorch training step.

Both train the same LeNet-sized net (conv 20·5×5 → max pool → conv 50·5×5 →
max pool → ip 500 → ReLU → ip 10 → softmax loss, batch 64 of 1×28×28) with
SGD, momentum 0.9 and weight decay 5e-4. The PyTorch step is forward, loss,
backward and ``torch.optim.SGD(foreach=True)``. The two are timed interleaved
in one process (alternating rounds, medians), so machine load affects both
alike. Also reported: the cost of caffe_compat's update alone
(``apply_update``) and of its forward/backward alone.

    python bench/bench_solver.py [--iters 30] [--rounds 5] [--gpu] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import caffe_compat  # noqa: F401  (first: its OpenMP set-up happens before torch loads)
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import caffe_compat as caffe  # noqa: E402

BATCH = 64

NET = """name: "LeNet"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: %d dim: 1 dim: 28 dim: 28 } shape { dim: %d } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        param { lr_mult: 1 } param { lr_mult: 2 }
        convolution_param { num_output: 20 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        param { lr_mult: 1 } param { lr_mult: 2 }
        convolution_param { num_output: 50 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1" param { lr_mult: 1 } param { lr_mult: 2 }
        inner_product_param { num_output: 500 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" param { lr_mult: 1 } param { lr_mult: 2 }
        inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
""" % (BATCH, BATCH)

SOLVER = """net: "%s"
base_lr: 0.01 momentum: 0.9 weight_decay: 0.0005 lr_policy: "inv" gamma: 0.0001 power: 0.75
max_iter: 1000000 snapshot_after_train: false snapshot_prefix: "%s"
"""


class TorchLeNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 20, 5)
        self.conv2 = torch.nn.Conv2d(20, 50, 5)
        self.ip1 = torch.nn.Linear(800, 500)
        self.ip2 = torch.nn.Linear(500, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.conv1(x), 2, 2)
        x = F.max_pool2d(self.conv2(x), 2, 2)
        return self.ip2(F.relu(self.ip1(x.flatten(1))))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, iters: int, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / iters * 1e3


def run(iters: int = 30, rounds: int = 5, gpu: bool = False) -> dict[str, float]:
    """Median milliseconds per step of each contender."""
    if gpu:
        caffe.set_mode_gpu()
    device = torch.device("cuda" if gpu and torch.cuda.is_available() else "cpu")
    tmp = tempfile.mkdtemp(prefix="bench_solver_")
    net_path = os.path.join(tmp, "lenet.prototxt")
    with open(net_path, "w") as f:
        f.write(NET)
    with open(os.path.join(tmp, "solver.prototxt"), "w") as f:
        f.write(SOLVER % (net_path, os.path.join(tmp, "snap")))
    solver = caffe.get_solver(os.path.join(tmp, "solver.prototxt"))
    rng = np.random.RandomState(0)
    solver.net.blobs["data"].data[...] = rng.rand(BATCH, 1, 28, 28)
    solver.net.blobs["label"].data[...] = rng.randint(10, size=BATCH)

    model = TorchLeNet().to(device)
    # Caffe's lr_mult 2 on biases, weight decay on every blob, as in the prototxt.
    opt = torch.optim.SGD([
        {"params": [model.conv1.weight, model.conv2.weight, model.ip1.weight, model.ip2.weight], "lr": 0.01},
        {"params": [model.conv1.bias, model.conv2.bias, model.ip1.bias, model.ip2.bias], "lr": 0.02},
    ], lr=0.01, momentum=0.9, weight_decay=0.0005, foreach=True)
    x = torch.from_numpy(rng.rand(BATCH, 1, 28, 28).astype(np.float32)).to(device)
    y = torch.from_numpy(rng.randint(10, size=BATCH)).to(device)

    def torch_step() -> None:
        opt.zero_grad(set_to_none=False)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    def fwd_bwd() -> None:
        solver.net.clear_param_diffs()
        solver.net._forward_backward()

    contenders = {
        "caffe_compat solver.step(1)": lambda: solver.step(1),
        "hand-written torch step": torch_step,
        "caffe_compat forward+backward only": fwd_bwd,
        "caffe_compat apply_update only": solver.apply_update,
    }
    for fn in contenders.values():  # warm up
        for _ in range(3):
            fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            times[name].append(_time(fn, iters, device))
    caffe.set_mode_cpu()
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    res = run(args.iters, args.rounds, args.gpu)
    ref = res["hand-written torch step"]
    where = "cuda" if args.gpu and torch.cuda.is_available() else f"cpu, {torch.get_num_threads()} threads"
    print(f"LeNet, batch {BATCH}, SGD momentum + weight decay ({where}); median of {args.rounds} rounds "
          f"of {args.iters} steps")
    for name, ms in res.items():
        print(f"  {name:38s} {ms:8.3f} ms   {ms / ref:5.2f}x torch step")


if __name__ == "__main__":
    main()
