"""What Caffe's blob semantics cost an inference engine (issue 12, inference target).

pycaffe's ``net.forward()`` leaves every blob holding its value; OpenCV dnn and ONNX
Runtime compute only the outputs, so they may fuse across blobs (Conv+Add+ReLU) and reuse
buffers. This runs ONNX Runtime twice on the same exported deploy net, once with the net's
outputs only and once with every blob an output (what caffe_compat's default plan must
produce), next to caffe_compat's default ``Net.forward()``, in alternating rounds:

    python bench/bench_all_blobs.py [--nets googlenet,resnet50] [--batch 1] [--rounds 7]

Results: ``bench/results/all-blobs-<host>-<date>.md``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _common as common  # noqa: E402
import bench_big as big  # noqa: E402


def run_net(key: str, batch: int, rounds: int, threads: int, d: str) -> dict[str, float]:
    import torch

    import caffe_compat as caffe
    from caffe_compat.export import quiet_exporter, to_torch

    os.makedirs(os.path.join(d, key), exist_ok=True)
    f = big.prepare(big.NETS[key], os.path.join(d, key), os.path.join(d, "no_lmdb"))
    net = caffe.Net(f.deploy(batch), caffe.TEST, weights=f.weights)
    x, _ = big.images(batch, f.spec.crop, seed=3)
    net.blobs["data"].data[...] = x
    names = [n for n in dict.fromkeys(net._blob_names) if n not in net.inputs]
    module = to_torch(net, outputs=names).eval()
    with quiet_exporter():
        program = torch.onnx.export(module, (net.blobs["data"].tensor,), None, dynamo=True,
                                    opset_version=18, input_names=["data"],
                                    output_names=list(module.output_names), verbose=False)
    assert program is not None
    every = big.ort_session(program.model_proto.SerializeToString(), threads)
    outputs = big.ort_session(big.export_onnx(f, batch), threads)
    feed = {"data": x}
    contenders = {"ours": big.local(net.forward),
                  "ORT, every blob": big.local(lambda: every.run(None, feed)),
                  "ORT, outputs only": big.local(lambda: outputs.run(None, feed))}
    times = big.rounds_of(contenders, rounds, 1.0, warmup=3)
    return {k: v["median_ms"] for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default="alexnet,googlenet,vgg16,resnet50")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    args = ap.parse_args()
    import caffe_compat  # noqa: F401  (before torch: OpenMP's set-up, as a user's import)

    big.set_threads(args.threads)
    before = big.uptime()
    d = common.bench_dir()
    rows = []
    for key in args.nets.split(","):
        t = run_net(key, args.batch, args.rounds, args.threads, d)
        every, only = t["ORT, every blob"], t["ORT, outputs only"]
        rows.append(f"| {big.NETS[key].title} | {t['ours']:.1f} | {every:.1f} | {only:.1f} | "
                    f"{every / only:.2f} | {t['ours'] / every:.2f} | {t['ours'] / only:.2f} |")
        print(rows[-1], flush=True)
    m = common.machine(args.threads)
    text = "\n".join([
        f"# What every blob holding its value costs — {m['host']}, {_dt.datetime.now():%Y-%m-%dT%H:%M}", "",
        f"* CPU: {m['cpu']} ({m['cores']} logical cores); threads {args.threads}; batch {args.batch}; "
        f"TEST forward, ms per call, medians of {args.rounds} alternating rounds",
        f"* versions: {big.versions()}", f"* uptime before: `{before}`", f"* uptime after: `{big.uptime()}`",
        "", "| net | ours (default) | ORT, every blob an output | ORT, outputs only | "
        "every / only | ours / every | ours / only |", "|---|---|---|---|---|---|---|", *rows, ""])
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"all-blobs-{platform.node() or 'host'}-{_dt.date.today().isoformat()}.md")
    with open(path, "w") as fh:
        fh.write(text)
    print(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
