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
# (title, input shape, num_output, kernel, stride, pad)
CONVS = [
    ("LeNet conv1 5x5", (64, 1, 28, 28), 20, 5, 1, 0),
    ("1-ch 64x64 3x3 pad 1", (32, 1, 64, 64), 32, 3, 1, 1),
    ("1-ch 128x128 7x7/2 pad 3", (16, 1, 128, 128), 64, 7, 2, 3),
]


def _fwd_bwd(make: Callable[[], torch.Tensor], inputs: list[torch.Tensor]) -> Callable[[], None]:
    def run() -> None:
        y = make()
        torch.autograd.grad(y, inputs, torch.ones_like(y))
    return run


def _pool_case(shape: tuple[int, ...], is_max: bool, k: int, s: int, ceil: bool) -> Callable[[], None]:
    x = torch.randn(*shape, requires_grad=True)
    return _fwd_bwd(lambda: K.pool2d(x, is_max, (k, k), (s, s), (0, 0), ceil), [x])


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


def run(threads: int = 1, rounds: int = 9) -> list[dict[str, Any]]:
    torch.set_num_threads(threads)
    rows = [(c[0], _pool_case(*c[1:])) for c in POOLS] + [(c[0], _conv_case(*c[1:])) for c in CONVS]
    out = []
    for title, fb in rows:
        t = common.interleaved({"torch": _with(False, fb), "chosen": _with(True, fb)}, rounds, iters=3)
        out.append({"title": title, "threads": threads, "torch_ms": t["torch"]["median_ms"],
                    "chosen_ms": t["chosen"]["median_ms"]})
    return out


def report(rows: list[dict[str, Any]]) -> list[str]:
    lines = [f"CPU kernel choices, forward+backward ({rows[0]['threads']} thread(s); median ms)"]
    for r in rows:
        lines.append(f"  {r['title']:<30} torch {common.fmt_ms(r['torch_ms']):>7}  chosen "
                     f"{common.fmt_ms(r['chosen_ms']):>7}  gain {r['torch_ms'] / r['chosen_ms']:.2f}x")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = run(args.threads, args.rounds)
    print("\n".join(report(rows)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": common.machine(args.threads), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
