"""Every benchmark in bench/, one summary table against the speed targets (``make bench``).

Runs, for each CPU thread count asked for (``--threads 1,4``; default 1):

* ``bench_net``      — LeNet b64 / CIFAR10-quick b100 TRAIN vs hand-written PyTorch twins
                       (time and peak memory), and on CUDA also ResNet-50 b64;
* ``bench_caffe``    — the same nets in real Caffe (skipped without a reference pycaffe);

once (dispatch cost does not depend on threads):

* ``bench_overhead`` — per-layer Python overhead of the interpreter, CPU and CUDA;

and the other benchmarks of this folder as they are (their printed output is
kept verbatim): ``bench_solver.py``, ``bench_python_layer.py``, ``bench_data.py``,
``bench_kernels.py`` (the CPU kernel choices, shape by shape).

Results go to ``bench/results/<host>-<date>.json`` and ``.md`` (the machine: CPU
model, cores, torch version, threads, load average before and after; GPU and
CUDA versions when present). Timings on a loaded machine are noisy: every
comparison is interleaved in one process, and the spread is reported.

    python bench/run_all.py [--threads 1[,N]] [--quick] [--only net,caffe,overhead,others]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _common as common  # noqa: E402
import bench_caffe  # noqa: E402
import bench_net  # noqa: E402
import bench_overhead  # noqa: E402

OTHERS = [  # (script, extra arguments), written by other people; run as they are
    ("bench_solver.py", []),
    ("bench_python_layer.py", []),
    ("bench_data.py", []),
    ("bench_kernels.py", []),
]

TIME_TARGET = 1.10  # ours / twin
MEM_TARGET = 1.20  # ours / twin
CAFFE_TARGET = 1.5  # caffe / ours


def _row(target: str, where: str, value: float | None, goal: str, ok: bool | None,
         note: str = "") -> dict[str, Any]:
    return {"target": target, "where": where, "value": value, "goal": goal,
            "status": "-" if ok is None else ("PASS" if ok else "MISS"), "note": note}


def summary(res: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for threads, r in res["by_threads"].items():
        net = r.get("net") or {}
        for t in net.get("timing", []):
            where = f"{t['device']}, {threads} thr" if t["device"] == "cpu" else t["device"]
            for ours, twin, what in bench_net.PAIRS:
                v = t["ratios"][what]
                spread = max(t["times"][ours]["spread"], t["times"][twin]["spread"])
                rows.append(_row(f"{t['title']} {what}: ours/twin time", where, v, f"<= {TIME_TARGET}",
                                 v <= TIME_TARGET, f"spread {spread:.0%}"))
            for name, inf in t.get("accel", {}).items():
                if "gain" in inf:
                    rows.append(_row(f"{t['title']} solver.step(1) +{name}: gain over plain step", where,
                                     inf["gain"], "opt-in", None,
                                     f"{inf['vs_twin']:.2f}x twin time; "
                                     f"first step {inf['first_step_s']:.1f} s"))
                else:
                    rows.append(_row(f"{t['title']} solver.step(1) +{name}", where, None, "opt-in", None,
                                     inf.get("error", "")))
        for m in net.get("memory", []):
            where = f"{m['device']}, {threads} thr" if m["device"] == "cpu" else m["device"]
            unit = "GPU peak" if m["field"] == "gpu_peak" else "peak RSS"
            w = m["workers"]
            for what, (a, b) in (("solver.step(1)", ("ours-step", "twin-step")),
                                 ("solver.step(1) lean_memory", ("ours-step-lean", "twin-step")),
                                 ("pycaffe fwd+bwd", ("ours-fwdbwd", "twin-fwdbwd"))):
                v = m["ratios"][what]
                step = what.startswith("solver.step(1)")
                goal = f"<= {MEM_TARGET}" if step else "(Caffe keeps every diff)"
                rows.append(_row(f"{common.NETS[m['net']].title} {what}: ours/twin {unit}", where, v, goal,
                                 v <= MEM_TARGET if step else None,
                                 f"{w[a][m['field']] / 2**20:.1f} vs {w[b][m['field']] / 2**20:.1f} MiB"))
        caffe = r.get("caffe") or {}
        for t in caffe.get("timing", []):
            for kind, what in (("fwdbwd", "net fwd+bwd"), ("step", "solver.step(1)")):
                v = t["speedup"][kind]
                rows.append(_row(f"{t['title']} {what}: caffe/ours time", f"cpu, {threads} thr", v,
                                 f">= {CAFFE_TARGET}", v >= CAFFE_TARGET,
                                 f"caffe/twin {t['twin_speedup'][kind]:.2f}"))
        for s in caffe.get("skipped", []):
            rows.append(_row("real Caffe comparison", f"cpu, {threads} thr", None, "-", None, s))
        for s in net.get("skipped", []):
            rows.append(_row("GPU variants", "cuda", None, "-", None, s))
    ov = res.get("overhead") or {}
    for r in ov.get("rows", []):
        rows.append(_row(f"per-layer overhead {r['kind']} {r['pass']}", r["device"],
                         r["overhead_us_per_layer"],
                         "small (us/layer)", None,
                         f"ours {r['ours_us_per_layer']:.1f} vs torch {r['torch_us_per_layer']:.1f} us"))
    for s in ov.get("skipped", []):
        rows.append(_row("per-layer overhead", "cuda", None, "-", None, s))
    return rows


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    out = [f"# caffe_compat benchmarks — {m['host']}, {res['date']}", ""]
    out.append(f"* CPU: {m['cpu']} ({m['cores']} logical cores); torch {m['torch']}, Python {m['python']}")
    if m.get("gpu"):
        out.append(f"* GPU: {m['gpu']}, CUDA {m.get('cuda')}, cuDNN {m.get('cudnn')}, TF32 {m.get('tf32')}")
    out.append(f"* torch threads: {', '.join(map(str, res['threads']))}; Caffe child: "
               "OMP/OPENBLAS/MKL_NUM_THREADS set to the same")
    out.append(f"* load average before {fmt_load(res['load_before'])}, after {fmt_load(res['load_after'])}; "
               f"wall time {res['wall_s']:.0f} s")
    out += ["", "| target | where | value | goal | status | note |", "|---|---|---|---|---|---|"]
    for r in res["summary"]:
        v = "-" if r["value"] is None else f"{r['value']:.2f}"
        out.append(f"| {r['target']} | {r['where']} | {v} | {r['goal']} | {r['status']} | {r['note']} |")
    for threads, r in res["by_threads"].items():
        out += ["", f"## {threads} thread(s)", "", "```"]
        if r.get("net"):
            out += bench_net.report(r["net"])
        if r.get("caffe"):
            out += bench_caffe.report(r["caffe"])
        out.append("```")
    if res.get("overhead"):
        out += ["", "## Per-layer overhead (microseconds per layer per pass)", "", "```"]
        out += bench_overhead.report(res["overhead"])
        out.append("```")
    for name, text in (res.get("others") or {}).items():
        out += ["", f"## {name}", "", "```", text.rstrip(), "```"]
    return "\n".join(out) + "\n"


def fmt_load(load: Any) -> str:
    return "?" if not load else " ".join(f"{x:.2f}" for x in load)


def run_other(script: str, args: list[str], threads: int, timeout: float) -> str:
    cmd = [sys.executable, os.path.join(HERE, script), *args]
    if "--threads" not in args:
        cmd += ["--threads", str(threads)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, **common.thread_env(threads)))
    except subprocess.TimeoutExpired:
        return f"(timed out after {timeout:.0f} s)"
    text = proc.stdout
    if proc.returncode != 0:
        text += f"\n(exit status {proc.returncode})\n{proc.stderr[-2000:]}"
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1", help="comma-separated torch/BLAS thread counts (default 1)")
    ap.add_argument("--quick", action="store_true", help="few rounds (a smoke run, not a measurement)")
    ap.add_argument("--only", default="net,caffe,overhead,others")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--no-accel", action="store_true", help="skip the caffe.accelerate(...) variants")
    args = ap.parse_args()
    only = set(args.only.split(","))
    threads_list = [int(t) for t in args.threads.split(",") if t]
    rounds = 3 if args.quick else 15
    res: dict[str, Any] = {"date": _dt.datetime.now().isoformat(timespec="seconds"), "threads": threads_list,
                           "load_before": os.getloadavg(), "by_threads": {}}
    t0 = time.time()
    for th in threads_list:
        r: dict[str, Any] = {}
        if "net" in only:
            r["net"] = bench_net.run(None, "all", th, rounds, with_memory=True, accel=not args.no_accel)
        if "caffe" in only:
            r["caffe"] = bench_caffe.run(None, th, max(3, rounds // 2 + 1), with_memory=not args.quick)
        res["by_threads"][str(th)] = r
    if "overhead" in only:
        res["overhead"] = bench_overhead.run("all", 50, 5 if args.quick else 11, 1)
    if "others" in only:
        res["others"] = {}
        for script, extra in OTHERS:
            if os.path.exists(os.path.join(HERE, script)):
                print(f"[run_all] {script} ...")
                res["others"][script] = run_other(script, extra, threads_list[0], 1800)
    res["wall_s"] = time.time() - t0
    res["load_after"] = os.getloadavg()
    res["machine"] = common.machine(threads_list[0])
    res["summary"] = summary(res)
    os.makedirs(args.out, exist_ok=True)
    stem = base = os.path.join(args.out, f"{platform.node() or 'host'}-{_dt.date.today().isoformat()}")
    n = 1
    while os.path.exists(stem + ".json"):  # an earlier run of the day is kept, not overwritten
        n += 1
        stem = f"{base}-{n}"
    with open(stem + ".json", "w") as f:
        json.dump(res, f, indent=1, default=str)
    text = markdown(res)
    with open(stem + ".md", "w") as f:
        f.write(text)
    print(text)
    print(f"[run_all] wrote {stem}.json and {stem}.md")


if __name__ == "__main__":
    main()
