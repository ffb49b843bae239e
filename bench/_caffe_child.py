"""A real pycaffe in a child process, driven by JSON lines on stdin (``bench_big.py``).

Runs under the reference Python (3.9, numpy < 2, pycaffe): no torch, no
caffe_compat. Each request is one JSON object per line; each answer one JSON
line on stdout:

* ``{"cmd": "net", "name": N, "prototxt": P, "phase": "TRAIN"|"TEST", "weights": W,
  "inputs": {blob: .npy}}`` — build ``caffe.Net``, load weights, fill input blobs;
* ``{"cmd": "solver", "name": N, "solver": S, "weights": W}`` — ``caffe.get_solver``;
* ``{"cmd": "forward", "name": N, "save": .npz, "blobs": [...]}`` — one forward; the
  named blobs are saved, the scalar outputs answered;
* ``{"cmd": "time", "name": N, "what": "forward"|"fwdbwd"|"step", "iters": K}`` —
  milliseconds per call over K calls;
* ``{"cmd": "mem"}`` — VmRSS / VmHWM; ``{"cmd": "reset_peak"}`` resets VmHWM;
* ``{"cmd": "drop", "name": N}`` — forget a net or solver.

The first line it writes is ``{"ready": true, "version": ...}``.
"""

import json
import sys
import time

import numpy as np


def status_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def main():
    import caffe

    caffe.set_mode_cpu()
    objs = {}
    print(json.dumps({"ready": True, "version": getattr(caffe, "__version__", "?")}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        cmd = req["cmd"]
        try:
            out = handle(caffe, objs, cmd, req)
        except Exception as exc:  # answered, so the parent reports it
            out = {"error": "%s: %s" % (type(exc).__name__, exc)}
        print(json.dumps(out), flush=True)


def handle(caffe, objs, cmd, req):
    if cmd == "net":
        net = caffe.Net(req["prototxt"], caffe.TRAIN if req["phase"] == "TRAIN" else caffe.TEST)
        if req.get("weights"):
            net.copy_from(req["weights"])
        for blob, path in (req.get("inputs") or {}).items():
            net.blobs[blob].data[...] = np.load(path)
        objs[req["name"]] = ("net", net)
        return {"ok": True}
    if cmd == "solver":
        solver = caffe.get_solver(req["solver"])
        if req.get("weights"):
            solver.net.copy_from(req["weights"])
        objs[req["name"]] = ("solver", solver)
        return {"ok": True}
    if cmd == "forward":
        kind, net = objs[req["name"]]
        out = net.forward()
        if req.get("save"):
            np.savez(req["save"], **{b: net.blobs[b].data for b in req.get("blobs", [])})
        return {"outputs": {k: float(v.reshape(-1)[0]) for k, v in out.items() if v.size == 1}}
    if cmd == "time":
        kind, obj = objs[req["name"]]
        what, iters = req["what"], int(req["iters"])
        if what == "step":
            fn = lambda: obj.step(1)  # noqa: E731
        elif what == "fwdbwd":
            def fn():
                obj.forward()
                obj.backward()
        else:
            fn = obj.forward
        t = time.perf_counter()
        for _ in range(iters):
            fn()
        return {"ms": (time.perf_counter() - t) / iters * 1e3}
    if cmd == "mem":
        return {"rss": status_kib("VmRSS") * 1024, "peak": status_kib("VmHWM") * 1024}
    if cmd == "reset_peak":
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return {"ok": True}
    if cmd == "drop":
        objs.pop(req["name"], None)
        return {"ok": True}
    return {"error": "unknown command %r" % cmd}


if __name__ == "__main__":
    main()
