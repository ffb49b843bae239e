"""Benchmark: the interpreter's per-layer Python overhead.

A net of K cheap layers on a tiny blob (so the arithmetic is negligible and
what is left is dispatch) against the same torch ops called directly in a
Python loop. Per layer and pass::

    ours   = (time(net of K layers) - time(net with the Input layer only)) / K
    torch  = (time(K direct ops)    - time(no op)) / K
    overhead = ours - torch

The fixed cost of one ``net.forward()`` call (the Input-only net) is reported
separately. Layer kinds:

* ``ReLU`` (a new top per layer) and ``ReLU in place`` (one blob);
* ``Scale`` (one learnable blob each): torch ``x * w_i.view(1, -1)``;
* ``InnerProduct`` 16→16 with bias: torch ``F.linear(x, w_i, b_i)``.

Passes: ``forward`` (a TEST net: no autograd graph) and ``forward+backward``
(TRAIN with ``force_backward: true``: pycaffe's ``net.backward()``, every blob's
diff kept; torch: ``y.backward(g)`` with the input requiring grad). Runs on the
CPU, and on CUDA too when available (there a pass is launch-bound: the numbers
are the cost of the Python around each kernel launch).

    python bench/bench_overhead.py [--layers 50] [--rounds 11] [--device cpu|cuda|all] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as common  # noqa: E402  (first: caffe_compat's OpenMP set-up before torch)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


WIDTH = 16
KINDS = ["ReLU", "ReLU in place", "Scale", "InnerProduct"]


def net_text(kind: str, k: int, backward: bool) -> str:
    text = ("force_backward: true\n" if backward else "") + \
        f'layer {{ name: "in" type: "Input" top: "b0" input_param {{ shape {{ dim: 4 dim: {WIDTH} }} }} }}\n'
    for i in range(k):
        bottom, top = (f"b{i}", f"b{i + 1}") if kind != "ReLU in place" else ("b0", "b0")
        body = {
            "ReLU": 'type: "ReLU"',
            "ReLU in place": 'type: "ReLU"',
            "Scale": 'type: "Scale" scale_param { filler { type: "constant" value: 1 } }',
            "InnerProduct": f'type: "InnerProduct" inner_product_param {{ num_output: {WIDTH} '
                            'weight_filler { type: "gaussian" std: 0.25 } }',
        }[kind]
        text += f'layer {{ name: "l{i}" {body} bottom: "{bottom}" top: "{top}" }}\n'
    return text


def torch_chain(kind: str, k: int, device: str, backward: bool) -> Callable[[], None]:
    """The same ops, called directly."""
    x0 = torch.randn(4, WIDTH, device=device)
    ws = [torch.ones(WIDTH, device=device, requires_grad=backward) for _ in range(k)]
    lin = [(torch.randn(WIDTH, WIDTH, device=device).mul_(0.25).requires_grad_(backward),
            torch.zeros(WIDTH, device=device, requires_grad=backward)) for _ in range(k)]
    g = torch.ones(4, WIDTH, device=device)

    def run() -> None:
        x = x0.detach().requires_grad_(backward)
        y = x
        if kind.startswith("ReLU"):
            for _ in range(k):
                y = F.relu(y)
        elif kind == "Scale":
            for w in ws:
                y = y * w.view(1, -1)
        else:
            for w, b in lin:
                y = F.linear(y, w, b)
        if backward and k:
            y.backward(g)
    return run


def net_runner(kind: str, k: int, backward: bool) -> Callable[[], None]:
    """A net of ``k`` layers on the device of caffe_compat's current mode."""
    import caffe_compat as caffe

    net = caffe.Net(net_text(kind, k, backward), caffe.TRAIN if backward else caffe.TEST)
    net.blobs["b0"].data[...] = torch.randn(4, WIDTH).numpy()
    out = net.outputs[0]
    if backward:
        net.blobs[out].diff[...] = 1

    def run() -> None:
        net.forward()
        if backward:
            net.backward()
    return run


def bench(kind: str, device: str, backward: bool, layers: int, rounds: int) -> dict[str, float]:
    import caffe_compat as caffe

    if device.startswith("cuda"):
        caffe.set_mode_gpu()  # nets follow the global mode at each forward
    try:
        contenders = {
            "ours": net_runner(kind, layers, backward),
            "ours0": net_runner(kind, 0, backward),
            "torch": torch_chain(kind, layers, device, backward),
            "torch0": torch_chain(kind, 0, device, backward),
        }
        probe = common.interleaved({"p": contenders["ours"]}, rounds=1, iters=3, warmup=2, device=device)
        iters = max(5, round(0.05 / max(probe["p"]["median_ms"] / 1e3, 1e-6)))
        st = common.interleaved(contenders, rounds=rounds, iters=iters, warmup=3, device=device)
    finally:
        caffe.set_mode_cpu()
    us = {k: v["median_ms"] * 1e3 for k, v in st.items()}
    ours = (us["ours"] - us["ours0"]) / layers
    direct = (us["torch"] - us["torch0"]) / layers
    return {"kind": kind, "device": device, "pass": "forward+backward" if backward else "forward",
            "layers": layers, "ours_us_per_layer": ours, "torch_us_per_layer": direct,
            "overhead_us_per_layer": ours - direct, "ratio": ours / direct if direct > 0 else None,
            "net_call_us": us["ours0"], "spread": max(v["spread"] for v in st.values())}


def run(device: str = "all", layers: int = 50, rounds: int = 11, threads: int = 1,
        log: Any = print) -> dict[str, Any]:
    torch.set_num_threads(threads)
    devs = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) if device == "all" else [device]
    out: dict[str, Any] = {"rows": [], "skipped": []}
    if device in ("all", "cuda") and not torch.cuda.is_available():
        out["skipped"].append("CUDA per-layer overhead: torch.cuda.is_available() is False on this machine")
        devs = [d for d in devs if d == "cpu"]
    for dev in devs:
        for backward in (False, True):
            for kind in KINDS:
                log(f"[bench_overhead] {kind} {'fwd+bwd' if backward else 'fwd'} on {dev} ...")
                out["rows"].append(bench(kind, dev, backward, layers, rounds))
    return out


def report(res: dict[str, Any]) -> list[str]:
    lines = [f"{'layer':<15}{'device':<7}{'pass':<18}{'ours us':>9}{'torch us':>10}{'overhead':>10}"
             f"{'ratio':>8}{'net call us':>13}"]
    for r in res["rows"]:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] else "-"
        lines.append(f"{r['kind']:<15}{r['device']:<7}{r['pass']:<18}{r['ours_us_per_layer']:9.1f}"
                     f"{r['torch_us_per_layer']:10.1f}{r['overhead_us_per_layer']:10.1f}{ratio:>8}"
                     f"{r['net_call_us']:13.1f}")
    for s in res["skipped"]:
        lines.append(f"skipped: {s}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--device", default="all")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    res = run(args.device, args.layers, args.rounds, args.threads)
    print(f"per-layer cost, microseconds per layer per pass (median of {args.rounds} interleaved rounds; "
          f"{args.layers} layers, blob 4x{WIDTH}; torch {torch.__version__}, {args.threads} thread(s))")
    print("\n".join(report(res)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
