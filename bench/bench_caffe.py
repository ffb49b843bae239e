"""Benchmark: caffe_compat against REAL Caffe (pycaffe), same nets, same machine.

A reference pycaffe (``$CAFFE_COMPAT_REFERENCE_PYTHON``, default
``/work/caffe_ref/venv/bin/python``, e.g. the pip ``kendryte-caffe`` CPU build,
see the Makefile's ``caffe-ref``) runs a small server script in a subprocess: it
builds the same Input-layer prototxt (``_common.write_net``) and the example
solver with pycaffe, and answers "run N passes of X" requests with its own
timings. Rounds alternate between caffe_compat (in this process) and Caffe (in
the child, while this process waits), so both see the same machine load.

Timed, for LeNet b64 and CIFAR10-quick b100 in TRAIN phase:

* ``net.forward(); net.backward()`` on a ``caffe.Net``;
* ``solver.step(1)`` (SGD with the example solver's settings).

The hand-written PyTorch twin (``twins.py``) is timed in the same rotation, so
the table also shows how much of the difference is PyTorch's own kernels.

Threads: torch gets ``torch.set_num_threads(N)``; the Caffe child gets
``OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = MKL_NUM_THREADS = N`` (Caffe's CPU
layers are single-threaded apart from BLAS). Reported: medians, ours/caffe
ratios and the speed-up caffe/ours (target: at least 1.5), plus the peak memory
a training run adds in each (fresh processes, VmHWM as in ``bench_net.py``).
Without a reference Caffe the benchmark is skipped with a message.

    python bench/bench_caffe.py [--nets lenet,cifar10_quick] [--threads 1] [--rounds 9]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as common  # noqa: E402  (first: caffe_compat's OpenMP set-up before torch)
import numpy as np  # noqa: E402
import torch  # noqa: E402

import twins  # noqa: E402

DEFAULT_REFERENCE = "/work/caffe_ref/venv/bin/python"

# Runs under the reference Python (3.9, numpy < 2, pycaffe): no torch, no caffe_compat.
SERVER = r'''
import json, os, sys, time
import numpy as np
import caffe

def status_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])

def main():
    mode, net_path, solver_path, data_npy, label_npy = sys.argv[1:6]
    weights = sys.argv[6:8] if mode == "time" else [None, None]
    caffe.set_mode_cpu()
    x, y = np.load(data_npy), np.load(label_npy)
    if mode == "mem":
        kind, steps, warm_net, warm_solver = sys.argv[6], int(sys.argv[7]), sys.argv[8], sys.argv[9]
        # A batch-1 run first loads every code page the run touches (see bench_net.py).
        build(kind, warm_net, warm_solver, x[:1], y[:1], None)[0]()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = status_kib("VmRSS")
        run, _ = build(kind, net_path, solver_path, x, y, None)
        for _ in range(steps):
            run()
        print(json.dumps({"base_rss": base * 1024, "peak_rss": status_kib("VmHWM") * 1024,
                          "added_rss": (status_kib("VmHWM") - base) * 1024}))
        return
    runs = {}
    losses = {}
    for kind, w in zip(("fwdbwd", "step"), weights):
        runs[kind], losses[kind] = build(kind, net_path, solver_path, x, y, w)
    hello = {"ready": True, "loss": losses["fwdbwd"], "version": getattr(caffe, "__version__", "?")}
    print(json.dumps(hello), flush=True)
    for line in sys.stdin:
        kind, iters = line.split()
        fn = runs[kind]
        t = time.perf_counter()
        for _ in range(int(iters)):
            fn()
        print(json.dumps({"ms": (time.perf_counter() - t) / int(iters) * 1e3}), flush=True)

def build(kind, net_path, solver_path, x, y, weights):
    if kind == "fwdbwd":
        net = caffe.Net(net_path, caffe.TRAIN)
    else:
        solver = caffe.get_solver(solver_path)
        net = solver.net
    if weights:
        net.copy_from(weights)  # caffe_compat's initial weights: both sides compute the same
    net.blobs["data"].data[...] = x
    net.blobs["label"].data[...] = y
    if kind == "fwdbwd":
        loss = float(net.forward()["loss"])
        def run():
            net.forward()
            net.backward()
        return run, loss
    return (lambda: solver.step(1)), None

main()
'''


def reference_python() -> str:
    return os.environ.get("CAFFE_COMPAT_REFERENCE_PYTHON", DEFAULT_REFERENCE)


def reference_available() -> tuple[bool, str]:
    """Whether a reference pycaffe can be imported, and a message saying why not."""
    py = reference_python()
    if not os.path.exists(py):
        return False, (f"no reference Caffe: {py} does not exist (set CAFFE_COMPAT_REFERENCE_PYTHON "
                       "to a Python with pycaffe, or run `make caffe-ref`)")
    try:
        # caffe._caffe: the compiled pycaffe, not an alias of caffe_compat.
        proc = subprocess.run([py, "-c", "import caffe, caffe._caffe"], capture_output=True, text=True,
                              timeout=120, env=dict(os.environ, GLOG_minloglevel="2"))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"no reference Caffe: {py} cannot run ({exc})"
    if proc.returncode != 0:
        return False, (f"no reference Caffe: `import caffe, caffe._caffe` fails under {py}: "
                       f"{proc.stderr.strip()[-300:]}")
    return True, ""


class CaffeServer:
    """The pycaffe child process, answering timing requests."""

    def __init__(self, files: dict[str, str], threads: int) -> None:
        env = dict(os.environ, GLOG_minloglevel="2", **common.thread_env(threads))
        self.proc = subprocess.Popen(
            [reference_python(), files["server"], "time", files["net"], files["solver"], files["x"],
             files["y"], files["weights_net"], files["weights_solver"]],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.hello = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"reference Caffe exited: {err[-2000:]}")
        return json.loads(line)

    def time(self, kind: str, iters: int) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{kind} {iters}\n")
        self.proc.stdin.flush()
        return float(self._read()["ms"])

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _files(key: str, d: str, batch: int | None = None) -> dict[str, str]:
    spec = common.NETS[key]
    batch = batch or spec.batch
    net_path, solver_path = common.write_net(spec, d, batch)
    rng = np.random.RandomState(0)
    x = rng.randn(batch, *spec.data_shape).astype(np.float32)
    y = rng.randint(spec.num_classes, size=batch).astype(np.float32)
    files = {"net": net_path, "solver": solver_path, "x": os.path.join(d, f"{key}_x.npy"),
             "y": os.path.join(d, f"{key}_y.npy"), "server": os.path.join(d, "caffe_server.py")}
    np.save(files["x"], x)
    np.save(files["y"], y)
    with open(files["server"], "w") as f:
        f.write(SERVER)
    return files


def time_vs_caffe(key: str, threads: int = 1, rounds: int = 9, round_s: float = 0.3) -> dict[str, Any]:
    import caffe_compat as caffe

    d = common.bench_dir()
    files = _files(key, d)
    x, y = np.load(files["x"]), np.load(files["y"])
    net = caffe.Net(files["net"], caffe.TRAIN)
    net.blobs["data"].data[...] = x
    net.blobs["label"].data[...] = y
    ours_loss = float(net.forward()["loss"])
    solver = caffe.get_solver(files["solver"])
    solver.net.blobs["data"].data[...] = x
    solver.net.blobs["label"].data[...] = y
    files["weights_net"] = os.path.join(d, f"{key}_net.caffemodel")
    files["weights_solver"] = os.path.join(d, f"{key}_solver.caffemodel")
    net.save(files["weights_net"])
    solver.net.save(files["weights_solver"])

    def fwdbwd() -> None:
        net.forward()
        net.backward()

    # The hand-written PyTorch twin runs too: it tells PyTorch's own speed from the interpreter's.
    spec = common.NETS[key]
    tx, ty = torch.from_numpy(x), torch.from_numpy(y).long()
    twin_fb = twins.TWINS[key]().load_from_net(net)
    twin_st = twins.TWINS[key]().load_from_net(solver.net)
    opt = twins.sgd_for(twin_st, spec.solver)

    def twin_step() -> None:
        opt.zero_grad()
        twin_st(tx, ty).backward()
        opt.step()

    local = {("ours", "fwdbwd"): fwdbwd, ("ours", "step"): lambda: solver.step(1),
             ("twin", "fwdbwd"): lambda: twin_fb(tx, ty).backward(), ("twin", "step"): twin_step}
    server = CaffeServer(files, threads)
    try:
        iters: dict[tuple[str, str], int] = {}
        for (who, kind), fn in local.items():
            for _ in range(2):
                fn()
            t = common.time_round(fn, 1, lambda: None)
            iters[who, kind] = max(1, round(round_s / (t / 1e3)))
        for kind in ("fwdbwd", "step"):
            server.time(kind, 1)
            t = server.time(kind, 1)
            iters["caffe", kind] = max(1, round(round_s / (t / 1e3)))
        samples: dict[tuple[str, str], list[float]] = {k: [] for k in iters}
        for r in range(rounds):
            for kind in ("fwdbwd", "step"):
                order = ("ours", "caffe", "twin") if r % 2 == 0 else ("twin", "caffe", "ours")
                for who in order:
                    n = iters[who, kind]
                    ms = server.time(kind, n) if who == "caffe" else \
                        common.time_round(local[who, kind], n, lambda: None)
                    samples[who, kind].append(ms)
    finally:
        server.close()
    caffe_loss = server.hello.get("loss")
    if caffe_loss is None or abs(caffe_loss - ours_loss) > 1e-4 * max(1.0, abs(ours_loss)):
        raise AssertionError(f"{key}: real Caffe's loss {caffe_loss} differs from caffe_compat's {ours_loss} "
                             "on the same weights and inputs")
    stats = {f"{who} {kind}": common.summarize(v) for (who, kind), v in samples.items()}
    speedup = {kind: stats[f"caffe {kind}"]["median_ms"] / stats[f"ours {kind}"]["median_ms"]
               for kind in ("fwdbwd", "step")}
    twin_speedup = {kind: stats[f"caffe {kind}"]["median_ms"] / stats[f"twin {kind}"]["median_ms"]
                    for kind in ("fwdbwd", "step")}
    return {"net": key, "title": spec.title, "threads": threads, "rounds": rounds,
            "loss": {"ours": ours_loss, "caffe": caffe_loss}, "times": stats,
            "speedup": speedup, "twin_speedup": twin_speedup}


def memory_vs_caffe(key: str, threads: int = 1, steps: int = 5) -> dict[str, Any]:
    """Peak RSS that building and training add, real Caffe (the caffe_compat side is bench_net's)."""
    d = common.bench_dir()
    files = _files(key, d)
    warm_net, warm_solver = common.write_net(common.NETS[key], common.bench_dir(), 1)
    env = dict(GLOG_minloglevel="2", **common.thread_env(threads), **common.MALLOC_ENV)
    out = {}
    for kind in ("step", "fwdbwd"):
        out[kind] = common.run_worker(files["server"], ["mem", files["net"], files["solver"], files["x"],
                                                        files["y"], kind, str(steps), warm_net, warm_solver],
                                      env=env, python=reference_python())
    return {"net": key, "caffe": out}


def run(nets: list[str] | None = None, threads: int = 1, rounds: int = 9, with_memory: bool = True,
        log: Any = print) -> dict[str, Any]:
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    ok, why = reference_available()
    out: dict[str, Any] = {"timing": [], "memory": [], "skipped": [], "reference": reference_python()}
    if not ok:
        out["skipped"].append(why)
        return out
    for key in nets or ["lenet", "cifar10_quick"]:
        log(f"[bench_caffe] {key} vs real Caffe ...")
        out["timing"].append(time_vs_caffe(key, threads, rounds))
        if with_memory:
            out["memory"].append(memory_vs_caffe(key, threads))
    return out


def report(res: dict[str, Any]) -> list[str]:
    lines = []
    for t in res["timing"]:
        lines.append(f"{t['title']} TRAIN, caffe_compat vs real Caffe ({t['threads']} thread(s); median of "
                     f"{t['rounds']} alternating rounds; loss {t['loss']['ours']:.6f} vs "
                     f"{t['loss']['caffe']:.6f})")
        for kind, what in (("fwdbwd", "net fwd+bwd"), ("step", "solver.step(1)")):
            a, b, c = (t["times"][f"{who} {kind}"] for who in ("ours", "caffe", "twin"))
            lines.append(f"  {what:15s} ours {common.fmt_ms(a['median_ms']):>8s} ms  caffe "
                         f"{common.fmt_ms(b['median_ms']):>8s} ms  "
                         f"(twin {common.fmt_ms(c['median_ms'])} ms)  "
                         f"caffe/ours {t['speedup'][kind]:.2f}x  caffe/twin {t['twin_speedup'][kind]:.2f}x")
    for m in res["memory"]:
        c = m["caffe"]
        lines.append(f"{common.NETS[m['net']].title} real Caffe memory (peak RSS added, MiB): "
                     f"solver.step(1) {c['step']['added_rss'] / 2**20:.1f}, "
                     f"net fwd+bwd {c['fwdbwd']['added_rss'] / 2**20:.1f}")
    for s in res["skipped"]:
        lines.append(f"skipped: {s}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default="")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    res = run([n for n in args.nets.split(",") if n] or None, args.threads, args.rounds, not args.no_memory)
    print("\n".join(report(res)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
