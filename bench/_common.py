"""Shared pieces of the benchmarks: the nets, interleaved timing, memory, machine facts.

* :data:`NETS` / :func:`write_net` — the example nets of ``examples/nets`` with
  their Data layers replaced by one Input layer of the real input size (so
  caffe_compat, the PyTorch twins and real Caffe all read the same prototxt),
  and the solver settings of Caffe's own examples.
* :func:`interleaved` — medians of alternating timing rounds: every contender
  runs one round in turn, so load from other processes hits all of them alike.
* :func:`run_worker` / :func:`peak_rss_reset` / :func:`peak_rss` — memory is
  measured in a fresh subprocess per contender (``VmHWM`` of
  ``/proc/self/status``, reset through ``/proc/self/clear_refs`` after the net
  is built, so the figure is what training steps add).
* :func:`machine` — what the numbers were measured on.
"""

from __future__ import annotations

import atexit
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Before torch, as a user's `import caffe_compat as caffe`: caffe_compat sets torch's OpenMP
# wait policy while it loads torch (caffe_compat/threads.py); ours and the twins share it.
import caffe_compat  # noqa: E402,F401

EXAMPLES = os.path.join(ROOT, "examples", "nets")


@dataclass(frozen=True)
class NetSpec:
    """One benchmark net: its example prototxt, input shape and Caffe's solver for it."""

    key: str
    title: str
    prototxt: str
    data_shape: tuple[int, ...]  # one image (C, H, W); the batch comes from the TRAIN Data layer
    batch: int
    solver: dict[str, Any] = field(default_factory=dict)
    num_classes: int = 10


NETS: dict[str, NetSpec] = {
    # Solver settings of Caffe's examples/mnist/lenet_solver.prototxt and
    # examples/cifar10/cifar10_quick_solver.prototxt.
    "lenet": NetSpec("lenet", "LeNet b64", "lenet_train_test.prototxt", (1, 28, 28), 64,
                     dict(base_lr=0.01, momentum=0.9, weight_decay=0.0005, lr_policy="inv",
                          gamma=0.0001, power=0.75)),
    "cifar10_quick": NetSpec("cifar10_quick", "CIFAR10-quick b100", "cifar10_quick_train_test.prototxt",
                             (3, 32, 32), 100,
                             dict(base_lr=0.001, momentum=0.9, weight_decay=0.004, lr_policy="fixed")),
    # ResNet-50 is a GPU benchmark (batch 64); on a CPU it is only run on request.
    "resnet50": NetSpec("resnet50", "ResNet-50 b64", "resnet50_train_val.prototxt", (3, 224, 224), 64,
                        dict(base_lr=0.1, momentum=0.9, weight_decay=0.0001, lr_policy="step",
                             gamma=0.1, stepsize=100000), num_classes=1000),
}


def input_net_text(spec: NetSpec, batch: int | None = None) -> str:
    """The example prototxt with its Data layers replaced by one Input layer (TRAIN shape)."""
    from google.protobuf import text_format

    from caffe_compat.proto import caffe_pb2
    from caffe_compat.proto.files import read_text

    src = read_text(os.path.join(EXAMPLES, spec.prototxt), caffe_pb2.NetParameter())
    out = caffe_pb2.NetParameter()
    out.CopyFrom(src)
    del out.layer[:]
    n = batch or spec.batch
    inp = out.layer.add(name="input", type="Input")
    inp.top.extend(["data", "label"])
    inp.input_param.shape.add().dim.extend([n, *spec.data_shape])
    inp.input_param.shape.add().dim.extend([n])
    for layer in src.layer:
        if layer.type != "Data":
            out.layer.add().CopyFrom(layer)
    return text_format.MessageToString(out)


def write_net(spec: NetSpec, directory: str, batch: int | None = None) -> tuple[str, str]:
    """Write ``<key>.prototxt`` (Input version) and ``<key>_solver.prototxt``; return both paths."""
    net_path = os.path.join(directory, f"{spec.key}.prototxt")
    with open(net_path, "w") as f:
        f.write(input_net_text(spec, batch))
    solver_path = os.path.join(directory, f"{spec.key}_solver.prototxt")
    lines = [f'net: "{net_path}"']
    for k, v in spec.solver.items():
        lines.append(f'{k}: "{v}"' if isinstance(v, str) else f"{k}: {v}")
    lines += ["max_iter: 100000000", "display: 0", "snapshot: 0", "snapshot_after_train: false",
              f'snapshot_prefix: "{os.path.join(directory, spec.key)}"', "solver_mode: CPU"]
    with open(solver_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return net_path, solver_path


def bench_dir() -> str:
    """A temporary directory, removed when the process exits."""
    d = tempfile.mkdtemp(prefix="caffe_compat_bench_")
    atexit.register(shutil.rmtree, d, True)
    return d


# ------------------------------------------------------------------ timing
def _sync_fn(device: str) -> Callable[[], None]:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return lambda: None


def time_round(fn: Callable[[], Any], iters: int, sync: Callable[[], None]) -> float:
    """Milliseconds per call over ``iters`` back-to-back calls."""
    sync()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return (time.perf_counter() - start) / iters * 1e3


def interleaved(contenders: dict[str, Callable[[], Any]], rounds: int, iters: int, warmup: int = 3,
                device: str = "cpu") -> dict[str, dict[str, float]]:
    """Run every contender ``rounds`` times in alternation; per contender the median, min and
    the spread (interquartile range / median) of the per-round milliseconds per call."""
    sync = _sync_fn(device)
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in contenders}
    names = list(contenders)
    for r in range(rounds):
        # Alternate the order too, so no contender always runs right after the same one.
        for name in (names if r % 2 == 0 else names[::-1]):
            samples[name].append(time_round(contenders[name], iters, sync))
    return {k: summarize(v) for k, v in samples.items()}


def summarize(v: list[float]) -> dict[str, float]:
    v = sorted(v)
    med = statistics.median(v)
    q1, q3 = v[len(v) // 4], v[(3 * len(v)) // 4] if len(v) > 1 else v[0]
    return {"median_ms": med, "min_ms": v[0], "spread": (q3 - q1) / med if med else 0.0,
            "rounds": len(v)}


def count_ops(fn: Callable[[], Any]) -> int:
    """How many aten operators one call of ``fn`` dispatches (forward, backward and update):
    a machine-independent measure of the work that is pure dispatch, and, on a GPU, of the
    kernel launches that dominate small nets."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class _Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            _Count.n += 1
            return func(*args, **(kwargs or {}))

    with _Count():
        fn()
    return _Count.n


# ------------------------------------------------------------------ memory
def peak_rss_reset() -> bool:
    """Reset this process's peak RSS (VmHWM); False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def peak_rss() -> int:
    """Peak resident set size (bytes) since start or the last reset."""
    return _status_kib("VmHWM") * 1024


def rss() -> int:
    return _status_kib("VmRSS") * 1024


#: glibc's default mmap threshold, fixed: blocks of 128 KiB and more are mapped and
#: returned to the system when freed, so peak RSS follows the live memory instead
#: of varying (by 25% and more) with the dynamic threshold's history.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def run_worker(script: str, args: list[str], env: dict[str, str] | None = None,
               python: str | None = None, timeout: float = 900) -> dict[str, Any]:
    """Run ``python script args`` in a fresh process; its last stdout line is JSON."""
    cmd = [python or sys.executable, script, *args]
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    return json.loads(lines[-1])


def thread_env(threads: int) -> dict[str, str]:
    """Environment that fixes the BLAS/OpenMP thread count of a child process."""
    n = str(threads)
    return {"OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n}


# ------------------------------------------------------------------ machine
def machine(threads: int | None = None) -> dict[str, Any]:
    import torch

    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, Any] = {
        "host": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "torch_threads": threads if threads is not None else torch.get_num_threads(),
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "env_threads": {k: os.environ.get(k)
                        for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
        info["tf32"] = {"cudnn": torch.backends.cudnn.allow_tf32,
                        "matmul": torch.backends.cuda.matmul.allow_tf32}
    return info


def fmt_ms(x: float | None) -> str:
    return "-" if x is None else (f"{x:.3f}" if x < 10 else f"{x:.1f}")


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"
