"""OpenMP wait policy and thread count under contention (``caffe_compat/threads.py``).

Each (policy, workload) runs in a fresh process — libgomp reads its wait policy
once, when torch loads — alone and with ``--hogs`` CPU-bound processes
(``yes > /dev/null``) running, in alternating rounds, so other load on the
machine hits every policy alike. Policies:

* ``adaptive`` — caffe_compat's default: libgomp spins, the load governor runs torch on the
  cores other processes leave free;
* ``passive`` — ``CAFFE_COMPAT_OMP_WAIT=passive`` (``OMP_WAIT_POLICY=PASSIVE`` while torch
  loads; the default before 2026-12-08);
* ``spin`` — libgomp's default with a fixed thread count (``CAFFE_COMPAT_OMP_WAIT=spin``);
* ``spin 10k``, ``spin 100k`` — libgomp spinning that many times before it sleeps
  (``GOMP_SPINCOUNT``; libgomp's default is 300000). Quiet VM, 2026-12-07, LeNet / CIFAR
  fwd+bwd ms alone -> next to one ``yes``: passive 18.5 -> 25.2 / 55.9 -> 94.1, spin
  15.2 -> 32.0 / 52.0 -> 179, 10k 16.5 -> 72.6 / 49.9 -> 139, 100k 15.0 -> 101 / 48.4 -> 223:
  a bounded spin keeps spinning's cost under load;
* ``1 thread`` — ``torch.set_num_threads(1)`` (no team, nothing waits).

Workloads (caffe_compat nets): LeNet b64 and CIFAR10-quick b100 ``net.forward();
net.backward()`` (many small parallel regions), GoogLeNet, ResNet-50 and VGG-16 batch-1
TEST forward (random weights).

    python bench/bench_threads.py [--rounds 3] [--hogs 1] [--workloads lenet,cifar,googlenet]
                                  [--policies adaptive,passive,spin]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

POLICIES: dict[str, dict[str, str]] = {
    "adaptive": {},
    "passive": {"CAFFE_COMPAT_OMP_WAIT": "passive"},
    "spin": {"CAFFE_COMPAT_OMP_WAIT": "spin"},
    "spin 10k": {"GOMP_SPINCOUNT": "10000"},  # libgomp spins this many times, then sleeps
    "spin 100k": {"GOMP_SPINCOUNT": "100000"},
    "1 thread": {"BENCH_THREADS": "1"},
}
WORKLOADS = ["lenet", "cifar", "googlenet", "resnet50", "vgg16"]


def worker(workload: str, seconds: float) -> dict[str, Any]:
    import numpy as np

    import caffe_compat as caffe  # first: its OpenMP set-up happens before torch loads
    import torch

    import _common as common

    if os.environ.get("BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
    torch.set_flush_denormal(True)
    d = common.bench_dir()
    if workload in ("lenet", "cifar"):
        spec = common.NETS["lenet" if workload == "lenet" else "cifar10_quick"]
        net_path, _ = common.write_net(spec, d)
        net = caffe.Net(net_path, caffe.TRAIN)
        rng = np.random.RandomState(0)
        net.blobs["data"].data[...] = rng.randn(*net.blobs["data"].data.shape)
        net.blobs["label"].data[...] = rng.randint(10, size=net.blobs["label"].data.shape)

        def fn() -> None:
            net.forward()
            net.backward()
    else:
        import bench_big

        path = os.path.join(d, "deploy.prototxt")
        with open(path, "w") as f:
            f.write(bench_big.deploy_text(bench_big.NETS[workload], 1))
        net = caffe.Net(path, caffe.TEST)
        net.blobs["data"].data[...] = bench_big.images(1, bench_big.NETS[workload].crop)[0]
        fn = net.forward
    for _ in range(2):
        fn()
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 3:
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return {"median_ms": statistics.median(times), "calls": len(times), "policy": caffe.openmp_policy(),
            "threads": torch.get_num_threads()}


def run(workloads: list[str], rounds: int, hogs: int, seconds: float, log: Any = print,
        policies: list[str] | None = None) -> dict[str, Any]:
    samples: dict[str, list[float]] = {}
    policy_text: dict[str, str] = {}
    names = policies or list(POLICIES)
    for r in range(rounds):
        for load in (0, hogs):
            procs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(load)]
            try:
                for w in workloads:
                    for p in (names if r % 2 == 0 else names[::-1]):
                        env = dict(os.environ, **POLICIES[p])
                        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", w,
                                              "--seconds", str(seconds)], env=env, capture_output=True,
                                             text=True, timeout=600)
                        if out.returncode != 0:
                            raise RuntimeError(out.stderr[-2000:])
                        res = json.loads(out.stdout.strip().splitlines()[-1])
                        samples.setdefault(f"{w}|{p}|{load}", []).append(res["median_ms"])
                        policy_text[p] = res["policy"]
            finally:
                for q in procs:
                    q.kill()
                    q.wait()
        log(f"[bench_threads] round {r + 1}/{rounds} done ({os.getloadavg()[0]:.2f})")
    table = {}
    for w in workloads:
        for p in names:
            alone = statistics.median(samples[f"{w}|{p}|0"])
            loaded = statistics.median(samples[f"{w}|{p}|{hogs}"])
            table[f"{w}|{p}"] = {"alone_ms": alone, "loaded_ms": loaded, "slowdown": loaded / alone}
    return {"table": table, "policies": policy_text, "hogs": hogs, "rounds": rounds}


def report(res: dict[str, Any]) -> list[str]:
    lines = [f"OpenMP wait policy: median ms alone -> with {res['hogs']} `yes` process(es) "
             f"(fresh process per run, {res['rounds']} alternating rounds)"]
    for key, v in res["table"].items():
        w, p = key.split("|")
        lines.append(f"  {w:10s} {p:9s} {v['alone_ms']:8.1f} -> {v['loaded_ms']:8.1f}  "
                     f"({v['slowdown']:.2f}x)")
    for p, text in res["policies"].items():
        lines.append(f"  {p}: {text}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hogs", type=int, default=1)
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per worker run")
    ap.add_argument("--json", default="")
    ap.add_argument("--worker", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.seconds)))
        return
    res = run(args.workloads.split(","), args.rounds, args.hogs, args.seconds,
              policies=args.policies.split(","))
    res["loadavg"] = os.getloadavg()
    print("\n".join(report(res)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
