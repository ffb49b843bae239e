"""Benchmark: whole nets in TRAIN phase, caffe_compat against hand-written PyTorch twins.

For LeNet (batch 64) and CIFAR10-quick (batch 100) on the CPU, and on CUDA when
available also ResNet-50 (batch 64), the example prototxts with an Input layer
(``_common.NETS``) are timed as

* ``net.forward(); net.backward()`` (pycaffe's API: every blob diff is kept, as in
  Caffe) and ``net._forward_backward()`` (the solver's pass: gradients of the
  parameters only), both against the twin's ``loss = twin(x, y); loss.backward()``;
* ``solver.step(1)`` (SGD with the example solver's settings) against the twin's
  ``zero_grad(); loss.backward(); torch.optim.SGD(foreach=True).step()``.

The twins (``twins.py``) get the caffe_compat net's weights and are checked to give
the same loss and gradients before anything is timed. All contenders run in one
process, interleaved round by round (warm-up first; per round ``iters`` calls;
median over rounds), with the same ``torch`` thread count; denormals are flushed
for both. Ratios are ours / twin: below 1.10 meets the target.

With ``--accel``, ``solver.step(1)`` is also timed under each opt-in acceleration
(``caffe.accelerate``: channels-last, torch.compile; on CUDA also bf16 autocast
and CUDA graphs), reported as the gain over the plain step.

Memory: each contender also runs a few steps in a fresh subprocess; reported is
the peak resident set (VmHWM) the build and the steps add to the process after
its imports, with glibc's mmap threshold fixed (``_common.MALLOC_ENV``) so that
the figure follows live memory (``--device cuda``: ``torch.cuda.max_memory_allocated``).

    python bench/bench_net.py [--nets lenet,cifar10_quick] [--device cpu|cuda|all]
                              [--threads 1] [--rounds 15] [--no-memory] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as common  # noqa: E402  (first: caffe_compat's OpenMP set-up before torch)
import numpy as np  # noqa: E402
import torch  # noqa: E402

import twins  # noqa: E402

# Contender names: (ours, twin it is compared with, what it is).
PAIRS = [
    ("ours net.forward()+backward()", "twin forward+backward", "pycaffe fwd+bwd"),
    ("ours net._forward_backward()", "twin forward+backward", "training pass"),
    ("ours solver.step(1)", "twin step (SGD)", "solver.step(1)"),
]
MEM_KINDS = ["ours-step", "ours-step-lean", "twin-step", "ours-fwdbwd", "twin-fwdbwd"]


def _inputs(spec: common.NetSpec, batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    x = rng.randn(batch, *spec.data_shape).astype(np.float32)
    y = rng.randint(spec.num_classes, size=batch).astype(np.float32)
    return x, y


def _set_inputs(net: Any, x: np.ndarray, y: np.ndarray) -> None:
    net.blobs["data"].data[...] = x
    net.blobs["label"].data[...] = y


def _use_device(device: str) -> None:
    import caffe_compat as caffe

    if device.startswith("cuda"):
        caffe.set_device(torch.device(device).index or 0)
        caffe.set_mode_gpu()
    else:
        caffe.set_mode_cpu()


def accel_variants(device: str) -> list[tuple[str, dict[str, Any]]]:
    """The opt-in accelerations (``caffe.accelerate``) worth timing on ``device``."""
    variants: list[tuple[str, dict[str, Any]]] = [("channels_last", {"channels_last": True})]
    if device.startswith("cuda"):
        variants += [("bf16 autocast", {"autocast": "bf16"}),
                     ("channels_last+bf16", {"channels_last": True, "autocast": "bf16"}),
                     ("compile", {"compile": True}),
                     ("compile+cuda_graphs", {"compile": True, "cuda_graphs": True})]
    else:
        variants += [("compile", {"compile": True})]
    return variants


def _accelerated_steps(solver_path: str, x: np.ndarray, y: np.ndarray, device: str,
                       log: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """One solver per acceleration: {"ours step +name": step function}, and per variant
    its first-step seconds (compilation) or why it failed."""
    import time

    import caffe_compat as caffe

    fns: dict[str, Any] = {}
    info: dict[str, Any] = {}
    for name, kw in accel_variants(device):
        try:
            solver = caffe.get_solver(solver_path)
            _set_inputs(solver.net, x, y)
            caffe.accelerate(solver, **kw)
            sync = common._sync_fn(device)
            t = time.perf_counter()
            solver.step(1)
            sync()
            info[name] = {"first_step_s": time.perf_counter() - t}
            fns[f"ours step +{name}"] = (lambda s: lambda: s.step(1))(solver)
        except Exception as exc:  # an acceleration that cannot run here is reported, not fatal
            info[name] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            log(f"[bench_net] accelerate({kw}) failed: {info[name]['error']}")
    return fns, info


def time_net(key: str, device: str = "cpu", rounds: int = 15, round_s: float = 0.25,
             batch: int | None = None, accel: bool = False, log: Any = print) -> dict[str, Any]:
    """Interleaved timings of one net; medians in ms and ours/twin ratios."""
    import caffe_compat as caffe

    spec = common.NETS[key]
    batch = batch or spec.batch
    d = common.bench_dir()
    net_path, solver_path = common.write_net(spec, d, batch)
    _use_device(device)
    try:
        x, y = _inputs(spec, batch)
        net = caffe.Net(net_path, caffe.TRAIN)
        _set_inputs(net, x, y)
        solver = caffe.get_solver(solver_path)
        _set_inputs(solver.net, x, y)
        tx = torch.from_numpy(x).to(device)
        ty = torch.from_numpy(y).long().to(device)
        twin_fb = twins.TWINS[key]().to(device).load_from_net(net)
        twin_st = twins.TWINS[key]().to(device).load_from_net(solver.net)
        # On CUDA, torch's default TF32 convolutions (both sides) loosen the agreement.
        cuda = device.startswith("cuda")
        check = twins.check_twin(net, twin_fb, tx, ty, rtol=2e-3 if cuda else 1e-4,
                                 grad_tol=0.3 if key == "resnet50" else (5e-2 if cuda else 1e-3))
        opt = twins.sgd_for(twin_st, spec.solver)
        twin_st.train()
        twin_fb.train()

        def ours_fb() -> None:
            net.forward()
            net.backward()

        def ours_pass() -> None:
            net._forward_backward()

        def twin_fwd_bwd() -> None:
            twin_fb(tx, ty).backward()

        def twin_step() -> None:
            opt.zero_grad()
            twin_st(tx, ty).backward()
            opt.step()

        contenders = {
            PAIRS[0][0]: ours_fb,
            PAIRS[1][0]: ours_pass,
            PAIRS[0][1]: twin_fwd_bwd,
            PAIRS[2][0]: lambda: solver.step(1),
            PAIRS[2][1]: twin_step,
        }
        accel_info: dict[str, Any] = {}
        if accel:
            fns, accel_info = _accelerated_steps(solver_path, x, y, device, log)
            contenders.update(fns)
        ops = {name: common.count_ops(fn) for name, fn in contenders.items()}
        # Calibrate the calls per round on the slowest contender, so a round lasts ~round_s.
        one = common.interleaved({"probe": ours_fb}, rounds=1, iters=1, warmup=2, device=device)
        iters = max(1, round(round_s / max(one["probe"]["median_ms"] / 1e3, 1e-6)))
        stats = common.interleaved(contenders, rounds=rounds, iters=iters, warmup=3, device=device)
        # Gradients accumulate in the fwd+bwd contenders (as in Caffe without ClearParamDiffs).
        net.clear_param_diffs()
    finally:
        caffe.set_mode_cpu()
    ratios = {what: stats[ours]["median_ms"] / stats[twin]["median_ms"] for ours, twin, what in PAIRS}
    plain = stats[PAIRS[2][0]]["median_ms"]
    for name, inf in accel_info.items():
        st = stats.get(f"ours step +{name}")
        if st:
            inf["gain"] = plain / st["median_ms"]  # > 1: faster than the plain solver.step(1)
            inf["vs_twin"] = st["median_ms"] / stats[PAIRS[2][1]]["median_ms"]
    return {"net": key, "title": spec.title, "device": device, "batch": batch, "iters_per_round": iters,
            "rounds": rounds, "check": check, "times": stats, "ratios": ratios, "accel": accel_info,
            "ops": ops}


# ------------------------------------------------------------------ memory
def _mem_contender(kind: str, key: str, device: str, batch: int) -> Any:
    """Build ``kind`` for ``key`` at ``batch``; return the function that runs one pass."""
    spec = common.NETS[key]
    x, y = _inputs(spec, batch)
    if kind.startswith("ours"):
        import caffe_compat as caffe

        net_path, solver_path = common.write_net(spec, common.bench_dir(), batch)
        _use_device(device)
        if kind.startswith("ours-step"):
            solver = caffe.get_solver(solver_path)
            if kind == "ours-step-lean":
                caffe.accelerate(solver, lean_memory=True)
            _set_inputs(solver.net, x, y)
            return lambda: solver.step(1)
        net = caffe.Net(net_path, caffe.TRAIN)
        _set_inputs(net, x, y)

        def ours_fb() -> None:
            net.forward()
            net.backward()
        return ours_fb
    twin = twins.TWINS[key]().to(device)
    tx, ty = torch.from_numpy(x).to(device), torch.from_numpy(y).long().to(device)
    if kind == "twin-step":
        opt = twins.sgd_for(twin, spec.solver)

        def twin_step() -> None:
            opt.zero_grad()
            twin(tx, ty).backward()
            opt.step()
        return twin_step
    return lambda: twin(tx, ty).backward()


def mem_worker(kind: str, key: str, device: str, steps: int, threads: int) -> dict[str, Any]:
    """Runs in a fresh process: what building ``kind`` and ``steps`` passes add to the peak.

    A first run at batch 1 (then dropped) loads every library page and lazily
    initialised kernel the contender touches, so that the figure is the memory
    of the net, its gradients and solver state and the pass's temporaries, not
    of code pages read for the first time.
    """
    import gc

    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    if kind.startswith("ours"):
        import caffe_compat  # noqa: F401  (loaded before the baseline, like torch for the twin)
    warm = _mem_contender(kind, key, device, 1)
    for _ in range(2):
        warm()
    del warm
    gc.collect()
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    reset_ok = common.peak_rss_reset()
    base_rss = common.rss()
    run = _mem_contender(kind, key, device, common.NETS[key].batch)
    for _ in range(steps):
        run()
    out: dict[str, Any] = {"kind": kind, "net": key, "device": device, "steps": steps,
                           "reset_ok": reset_ok, "base_rss": base_rss, "peak_rss": common.peak_rss()}
    out["added_rss"] = out["peak_rss"] - base_rss
    if cuda:
        torch.cuda.synchronize()
        out["gpu_peak"] = torch.cuda.max_memory_allocated() - base
    return out


def memory(key: str, device: str = "cpu", threads: int = 1, steps: int = 5) -> dict[str, Any]:
    """Memory of each contender, each in its own fresh process."""
    res: dict[str, Any] = {}
    for kind in MEM_KINDS:
        res[kind] = common.run_worker(os.path.abspath(__file__),
                                      ["--mem-worker", kind, "--nets", key, "--device", device,
                                       "--threads", str(threads), "--steps", str(steps)],
                                      env=dict(common.thread_env(threads), **common.MALLOC_ENV))
    field = "gpu_peak" if device.startswith("cuda") else "added_rss"

    def ratios_of(f: str) -> dict[str, float | None]:
        def r(a: str, b: str) -> float | None:
            x, y = res[a].get(f), res[b].get(f)
            return None if x is None or not y else x / y
        return {"solver.step(1)": r("ours-step", "twin-step"),
                "solver.step(1) lean_memory": r("ours-step-lean", "twin-step"),
                "pycaffe fwd+bwd": r("ours-fwdbwd", "twin-fwdbwd")}
    return {"net": key, "device": device, "field": field, "workers": res, "ratios": ratios_of(field)}


# ------------------------------------------------------------------ driver
def devices(which: str) -> list[str]:
    if which == "all":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if which.startswith("cuda") and not torch.cuda.is_available():
        return []
    return [which]


def default_nets(device: str) -> list[str]:
    return ["lenet", "cifar10_quick"] + (["resnet50"] if device.startswith("cuda") else [])


def run(nets: list[str] | None = None, device: str = "all", threads: int = 1, rounds: int = 15,
        with_memory: bool = True, accel: bool = False, log: Any = print) -> dict[str, Any]:
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    out: dict[str, Any] = {"timing": [], "memory": [], "skipped": []}
    if device in ("all", "cuda") and not torch.cuda.is_available():
        out["skipped"].append("CUDA variants (LeNet, CIFAR10-quick, ResNet-50 b64): "
                              "torch.cuda.is_available() is False on this machine")
    for dev in devices(device):
        for key in nets or default_nets(dev):
            log(f"[bench_net] timing {key} on {dev} ...")
            out["timing"].append(time_net(key, dev, rounds, accel=accel, log=log))
            if with_memory:
                log(f"[bench_net] memory {key} on {dev} ...")
                out["memory"].append(memory(key, dev, threads))
    return out


def report(res: dict[str, Any]) -> list[str]:
    lines = []
    for t in res["timing"]:
        lines.append(f"{t['title']} TRAIN on {t['device']} (median of {t['rounds']} interleaved rounds of "
                     f"{t['iters_per_round']}; twin check: loss diff {t['check']['loss_diff']:.1e}, "
                     f"grad rel err {t['check']['grad_rel_err']:.1e})")
        for ours, twin, what in PAIRS:
            a, b = t["times"][ours], t["times"][twin]
            ops = t.get("ops", {})
            lines.append(f"  {what:16s} ours {common.fmt_ms(a['median_ms']):>8s} ms  twin "
                         f"{common.fmt_ms(b['median_ms']):>8s} ms  ratio {t['ratios'][what]:.3f}  "
                         f"(spread {a['spread']:.0%}/{b['spread']:.0%}; aten ops "
                         f"{ops.get(ours, '?')}/{ops.get(twin, '?')})")
        for name, inf in t.get("accel", {}).items():
            if "error" in inf:
                lines.append(f"  accelerate {name:20s} failed: {inf['error']}")
            elif "gain" in inf:
                ms = t["times"][f"ours step +{name}"]["median_ms"]
                lines.append(f"  step +{name:22s} {common.fmt_ms(ms):>8s} ms  {inf['gain']:.2f}x the plain "
                             f"step, {inf['vs_twin']:.2f}x the twin's time "
                             f"(first step {inf['first_step_s']:.1f} s)")
    for m in res["memory"]:
        cuda = m["field"] == "gpu_peak"
        unit = "GPU peak allocated" if cuda else "peak RSS added"
        w = m["workers"]
        lines.append(f"{common.NETS[m['net']].title} memory on {m['device']} ({unit}, MiB):")
        for what, (a, b) in (("solver.step(1)", ("ours-step", "twin-step")),
                             ("pycaffe fwd+bwd", ("ours-fwdbwd", "twin-fwdbwd"))):
            line = (f"  {what:16s} ours {w[a][m['field']] / 2**20:8.1f}  twin "
                    f"{w[b][m['field']] / 2**20:8.1f}  ratio {m['ratios'][what]:.2f}")
            lines.append(line)
    for s in res["skipped"]:
        lines.append(f"skipped: {s}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default="", help="comma-separated keys of _common.NETS (default: per device)")
    ap.add_argument("--device", default="all", help="cpu, cuda or all (cuda skipped without a GPU)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--accel", action="store_true",
                    help="also time solver.step(1) under caffe.accelerate(...)")
    ap.add_argument("--json", default="", help="also write the results here")
    ap.add_argument("--mem-worker", default="", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    nets = [n for n in args.nets.split(",") if n] or None
    if args.mem_worker:
        print(json.dumps(mem_worker(args.mem_worker, nets[0], args.device, args.steps, args.threads)))
        return
    res = run(nets, args.device, args.threads, args.rounds, not args.no_memory, args.accel)
    res["machine"] = common.machine(args.threads)
    print("\n".join(report(res)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
