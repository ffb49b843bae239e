"""The CPU kernel choices of ``caffe_compat/layers/vision/_cpu_kernels.py``, shape by shape.

For each pooling and one-channel convolution shape of the benchmark nets (and a
few other common ones), forward + backward through torch's default kernel and
through caffe_compat's choice, in alternating rounds (``_common.interleaved``).
The choice is kept where it is faster on the machines we measured; this script
is how to check a new machine.

    python bench/bench_kernels.py [--threads 1] [--rounds 9] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable

import _common as common  # also puts the repository on sys.path
import torch
import torch.nn.functional as F

from caffe_compat.layers.vision import _cpu_kernels as K

# (title, input shape, is_max, kernel, stride, ceil)
POOLS = [
    ("LeNet pool1 MAX 2/2", (64, 20, 24, 24), True, 2, 2, False),
    ("LeNet pool2 MAX 2/2", (64, 50, 8, 8), True, 2, 2, False),
    ("CIFAR10-quick pool1 MAX 3/2", (100, 32, 32, 32), True, 3, 2, True),
    ("CIFAR10-quick pool2 AVE 3/2", (100, 32, 16, 16), False, 3, 2, True),
    ("CIFAR10-quick pool3 AVE 3/2", (100, 64, 8, 8), False, 3, 2, True),
    ("8 channels MAX 2/2", (64, 8, 32, 32), True, 2, 2, False),
]
# The model-zoo nets of bench_big.py, per image: (title, (C, H, W), is_max, kernel, stride, pad);
# Caffe rounds up (ceil). Timed at the training batch (--batch, forward+backward) and at
# batch 1 forward only (inference, no graph).
BIG_POOLS = [
    ("AlexNet pool1 MAX 3/2", (96, 55, 55), True, 3, 2, 0),
    ("AlexNet pool2 MAX 3/2", (256, 27, 27), True, 3, 2, 0),
    ("AlexNet pool5 MAX 3/2", (256, 13, 13), True, 3, 2, 0),
    ("GoogLeNet pool1 MAX 3/2", (64, 112, 112), True, 3, 2, 0),
    ("GoogLeNet pool2 MAX 3/2", (192, 56, 56), True, 3, 2, 0),
    ("GoogLeNet 3a/pool MAX 3/1 p1", (192, 28, 28), True, 3, 1, 1),
    ("GoogLeNet pool3 MAX 3/2", (480, 28, 28), True, 3, 2, 0),
    ("GoogLeNet 4b/pool MAX 3/1 p1", (512, 14, 14), True, 3, 1, 1),
    ("GoogLeNet pool4 MAX 3/2", (832, 14, 14), True, 3, 2, 0),
    ("GoogLeNet 5b/pool MAX 3/1 p1", (832, 7, 7), True, 3, 1, 1),
    ("GoogLeNet loss1 AVE 5/3", (512, 14, 14), False, 5, 3, 0),
    ("GoogLeNet pool5 AVE 7/1", (1024, 7, 7), False, 7, 1, 0),
    ("VGG-16 pool1 MAX 2/2", (64, 224, 224), True, 2, 2, 0),
    ("VGG-16 pool2 MAX 2/2", (128, 112, 112), True, 2, 2, 0),
    ("VGG-16 pool3 MAX 2/2", (256, 56, 56), True, 2, 2, 0),
    ("VGG-16 pool4 MAX 2/2", (512, 28, 28), True, 2, 2, 0),
    ("VGG-16 pool5 MAX 2/2", (512, 14, 14), True, 2, 2, 0),
    ("ResNet-50 pool1 MAX 3/2", (64, 112, 112), True, 3, 2, 0),
    ("ResNet-50 pool5 AVE 7/1", (2048, 7, 7), False, 7, 1, 0),
]
# (title, input shape, num_output, kernel, stride, pad)
CONVS = [
    ("LeNet conv1 5x5", (64, 1, 28, 28), 20, 5, 1, 0),
    ("1-ch 64x64 3x3 pad 1", (32, 1, 64, 64), 32, 3, 1, 1),
    ("1-ch 128x128 7x7/2 pad 3", (16, 1, 128, 128), 64, 7, 2, 3),
]


# AlexNet's grouped convolutions (group 2), per image: (title, (C, H, W), num_output, kernel, pad).
# A candidate, not a choice: torch's grouped kernel against one convolution per group + cat.
BIG_GROUPED = [
    ("AlexNet conv2 5x5 g2", (96, 27, 27), 256, 5, 2),
    ("AlexNet conv4 3x3 g2", (384, 13, 13), 384, 3, 1),
    ("AlexNet conv5 3x3 g2", (384, 13, 13), 256, 3, 1),
]


def _split_groups(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, p: int, g: int) -> torch.Tensor:
    parts = zip(x.chunk(g, 1), w.chunk(g, 0), b.chunk(g, 0))
    return torch.cat([F.conv2d(xi, wi, bi, 1, p) for xi, wi, bi in parts], 1)


def _grouped_case(shape: tuple[int, ...], o: int, k: int, p: int, split: bool,
                  grad: bool) -> Callable[[], None]:
    g = 2
    x = torch.randn(*shape, requires_grad=grad)
    w = (torch.randn(o, shape[1] // g, k, k) * 0.01).requires_grad_(grad)
    b = torch.randn(o, requires_grad=grad)

    def fn() -> torch.Tensor:
        return _split_groups(x, w, b, p, g) if split else F.conv2d(x, w, b, 1, p, 1, g)
    if grad:
        return _fwd_bwd(fn, [x, w, b])

    def fwd() -> None:
        with torch.no_grad():
            fn()
    return fwd


def _fwd_bwd(make: Callable[[], torch.Tensor], inputs: list[torch.Tensor]) -> Callable[[], None]:
    def run() -> None:
        y = make()
        torch.autograd.grad(y, inputs, torch.ones_like(y))
    return run


def _pool_case(shape: tuple[int, ...], is_max: bool, k: int, s: int, ceil: bool,
               p: int = 0) -> Callable[[], None]:
    x = torch.randn(*shape, requires_grad=True)
    return _fwd_bwd(lambda: K.pool2d(x, is_max, (k, k), (s, s), (p, p), ceil), [x])


def _pool_forward(shape: tuple[int, ...], is_max: bool, k: int, s: int, p: int) -> Callable[[], None]:
    x = torch.randn(*shape)

    def run() -> None:
        with torch.no_grad():
            K.pool2d(x, is_max, (k, k), (s, s), (p, p), True)
    return run


def _conv_case(shape: tuple[int, ...], o: int, k: int, s: int, p: int) -> Callable[[], None]:
    x = torch.randn(*shape)
    w = torch.randn(o, 1, k, k, requires_grad=True)
    b = torch.randn(o, requires_grad=True)
    return _fwd_bwd(lambda: K.conv2d(x, w, b, (s, s), (p, p), (1, 1), 1), [w, b])


def _with(on: bool, fn: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        was = K.set_enabled(on)
        try:
            fn()
        finally:
            K.set_enabled(was)
    return run


def run(threads: int = 1, rounds: int = 9, big: bool = False, batch: int = 8) -> list[dict[str, Any]]:
    torch.set_num_threads(threads)
    if big:
        rows = []
        for title, chw, is_max, k, s, p in BIG_POOLS:
            rows.append((f"{title} b{batch} fwd+bwd", _pool_case((batch, *chw), is_max, k, s, True, p)))
            rows.append((f"{title} b1 forward", _pool_forward((1, *chw), is_max, k, s, p)))
    else:
        rows = [(c[0], _pool_case(*c[1:])) for c in POOLS] + [(c[0], _conv_case(*c[1:])) for c in CONVS]
    out = []
    for title, fb in rows:
        t = common.interleaved({"torch": _with(False, fb), "chosen": _with(True, fb)}, rounds, iters=3)
        out.append({"title": title, "threads": threads, "torch_ms": t["torch"]["median_ms"],
                    "chosen_ms": t["chosen"]["median_ms"]})
    if big:
        for title, chw, o, k, p in BIG_GROUPED:
            for n, grad, what in ((batch, True, "fwd+bwd"), (1, False, "forward")):
                t = common.interleaved({"torch": _grouped_case((n, *chw), o, k, p, False, grad),
                                        "split": _grouped_case((n, *chw), o, k, p, True, grad)},
                                       rounds, iters=3)
                out.append({"title": f"{title} b{n} {what} [candidate: split groups, not taken]",
                            "threads": threads, "torch_ms": t["torch"]["median_ms"],
                            "chosen_ms": t["split"]["median_ms"]})
    return out


def report(rows: list[dict[str, Any]]) -> list[str]:
    lines = [f"CPU kernel choices, forward+backward ({rows[0]['threads']} thread(s); median ms)"]
    for r in rows:
        lines.append(f"  {r['title']:<46} torch {common.fmt_ms(r['torch_ms']):>7}  chosen "
                     f"{common.fmt_ms(r['chosen_ms']):>7}  gain {r['torch_ms'] / r['chosen_ms']:.2f}x")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--big", action="store_true",
                    help="the pooling shapes of the model-zoo nets (bench_big.py)")
    ap.add_argument("--batch", type=int, default=8, help="with --big: the training batch")
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = run(args.threads, args.rounds, args.big, args.batch)
    print("\n".join(report(rows)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": common.machine(args.threads), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
