"""The model-zoo nets people run: training against twins and real Caffe, inference against
OpenCV dnn and ONNX Runtime, under contention, and memory (``make bench-big``, issue 12).

Nets (``--nets``; default alexnet,googlenet,vgg16,resnet50; also caffenet):
AlexNet / CaffeNet / GoogLeNet (``examples/model_zoo``), VGG-16
(``examples/model_zoo/vgg_ilsvrc_16_layers``) and ResNet-50
(``examples/nets/resnet50_train_val.prototxt``), all with the same random
weights everywhere (caffe_compat's fillers, BatchNorm statistics from two TRAIN
forwards, saved as one .caffemodel that every contender loads).

Sections (``--only``; default all; the last two once, not per net):

* ``train`` — TRAIN phase, batch ``--batch`` (default 8): ``net.forward();
  net.backward()`` on the net with its Data layer replaced by an Input layer, and
  ``solver.step(1)`` on the train_val net reading a real LMDB (random but valid
  256x256 images generated into a temporary directory; crop, mirror, mean pixel as
  in the prototxt), for caffe_compat, the hand-written PyTorch twin
  (``twins_big.py``; loss and gradients checked equal first, Dropout off for the
  check) and real Caffe (``_caffe_child.py`` in the reference Python; its loss
  checked equal to ours on the same weights).
* ``infer`` — TEST phase forward of the deploy net at batch 1 and 8 (``--infer-batches``):
  caffe_compat ``Net.forward()``, OpenCV dnn (``cv2.dnn.readNetFromCaffe``, the
  same prototxt and .caffemodel), ONNX Runtime (fed by ``caffe-compat export
  --onnx``) and real Caffe; every output checked against Caffe's (max |diff| /
  max |Caffe's value| <= 1e-5 per output blob).
* ``contention`` — the batch-1 inference again with one other CPU-bound process
  (``yes > /dev/null``) running in every other half-round: the slowdown of each.
* ``memory`` — peak RSS that building the deploy net and three TEST forwards add
  to a fresh process after its imports: caffe_compat, OpenCV dnn, ONNX Runtime,
  real Caffe (glibc's mmap threshold fixed as in ``bench_net.py``).
* ``kernels`` — ``bench_kernels.py --big``: the CPU kernel choices against torch's
  kernels on the pooling (and grouped-convolution) shapes of these nets;
* ``threads`` — ``bench_threads.py``: OpenMP wait policies alone and under contention.

Every contender of a section runs in alternating rounds (order reversed every
other round) after a warm-up; figures are medians over rounds with the spread
(IQR / median). Threads: ``--threads N`` (default: the machine's cores) for
torch (``torch.set_num_threads``), OpenCV (``cv2.setNumThreads``), ONNX
Runtime (``intra_op_num_threads``) and Caffe's OpenBLAS (``OPENBLAS_NUM_THREADS``);
``--threads 0`` leaves each library its own default. Results go to
``bench/results/big-<host>-<date>.json`` and ``.md`` (machine, versions, ``uptime``
before and after).

    python bench/bench_big.py [--nets alexnet,googlenet] [--only train,infer,contention,memory]
                              [--rounds 5] [--batch 8] [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import _common as common  # noqa: E402  (puts the repository on sys.path)

ZOO = os.path.join(common.ROOT, "examples", "model_zoo")
MEAN = (104.0, 117.0, 123.0)
IMAGE = 256  # stored image size; every net crops its input from it
RECORDS = 64
OUT_TOL = 1e-5  # max |diff| / max |reference| per output blob


@dataclass(frozen=True)
class BigNet:
    key: str
    title: str
    train_val: str
    deploy: str | None  # None: made from train_val (Data -> Input, losses -> Softmax)
    crop: int
    logits: str
    solver: dict[str, Any] = field(default_factory=dict)


_SGD = dict(momentum=0.9, lr_policy="fixed")
NETS: dict[str, BigNet] = {
    "alexnet": BigNet("alexnet", "AlexNet", f"{ZOO}/bvlc_alexnet/train_val.prototxt",
                      f"{ZOO}/bvlc_alexnet/deploy.prototxt", 227, "fc8",
                      dict(base_lr=0.01, weight_decay=0.0005, **_SGD)),
    "caffenet": BigNet("caffenet", "CaffeNet", f"{ZOO}/bvlc_reference_caffenet/train_val.prototxt",
                       f"{ZOO}/bvlc_reference_caffenet/deploy.prototxt", 227, "fc8",
                       dict(base_lr=0.01, weight_decay=0.0005, **_SGD)),
    "googlenet": BigNet("googlenet", "GoogLeNet", f"{ZOO}/bvlc_googlenet/train_val.prototxt",
                        f"{ZOO}/bvlc_googlenet/deploy.prototxt", 224, "loss3/classifier",
                        dict(base_lr=0.01, weight_decay=0.0002, **_SGD)),
    "vgg16": BigNet("vgg16", "VGG-16", f"{ZOO}/vgg_ilsvrc_16_layers/train_val.prototxt",
                    f"{ZOO}/vgg_ilsvrc_16_layers/deploy.prototxt", 224, "fc8",
                    dict(base_lr=0.01, weight_decay=0.0005, **_SGD)),
    "resnet50": BigNet("resnet50", "ResNet-50", os.path.join(common.EXAMPLES, "resnet50_train_val.prototxt"),
                       None, 224, "fc1000", dict(base_lr=0.1, weight_decay=0.0001, **_SGD)),
}
DEFAULT_NETS = ["alexnet", "googlenet", "vgg16", "resnet50"]

# Targets of issue 12.
TRAIN_VS_CAFFE = 1.5  # caffe / ours
TRAIN_VS_TWIN = 1.05  # ours / twin
INFER_VS_BEST = 1.2  # ours / min(OpenCV, ORT)
MEM_VS_OPENCV = 1.2  # ours / OpenCV


# ------------------------------------------------------------------ prototxts
def _read(path: str) -> Any:
    from caffe_compat.proto import caffe_pb2
    from caffe_compat.proto.files import read_text

    return read_text(path, caffe_pb2.NetParameter())


def _text(param: Any) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(param)


def _is_data(layer: Any) -> bool:
    return layer.type in ("Data", "ImageData")


def _in_phase(layer: Any, phase: int) -> bool:
    return not layer.include or any(r.phase == phase for r in layer.include if r.HasField("phase"))


def train_net_text(spec: BigNet, source: str, batch: int) -> str:
    """train_val with its TRAIN Data layer reading ``source`` (mean pixel instead of a mean file)."""
    from caffe_compat.proto import caffe_pb2

    src = _read(spec.train_val)
    out = caffe_pb2.NetParameter()
    out.CopyFrom(src)
    del out.layer[:]
    for layer in src.layer:
        if _is_data(layer):
            if not _in_phase(layer, caffe_pb2.TRAIN):
                continue
            new = out.layer.add()
            new.CopyFrom(layer)
            new.type = "Data"
            new.ClearField("image_data_param")
            new.data_param.source = source
            new.data_param.batch_size = batch
            new.data_param.backend = caffe_pb2.DataParameter.LMDB
            tp = new.transform_param
            tp.ClearField("mean_file")
            del tp.mean_value[:]
            tp.mean_value.extend(MEAN)
            tp.crop_size = spec.crop
            tp.mirror = True
        else:
            out.layer.add().CopyFrom(layer)
    return _text(out)


def input_net_text(spec: BigNet, batch: int, dropout: bool = True) -> str:
    """train_val with the Data layers replaced by one Input layer (data, label); optionally
    without Dropout (for the twin check: two random masks never agree)."""
    from caffe_compat.proto import caffe_pb2

    src = _read(spec.train_val)
    out = caffe_pb2.NetParameter()
    out.CopyFrom(src)
    del out.layer[:]
    inp = out.layer.add(name="input", type="Input")
    inp.top.extend(["data", "label"])
    inp.input_param.shape.add().dim.extend([batch, 3, spec.crop, spec.crop])
    inp.input_param.shape.add().dim.extend([batch])
    for layer in src.layer:
        if _is_data(layer) or (not dropout and layer.type == "Dropout"):
            continue
        out.layer.add().CopyFrom(layer)
    return _text(out)


def deploy_text(spec: BigNet, batch: int) -> str:
    """The deploy net at ``batch`` (ResNet-50's made from its train_val)."""
    from caffe_compat.proto import caffe_pb2

    if spec.deploy:
        param = _read(spec.deploy)
        for layer in param.layer:
            if layer.type == "Input":
                layer.input_param.shape[0].dim[0] = batch
        return _text(param)
    src = _read(spec.train_val)
    out = caffe_pb2.NetParameter()
    out.CopyFrom(src)
    del out.layer[:]
    inp = out.layer.add(name="data", type="Input")
    inp.top.append("data")
    inp.input_param.shape.add().dim.extend([batch, 3, spec.crop, spec.crop])
    for layer in src.layer:
        if _is_data(layer) or "label" in layer.bottom or not _in_phase(layer, caffe_pb2.TEST):
            continue
        new = out.layer.add()
        new.CopyFrom(layer)
        new.ClearField("include")
    out.layer.add(name="prob", type="Softmax", bottom=[spec.logits], top=["prob"])
    return _text(out)


def _write(path: str, text: str) -> str:
    with open(path, "w") as f:
        f.write(text)
    return path


def solver_text(spec: BigNet, net_path: str, d: str) -> str:
    lines = [f'net: "{net_path}"']
    for k, v in spec.solver.items():
        lines.append(f'{k}: "{v}"' if isinstance(v, str) else f"{k}: {v}")
    lines += ["max_iter: 100000000", "display: 0", "snapshot: 0", "snapshot_after_train: false",
              f'snapshot_prefix: "{os.path.join(d, spec.key)}"', "solver_mode: CPU"]
    return "\n".join(lines) + "\n"


def make_lmdb(path: str, n: int = RECORDS, size: int = IMAGE, seed: int = 0) -> str:
    """``n`` random 3 x size x size uint8 Datum records (smooth noise, labels 0..999)."""
    import lmdb

    from caffe_compat.proto import caffe_pb2

    rng = np.random.RandomState(seed)
    env = lmdb.open(path, map_size=1 << 30)
    with env.begin(write=True) as txn:
        for i in range(n):
            img = rng.randint(0, 256, size=(3, size // 8, size // 8)).astype(np.uint8)
            img = np.repeat(np.repeat(img, 8, axis=1), 8, axis=2)
            d = caffe_pb2.Datum(channels=3, height=size, width=size, data=img.tobytes(), label=i % 1000)
            txn.put(f"{i:08d}".encode(), d.SerializeToString())
    env.close()
    return path


@dataclass
class Files:
    spec: BigNet
    dir: str
    lmdb: str
    weights: str = ""
    paths: dict[str, str] = field(default_factory=dict)

    def path(self, name: str, text_fn: Callable[[], str]) -> str:
        if name not in self.paths:
            self.paths[name] = _write(os.path.join(self.dir, name), text_fn())
        return self.paths[name]

    def input_net(self, batch: int, dropout: bool = True) -> str:
        return self.path(f"{self.spec.key}_input_b{batch}{'' if dropout else '_nodrop'}.prototxt",
                         lambda: input_net_text(self.spec, batch, dropout))

    def train_net(self, batch: int) -> str:
        return self.path(f"{self.spec.key}_train_b{batch}.prototxt",
                         lambda: train_net_text(self.spec, self.lmdb, batch))

    def solver(self, batch: int) -> str:
        net = self.train_net(batch)
        return self.path(f"{self.spec.key}_solver_b{batch}.prototxt",
                         lambda: solver_text(self.spec, net, self.dir))

    def deploy(self, batch: int) -> str:
        return self.path(f"{self.spec.key}_deploy_b{batch}.prototxt", lambda: deploy_text(self.spec, batch))

    def array(self, name: str, a: np.ndarray) -> str:
        p = os.path.join(self.dir, name + ".npy")
        np.save(p, a)
        return p


def prepare(spec: BigNet, d: str, lmdb_path: str) -> Files:
    """The prototxts and the shared random weights (.caffemodel) of one net."""
    import caffe_compat as caffe

    f = Files(spec, d, lmdb_path)
    caffe.set_random_seed(0)
    net = caffe.Net(f.input_net(2), caffe.TRAIN)
    x, y = images(2, spec.crop, seed=1)
    net.blobs["data"].data[...] = x
    net.blobs["label"].data[...] = y
    for _ in range(2):  # BatchNorm's running statistics: sensible TEST-phase outputs
        net.forward()
    f.weights = os.path.join(d, f"{spec.key}.caffemodel")
    net.save(f.weights)
    return f


def images(n: int, crop: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean-subtracted image-like inputs and labels."""
    rng = np.random.RandomState(seed)
    x = (rng.randint(0, 256, size=(n, 3, crop, crop)) - np.array(MEAN).reshape(1, 3, 1, 1)).astype(np.float32)
    return x, rng.randint(1000, size=n).astype(np.float32)


# ------------------------------------------------------------------ real Caffe
class Caffe:
    """The reference pycaffe child (``_caffe_child.py``)."""

    def __init__(self, threads: int, env: dict[str, str] | None = None) -> None:
        import bench_caffe

        e = dict(os.environ, GLOG_minloglevel="2", **(env or {}))
        if threads:
            e.update(common.thread_env(threads))
        self.proc = subprocess.Popen([bench_caffe.reference_python(), os.path.join(HERE, "_caffe_child.py")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=e)
        self.hello = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"reference Caffe exited: {err[-2000:]}")
        out = json.loads(line)
        if "error" in out:
            raise RuntimeError(f"reference Caffe: {out['error']}")
        return out

    def __call__(self, cmd: str, **kw: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(dict(cmd=cmd, **kw)) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def timer(self, name: str, what: str) -> Callable[[int], float]:
        return lambda iters: float(self("time", name=name, what=what, iters=iters)["ms"])

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def caffe_available() -> tuple[bool, str]:
    import bench_caffe

    return bench_caffe.reference_available()


# ------------------------------------------------------------------ timing
Timed = Callable[[int], float]  # iters -> ms per call


def local(fn: Callable[[], Any]) -> Timed:
    def run(iters: int) -> float:
        t = time.perf_counter()
        for _ in range(iters):
            fn()
        return (time.perf_counter() - t) / iters * 1e3
    return run


def rounds_of(contenders: dict[str, Timed], rounds: int, round_s: float, warmup: int = 1,
              between: Callable[[int, int], None] | None = None) -> dict[str, dict[str, float]]:
    """Alternating rounds; calls per round set so that the slowest contender's round lasts
    about ``round_s``. ``between(round, half)`` runs before each half-round (two per round
    when given, e.g. to start and stop a competing process)."""
    first = {}
    for name, fn in contenders.items():
        for _ in range(max(0, warmup - 1)):
            fn(1)
        first[name] = fn(1)
    iters = {name: max(1, round(round_s * 1e3 / max(ms, 1e-3))) for name, ms in first.items()}
    halves = 2 if between else 1
    samples: dict[str, list[float]] = {f"{n}#{h}": [] for n in contenders for h in range(halves)}
    names = list(contenders)
    for r in range(rounds):
        for h in range(halves):
            if between:
                between(r, h)
            for name in (names if (r + h) % 2 == 0 else names[::-1]):
                samples[f"{name}#{h}"].append(contenders[name](iters[name]))
    out = {}
    for key, v in samples.items():
        name, h = key.rsplit("#", 1)
        out[name if halves == 1 else f"{name}#{h}"] = dict(common.summarize(v), iters=iters[name])
    return out


def set_threads(threads: int) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.set_flush_denormal(True)


# ------------------------------------------------------------------ training
class TwinReader:
    """The twin's data: LMDB records, random crop and mirror, mean pixel, as a PyTorch user
    without a DataLoader writes it (in the training loop's thread)."""

    def __init__(self, path: str, batch: int, crop: int, seed: int = 0) -> None:
        import lmdb

        from caffe_compat.proto import caffe_pb2

        self.env = lmdb.open(path, readonly=True, lock=False)
        self.txn = self.env.begin()
        self.cursor = self.txn.cursor()
        self.cursor.first()
        self.batch, self.crop = batch, crop
        self.rng = np.random.RandomState(seed)
        self.datum = caffe_pb2.Datum()
        self.mean = np.array(MEAN, dtype=np.float32).reshape(3, 1, 1)

    def next(self) -> tuple[Any, Any]:
        import torch

        xs, ys = [], []
        for _ in range(self.batch):
            self.datum.ParseFromString(self.cursor.value())
            if not self.cursor.next():
                self.cursor.first()
            d = self.datum
            img = np.frombuffer(d.data, np.uint8).reshape(d.channels, d.height, d.width)
            h0 = self.rng.randint(d.height - self.crop + 1)
            w0 = self.rng.randint(d.width - self.crop + 1)
            img = img[:, h0:h0 + self.crop, w0:w0 + self.crop]
            if self.rng.randint(2):
                img = img[:, :, ::-1]
            xs.append(img.astype(np.float32) - self.mean)
            ys.append(d.label)
        return torch.from_numpy(np.stack(xs)), torch.tensor(ys, dtype=torch.long)

    def close(self) -> None:
        self.cursor.close()
        self.txn.abort()
        self.env.close()


def bench_train(f: Files, batch: int, rounds: int, round_s: float, threads: int, with_caffe: bool,
                log: Any = print) -> dict[str, Any]:
    import torch

    import caffe_compat as caffe
    import twins
    import twins_big

    spec = f.spec
    x, y = images(batch, spec.crop, seed=2)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y).long()
    res: dict[str, Any] = {"net": spec.key, "title": spec.title, "batch": batch, "rounds": rounds}
    # 1. Same work: the twin against caffe_compat (no Dropout; batch 2 with a float64 copy of the
    #    twin as the judge), then Caffe's loss against ours.
    cx, cy = images(2, spec.crop, seed=2)
    check_net = caffe.Net(f.input_net(2, dropout=False), caffe.TRAIN, weights=f.weights)
    check_net.blobs["data"].data[...] = cx
    check_net.blobs["label"].data[...] = cy
    twin = twins_big.BIG_TWINS[spec.key]().load_from_net(check_net)
    twin.set_dropout(False)
    res["check"] = twins_big.check_big_twin(check_net, twin, torch.from_numpy(cx),
                                            torch.from_numpy(cy).long())
    log(f"[bench_big] {spec.key}: twin check {res['check']}")
    weights = check_net.blob_loss_weights
    ours_loss = res["check"]["loss"]
    del check_net
    cf = None
    contenders: dict[str, Timed] = {}
    if with_caffe:
        cf = Caffe(threads)
        xs, ys = f.array(f"{spec.key}_x{batch}", x), f.array(f"{spec.key}_y{batch}", y)
        cxs, cys = f.array(f"{spec.key}_check_x", cx), f.array(f"{spec.key}_check_y", cy)
        cf("net", name="check", prototxt=f.input_net(2, dropout=False), phase="TRAIN", weights=f.weights,
           inputs={"data": cxs, "label": cys})
        outs = cf("forward", name="check")["outputs"]
        cf("drop", name="check")
        caffe_loss = sum(v * float(weights.get(k, 0.0)) for k, v in outs.items())
        res["caffe_loss"] = caffe_loss
        if abs(caffe_loss - ours_loss) > 1e-4 * max(1.0, abs(ours_loss)):
            raise AssertionError(f"{spec.key}: real Caffe's loss {caffe_loss} != caffe_compat's {ours_loss}")
        cf("net", name="fb", prototxt=f.input_net(batch), phase="TRAIN", weights=f.weights,
           inputs={"data": xs, "label": ys})
        cf("solver", name="step", solver=f.solver(batch), weights=f.weights)
    # 2. The timed contenders: with Dropout, as the prototxt says.
    net = caffe.Net(f.input_net(batch), caffe.TRAIN, weights=f.weights)
    net.blobs["data"].data[...] = x
    net.blobs["label"].data[...] = y
    solver = caffe.get_solver(f.solver(batch))
    solver.net.copy_from(f.weights)
    twin.set_dropout(True)
    twin.train()
    twin_st = twins_big.BIG_TWINS[spec.key]().load_from_net(solver.net)
    twin_st.train()
    opt = twins.sgd_for(twin_st, spec.solver)
    # A copy of the database: py-lmdb opens one environment once per process, and ours is open.
    twin_db = os.path.join(f.dir, "twin_lmdb")
    if not os.path.exists(twin_db):
        shutil.copytree(f.lmdb, twin_db)
    reader = TwinReader(twin_db, batch, spec.crop)

    def ours_fb() -> None:
        net.forward()
        net.backward()

    def twin_step() -> None:
        bx, by = reader.next()
        opt.zero_grad()
        twin_st(bx, by).backward()
        opt.step()

    contenders["ours fwd+bwd"] = local(ours_fb)
    contenders["twin fwd+bwd"] = local(lambda: twin(tx, ty).backward())
    contenders["ours step"] = local(lambda: solver.step(1))
    contenders["twin step"] = local(twin_step)
    if cf:
        contenders["caffe fwd+bwd"] = cf.timer("fb", "fwdbwd")
        contenders["caffe step"] = cf.timer("step", "step")
    try:
        res["load_before"] = os.getloadavg()
        res["times"] = rounds_of(contenders, rounds, round_s, warmup=2)
        res["load_after"] = os.getloadavg()
    finally:
        reader.close()
        if cf:
            cf.close()
    t = {k: v["median_ms"] for k, v in res["times"].items()}
    res["ratios"] = {"fwd+bwd ours/twin": t["ours fwd+bwd"] / t["twin fwd+bwd"],
                     "step ours/twin": t["ours step"] / t["twin step"]}
    if cf:
        res["ratios"].update({"fwd+bwd caffe/ours": t["caffe fwd+bwd"] / t["ours fwd+bwd"],
                              "step caffe/ours": t["caffe step"] / t["ours step"],
                              "fwd+bwd caffe/twin": t["caffe fwd+bwd"] / t["twin fwd+bwd"]})
    return res


# ------------------------------------------------------------------ inference
def export_onnx(f: Files, batch: int) -> str:
    """``caffe-compat export --onnx`` of the deploy net (our own exporter feeds ONNX Runtime)."""
    out = os.path.join(f.dir, f"{f.spec.key}_b{batch}.onnx")
    if not os.path.exists(out):
        cmd = [sys.executable, "-m", "caffe_compat", "export", "--model", f.deploy(batch), "--weights",
               f.weights, "--onnx", out]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=common.ROOT)
        if proc.returncode != 0:
            raise RuntimeError(f"caffe-compat export failed:\n{proc.stderr[-3000:]}")
    return out


def opencv_net(f: Files, batch: int, threads: int) -> Any:
    import cv2

    if threads:
        cv2.setNumThreads(threads)
    net = cv2.dnn.readNetFromCaffe(f.deploy(batch), f.weights)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    return net


def ort_session(path: str, threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def _rel(a: np.ndarray, ref: np.ndarray) -> float:
    a, ref = np.asarray(a, np.float64).reshape(ref.shape), np.asarray(ref, np.float64)
    return float(np.abs(a - ref).max() / max(np.abs(ref).max(), 1e-30))


def inference_contenders(f: Files, batch: int, threads: int, cf: Caffe | None,
                         log: Any = print) -> tuple[dict[str, Timed], dict[str, Any]]:
    """caffe_compat, OpenCV dnn, ONNX Runtime (and Caffe) running the deploy net at ``batch``,
    each with its outputs checked against Caffe's (or, without Caffe, ours)."""
    import caffe_compat as caffe

    spec = f.spec
    x, _ = images(batch, spec.crop, seed=3)
    deploy = f.deploy(batch)
    net = caffe.Net(deploy, caffe.TEST, weights=f.weights)
    net.blobs["data"].data[...] = x
    out = net.forward()
    blobs = [spec.logits, "prob"]
    ours = {b: np.array(net.blobs[b].data) for b in blobs}
    contenders: dict[str, Timed] = {"ours": local(net.forward)}
    check: dict[str, Any] = {}
    ref = ours
    if cf:
        xs = f.array(f"{spec.key}_infer_x{batch}", x)
        name = f"infer{batch}"
        cf("net", name=name, prototxt=deploy, phase="TEST", weights=f.weights, inputs={"data": xs})
        save = os.path.join(f.dir, f"caffe_out_{batch}.npz")
        cf("forward", name=name, save=save, blobs=blobs)
        with np.load(save) as z:
            ref = {b: z[b] for b in blobs}
        check["ours"] = {b: _rel(ours[b], ref[b]) for b in blobs}
        contenders["caffe"] = cf.timer(name, "forward")
    try:
        cvnet = opencv_net(f, batch, threads)
        cvnet.setInput(x)
        outs = cvnet.forward(["prob"])
        check["opencv"] = {"prob": _rel(outs[0], ref["prob"])}

        def cv_fwd() -> None:
            cvnet.setInput(x)
            cvnet.forward()
        contenders["opencv"] = local(cv_fwd)
    except Exception as exc:  # reported, not fatal
        check["opencv"] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        log(f"[bench_big] OpenCV dnn failed on {spec.key}: {check['opencv']['error']}")
    try:
        sess = ort_session(export_onnx(f, batch), threads)
        names = [o.name for o in sess.get_outputs()]
        feed = {sess.get_inputs()[0].name: x}
        got = dict(zip(names, sess.run(None, feed)))
        check["ort"] = {b: _rel(got[b], ref[b]) for b in blobs if b in got}
        contenders["ort"] = local(lambda: sess.run(None, feed))
    except Exception as exc:
        check["ort"] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        log(f"[bench_big] ONNX Runtime failed on {spec.key}: {check['ort']['error']}")
    try:
        contenders["opt-in"], check["opt-in"] = opt_in_contender(f, batch, x, ref, blobs)
    except Exception as exc:
        check["opt-in"] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        log(f"[bench_big] caffe.accelerate(onnxruntime=True) failed on {spec.key}: "
            f"{check['opt-in']['error']}")
    del out
    return contenders, check


def opt_in_contender(f: Files, batch: int, x: np.ndarray, ref: dict[str, np.ndarray],
                     blobs: list[str]) -> tuple[Timed, dict[str, Any]]:
    """``caffe.accelerate(net, onnxruntime=True)``: its first forward with an empty model cache
    (the export), then a new net's first forward that finds the model in the cache."""
    import caffe_compat as caffe

    cache = os.path.join(f.dir, f"ort_cache_{batch}")
    shutil.rmtree(cache, ignore_errors=True)
    first = {}
    for how in ("cold", "cached"):
        net = caffe.Net(f.deploy(batch), caffe.TEST, weights=f.weights)
        caffe.accelerate(net, onnxruntime=True, cache_dir=cache)
        net.blobs["data"].data[...] = x
        t = time.perf_counter()
        net.forward(blobs=blobs)
        first[how] = time.perf_counter() - t
    got = {b: _rel(np.array(net.blobs[b].data), ref[b]) for b in blobs}
    # The timed call asks for the outputs only: its own session (another export, seconds),
    # made here rather than in the first timed round, which sets the calls per round.
    net.forward()
    return local(net.forward), {**got, "first_call_s": first}


def bench_infer(f: Files, batch: int, rounds: int, round_s: float, threads: int, with_caffe: bool,
                log: Any = print) -> dict[str, Any]:
    cf = Caffe(threads) if with_caffe else None
    try:
        contenders, check = inference_contenders(f, batch, threads, cf, log)
        res: dict[str, Any] = {"net": f.spec.key, "title": f.spec.title, "batch": batch, "rounds": rounds,
                               "check": check, "load_before": os.getloadavg()}
        res["times"] = rounds_of(contenders, rounds, round_s, warmup=3)
        res["load_after"] = os.getloadavg()
    finally:
        if cf:
            cf.close()
    t = {k: v["median_ms"] for k, v in res["times"].items()}
    others = [t[k] for k in ("opencv", "ort") if k in t]
    res["ratios"] = {"ours/best": t["ours"] / min(others) if others else None}
    if "opt-in" in t:
        res["ratios"]["opt-in/best"] = t["opt-in"] / min(others) if others else None
    for k in ("opencv", "ort", "caffe"):
        if k in t:
            res["ratios"][f"ours/{k}"] = t["ours"] / t[k]
    gc.collect()
    return res


def bench_contention(f: Files, rounds: int, round_s: float, threads: int, with_caffe: bool,
                     log: Any = print) -> dict[str, Any]:
    """Batch-1 inference with and without one competing CPU-bound process, alternating."""
    cf = Caffe(threads) if with_caffe else None
    hog: list[subprocess.Popen[bytes]] = []

    def between(r: int, half: int) -> None:
        while hog:
            p = hog.pop()
            p.kill()
            p.wait()
        if half == 1:
            hog.append(subprocess.Popen(["yes"], stdout=subprocess.DEVNULL))
            time.sleep(0.2)

    try:
        contenders, check = inference_contenders(f, 1, threads, cf, log)
        res: dict[str, Any] = {"net": f.spec.key, "title": f.spec.title, "batch": 1, "rounds": rounds,
                               "load_before": os.getloadavg()}
        res["times"] = rounds_of(contenders, rounds, round_s, warmup=3, between=between)
        res["load_after"] = os.getloadavg()
    finally:
        between(0, 0)
        if cf:
            cf.close()
    res["slowdown"] = {k: res["times"][f"{k}#1"]["median_ms"] / res["times"][f"{k}#0"]["median_ms"]
                       for k in contenders}
    gc.collect()
    return res


# ------------------------------------------------------------------ memory
MEM_KINDS = ["ours", "opt-in", "opencv", "ort", "caffe"]


def mem_worker(kind: str, deploy: str, weights: str, onnx: str, crop: int, batch: int,
               threads: int, cache: str = "") -> dict[str, Any]:
    """In a fresh process: peak RSS that building ``kind``'s net and three forwards add
    ("opt-in": ``caffe.accelerate(net, onnxruntime=True)`` with its model in ``cache``)."""
    x, _ = images(batch, crop, seed=3)
    if kind in ("ours", "opt-in"):
        import caffe_compat as caffe  # (before torch)

        set_threads(threads)
        if kind == "opt-in":
            import onnxruntime  # noqa: F401  (as the ORT worker: its import is not the net's)
    elif kind == "opencv":
        import cv2

        if threads:
            cv2.setNumThreads(threads)
    else:
        import onnxruntime  # noqa: F401
    gc.collect()
    common.peak_rss_reset()
    base = common.rss()
    if kind in ("ours", "opt-in"):
        net = caffe.Net(deploy, caffe.TEST, weights=weights)
        if kind == "opt-in":
            caffe.accelerate(net, onnxruntime=True, cache_dir=cache)
        net.blobs["data"].data[...] = x
        run = net.forward
    elif kind == "opencv":
        cvnet = opencv_net_from(deploy, weights)

        def run() -> None:
            cvnet.setInput(x)
            cvnet.forward()
    else:
        sess = ort_session(onnx, threads)
        feed = {sess.get_inputs()[0].name: x}
        run = lambda: sess.run(None, feed)  # noqa: E731
    for _ in range(3):
        run()
    return {"kind": kind, "base_rss": base, "peak_rss": common.peak_rss(),
            "added_rss": common.peak_rss() - base}


def opencv_net_from(deploy: str, weights: str) -> Any:
    import cv2

    net = cv2.dnn.readNetFromCaffe(deploy, weights)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    return net


def bench_memory(f: Files, batch: int, threads: int, with_caffe: bool, log: Any = print) -> dict[str, Any]:
    res: dict[str, Any] = {"net": f.spec.key, "title": f.spec.title, "batch": batch, "workers": {}}
    deploy = f.deploy(batch)
    try:
        onnx = export_onnx(f, batch)
    except RuntimeError as exc:
        onnx = ""
        log(f"[bench_big] no ONNX model for memory: {exc}")
    env = dict(common.MALLOC_ENV, **(common.thread_env(threads) if threads else {}))
    for kind in MEM_KINDS:
        if kind == "ort" and not onnx:
            continue
        if kind == "caffe":
            if not with_caffe:
                continue
            cf = Caffe(threads, env=common.MALLOC_ENV)
            try:
                xs = f.array(f"{f.spec.key}_mem_x{batch}", images(batch, f.spec.crop, seed=3)[0])
                cf("reset_peak")
                base = cf("mem")["rss"]
                cf("net", name="m", prototxt=deploy, phase="TEST", weights=f.weights, inputs={"data": xs})
                for _ in range(3):
                    cf("forward", name="m")
                peak = cf("mem")["peak"]
            finally:
                cf.close()
            res["workers"][kind] = {"kind": kind, "base_rss": base, "peak_rss": peak,
                                    "added_rss": peak - base}
            continue
        worker = ["--mem-worker", kind, "--deploy", deploy, "--weights", f.weights, "--onnx", onnx,
                  "--crop", str(f.spec.crop), "--batch", str(batch), "--threads", str(threads),
                  "--ort-cache", os.path.join(f.dir, f"ort_cache_{batch}")]
        try:
            if kind == "opt-in":  # a first run exports the model into the cache (the infer section's
                common.run_worker(os.path.abspath(__file__), worker, env=env)  # may have already)
            res["workers"][kind] = common.run_worker(os.path.abspath(__file__), worker, env=env)
        except RuntimeError as exc:
            res["workers"][kind] = {"error": str(exc)[-500:]}
    w = res["workers"]
    ok = "added_rss" in w.get("ours", {}) and "added_rss" in w.get("opencv", {})
    res["ours/opencv"] = w["ours"]["added_rss"] / w["opencv"]["added_rss"] if ok else None
    if ok and "added_rss" in w.get("opt-in", {}):
        res["opt-in/opencv"] = w["opt-in"]["added_rss"] / w["opencv"]["added_rss"]
    return res


# ------------------------------------------------------------------ report
def versions() -> dict[str, Any]:
    out: dict[str, Any] = {}
    import torch

    out["torch"] = torch.__version__
    try:
        import cv2

        out["opencv"] = cv2.__version__
    except ImportError:
        out["opencv"] = None
    try:
        import onnxruntime

        out["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        out["onnxruntime"] = None
    import caffe_compat

    out["caffe_compat"] = caffe_compat.__version__
    return out


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _ms(d: dict[str, Any], k: str) -> str:
    v = d.get(k)
    return "-" if not v else common.fmt_ms(v["median_ms"])


def _r(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.1e}" if 0 < abs(x) < 0.01 else f"{x:.2f}"


def _status(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "MISS")


def markdown(res: dict[str, Any]) -> str:
    m, v = res["machine"], res["versions"]
    out = [f"# caffe_compat big-net benchmarks — {m['host']}, {res['date']}", "",
           f"* CPU: {m['cpu']} ({m['cores']} logical cores); Python {m['python']}",
           f"* versions: torch {v['torch']}, OpenCV {v.get('opencv')}, ONNX Runtime {v.get('onnxruntime')}, "
           f"real Caffe {res.get('caffe_version') or '-'} ({res.get('caffe_python') or 'not found'}), "
           f"caffe_compat {v['caffe_compat']}",
           f"* threads: {res['threads'] or 'each library default'} (torch, OpenCV, ONNX Runtime, "
           "Caffe's OpenBLAS); torch's OpenMP wait policy (ours and the twins, one process): "
           f"{res.get('openmp')}",
           f"* uptime before: `{res['uptime_before']}`", f"* uptime after: `{res['uptime_after']}`",
           f"* wall time {res['wall_s']:.0f} s; medians of alternating rounds (spread = IQR/median)", ""]
    out += ["## Targets", "", "| target | net | value | goal | status |", "|---|---|---|---|---|"]
    for row in res["summary"]:
        out.append(f"| {row['target']} | {row['net']} | {_r(row['value'])} | {row['goal']} | "
                   f"{row['status']} |")
    if res.get("train"):
        out += ["", "## Training (TRAIN phase, ms per call)", "",
                "| net | batch | ours fwd+bwd | twin | Caffe | ours step | twin step | Caffe step | "
                "caffe/ours fb | caffe/ours step | ours/twin fb | ours/twin step | check | load |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for t in res["train"]:
            if "error" in t:
                out.append(f"| {t['net']} | error: {t['error'][:200]} |")
                continue
            r, tm = t["ratios"], t["times"]
            out.append(f"| {t['title']} | {t['batch']} | {_ms(tm, 'ours fwd+bwd')} | "
                       f"{_ms(tm, 'twin fwd+bwd')} | "
                       f"{_ms(tm, 'caffe fwd+bwd')} | {_ms(tm, 'ours step')} | {_ms(tm, 'twin step')} | "
                       f"{_ms(tm, 'caffe step')} | {_r(r.get('fwd+bwd caffe/ours'))} | "
                       f"{_r(r.get('step caffe/ours'))} | {_r(r['fwd+bwd ours/twin'])} | "
                       f"{_r(r['step ours/twin'])} | loss {t['check']['loss']:.4f}, grad err vs float64 "
                       f"{t['check']['grad_rel_err']:.0e} (twin "
                       f"{t['check'].get('twin_grad_rel_err', 0):.0e}) | {_load(t)} |")
    if res.get("infer"):
        out += ["", "## Inference (TEST forward, ms per call)", "",
                "| net | batch | ours | opt-in (onnxruntime) | OpenCV dnn | ONNX Runtime | Caffe | "
                "ours/best | opt-in/best | opt-in first call: empty cache / cached | max rel. diff vs Caffe "
                "(ours / opt-in / OpenCV / ORT) | load |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for t in res["infer"]:
            if "error" in t:
                out.append(f"| {t['net']} | error: {t['error'][:200]} |")
                continue
            tm, c = t["times"], t["check"]
            diffs = " / ".join(_diff(c.get(k)) for k in ("ours", "opt-in", "opencv", "ort"))
            first = c.get("opt-in", {}).get("first_call_s")
            firsts = f"{first['cold']:.1f} s / {first['cached']:.2f} s" if first else "-"
            out.append(f"| {t['title']} | {t['batch']} | {_ms(tm, 'ours')} | {_ms(tm, 'opt-in')} | "
                       f"{_ms(tm, 'opencv')} | {_ms(tm, 'ort')} | {_ms(tm, 'caffe')} | "
                       f"{_r(t['ratios']['ours/best'])} | {_r(t['ratios'].get('opt-in/best'))} | {firsts} | "
                       f"{diffs} | {_load(t)} |")
    if res.get("contention"):
        out += ["", "## Contention (batch-1 TEST forward; ms alone → with `yes > /dev/null`)", "",
                "| net | ours | opt-in (onnxruntime) | OpenCV dnn | ONNX Runtime | Caffe | load |",
                "|---|---|---|---|---|---|---|"]
        for t in res["contention"]:
            if "error" in t:
                out.append(f"| {t['net']} | error: {t['error'][:200]} |")
                continue
            cells = []
            for k in ("ours", "opt-in", "opencv", "ort", "caffe"):
                if k in t["slowdown"]:
                    cells.append(f"{_ms(t['times'], k + '#0')} → {_ms(t['times'], k + '#1')} "
                                 f"({t['slowdown'][k]:.2f}x)")
                else:
                    cells.append("-")
            out.append(f"| {t['title']} | " + " | ".join(cells) + f" | {_load(t)} |")
    if res.get("memory"):
        out += ["", "## Memory (peak RSS added by building the deploy net + 3 TEST forwards, MiB)", "",
                "| net | batch | ours | opt-in (onnxruntime) | OpenCV dnn | ONNX Runtime | Caffe | "
                "ours/OpenCV | opt-in/OpenCV |", "|---|---|---|---|---|---|---|---|---|"]
        for t in res["memory"]:
            if "error" in t:
                out.append(f"| {t['net']} | error: {t['error'][:200]} |")
                continue
            w = t["workers"]
            cells = [f"{w[k]['added_rss'] / 2**20:.0f}" if "added_rss" in w.get(k, {}) else "-"
                     for k in MEM_KINDS]
            out.append(f"| {t['title']} | {t['batch']} | " + " | ".join(cells)
                       + f" | {_r(t['ours/opencv'])} | {_r(t.get('opt-in/opencv'))} |")
    if res.get("kernels"):
        out += ["", f"## Kernel choices (bench_kernels.py --big; `{res['kernels']['uptime']}`)", "", "```",
                *res["kernels"]["report"], "```"]
    if res.get("threads_policy"):
        out += ["", f"## OpenMP wait policy (bench_threads.py; `{res['threads_policy']['uptime']}`)", "",
                "```", *res["threads_policy"]["report"], "```"]
    for s in res.get("skipped", []):
        out.append(f"\nskipped: {s}")
    return "\n".join(out) + "\n"


def _diff(c: dict[str, Any] | None) -> str:
    if not c:
        return "-"
    if "error" in c:
        return "error"
    return f"{max(v for k, v in c.items() if k != 'first_call_s'):.0e}"


def _load(t: dict[str, Any]) -> str:
    a, b = t.get("load_before"), t.get("load_after")
    return "-" if not a or not b else f"{a[0]:.1f}→{b[0]:.1f}"


def summary(res: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []

    def row(target: str, net: str, value: float | None, goal: str, ok: bool | None) -> None:
        rows.append({"target": target, "net": net, "value": value, "goal": goal,
                     "status": _status(None if value is None else ok)})

    for t in res.get("train", []):
        if "error" in t:
            continue
        r = t["ratios"]
        where = f"{t['title']} b{t['batch']}"
        for k in ("fwd+bwd caffe/ours", "step caffe/ours"):
            if k in r:
                row(f"training {k}", where, r[k], f">= {TRAIN_VS_CAFFE}", r[k] >= TRAIN_VS_CAFFE)
        for k in ("fwd+bwd ours/twin", "step ours/twin"):
            row(f"training {k}", where, r[k], f"<= {TRAIN_VS_TWIN}", r[k] <= TRAIN_VS_TWIN)
    for t in res.get("infer", []):
        if "error" in t:
            continue
        v = t["ratios"]["ours/best"]
        where = f"{t['title']} b{t['batch']}"
        row("inference ours / min(OpenCV, ORT)", where, v, f"<= {INFER_VS_BEST}",
            v is not None and v <= INFER_VS_BEST)
        if "opt-in/best" in t["ratios"]:
            v = t["ratios"]["opt-in/best"]
            row("inference opt-in (onnxruntime) / min(OpenCV, ORT)", where, v, "<= 1.0",
                v is not None and v <= 1.0)
            first = t["check"]["opt-in"]["first_call_s"]
            row("opt-in first call, model cached (s)", where, first["cached"], "< 5", first["cached"] < 5)
            row("opt-in first call, empty cache (s)", where, first["cold"], "< 5", first["cold"] < 5)
        for who, c in t["check"].items():
            if "error" not in c:
                worst = max(v for k, v in c.items() if k != "first_call_s")
                row(f"inference {who} output vs Caffe (rel.)", where, worst, f"<= {OUT_TOL:g}",
                    worst <= OUT_TOL)
    for t in res.get("contention", []):
        if "error" in t:
            continue
        s = t["slowdown"]
        others = [s[k] for k in ("opencv", "caffe") if k in s]
        if others:
            row("contention slowdown ours / max(OpenCV, Caffe)", t["title"], s["ours"] / max(others),
                "<= 1.0",
                s["ours"] <= max(others))
    for t in res.get("memory", []):
        if "error" in t:
            continue
        for who in ("ours", "opt-in"):
            v = t.get(f"{who}/opencv")
            if who == "ours" or v is not None:
                row(f"memory TEST forward {who} / OpenCV", f"{t['title']} b{t['batch']}", v,
                    f"<= {MEM_VS_OPENCV}", v is not None and v <= MEM_VS_OPENCV)
    return rows


# ------------------------------------------------------------------ driver
def run(args: argparse.Namespace, log: Any = print) -> dict[str, Any]:
    import caffe_compat  # before torch, as a user's `import caffe_compat as caffe`: OpenMP's set-up

    import bench_caffe

    set_threads(args.threads)
    only = set(args.only.split(","))
    with_caffe, why = caffe_available()
    res: dict[str, Any] = {"date": _dt.datetime.now().isoformat(timespec="seconds"), "threads": args.threads,
                           "openmp": caffe_compat.openmp_policy(), "uptime_before": uptime(),
                           "load_before": os.getloadavg(), "skipped": [],
                           "args": vars(args)}
    if not with_caffe:
        res["skipped"].append(why)
    else:
        res["caffe_python"] = bench_caffe.reference_python()
        cf = Caffe(args.threads)
        res["caffe_version"] = cf.hello.get("version")
        cf.close()
    t0 = time.time()
    d = common.bench_dir()
    lmdb_path = make_lmdb(os.path.join(d, "images_lmdb"))
    for key in args.nets.split(","):
        spec = NETS[key]
        log(f"[bench_big] {key}: preparing ({uptime()})")
        nd = os.path.join(d, key)
        os.makedirs(nd, exist_ok=True)
        f = prepare(spec, nd, lmdb_path)
        sections: list[tuple[str, Callable[[], dict[str, Any]]]] = []
        if "train" in only:
            sections.append(("train", lambda: bench_train(f, args.batch, args.rounds, args.round_s,
                                                          args.threads,
                                                          with_caffe, log)))
        if "infer" in only:
            for b in [int(b) for b in args.infer_batches.split(",") if b]:
                sections.append(("infer", (lambda b: lambda: bench_infer(f, b, args.rounds, args.round_s,
                                                                         args.threads, with_caffe, log))(b)))
        if "contention" in only:
            sections.append(("contention", lambda: bench_contention(f, args.rounds, args.round_s,
                                                                    args.threads,
                                                                    with_caffe, log)))
        if "memory" in only:
            for b in [int(b) for b in args.infer_batches.split(",") if b]:
                sections.append(("memory", (lambda b: lambda: bench_memory(f, b, args.threads, with_caffe,
                                                                           log))(b)))
        for name, fn in sections:
            log(f"[bench_big] {key}: {name} ...")
            t1 = time.time()
            try:
                r = fn()
            except Exception as exc:  # one failing section must not lose the others
                import traceback

                traceback.print_exc()
                r = {"net": key, "title": spec.title, "error": f"{type(exc).__name__}: {exc}"}
            r["wall_s"] = time.time() - t1
            r["uptime"] = uptime()
            res.setdefault(name, []).append(r)
            log(f"[bench_big] {key}: {name} done in {r['wall_s']:.0f} s: "
                f"{json.dumps(r.get('ratios') or r.get('slowdown') or r.get('ours/opencv'), default=str)}")
        gc.collect()
    if "kernels" in only:
        import bench_kernels

        log(f"[bench_big] kernel choices on the nets' pooling shapes ... ({uptime()})")
        rows = bench_kernels.run(args.threads or (os.cpu_count() or 1), max(3, args.rounds), big=True,
                                 batch=args.batch)
        res["kernels"] = {"rows": rows, "report": bench_kernels.report(rows), "uptime": uptime()}
    if "threads" in only:
        import bench_threads

        log(f"[bench_big] OpenMP wait policy under contention ... ({uptime()})")
        tr = bench_threads.run(bench_threads.WORKLOADS, max(2, args.rounds // 2), 1,
                               1.0 if args.quick else 3.0)
        res["threads_policy"] = dict(tr, report=bench_threads.report(tr), uptime=uptime())
    set_threads(args.threads)
    res["wall_s"] = time.time() - t0
    res["uptime_after"] = uptime()
    res["load_after"] = os.getloadavg()
    res["machine"] = common.machine(args.threads or None)
    res["versions"] = versions()
    res["summary"] = summary(res)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default=",".join(DEFAULT_NETS), help=f"comma-separated, of {sorted(NETS)}")
    ap.add_argument("--only", default="train,infer,contention,memory,kernels,threads")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--round-s", type=float, default=1.0,
                    help="seconds per contender per round (at least one call)")
    ap.add_argument("--batch", type=int, default=8, help="training batch")
    ap.add_argument("--infer-batches", default="1,8")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="threads of every contender (0: each library's default)")
    ap.add_argument("--quick", action="store_true", help="2 rounds, short rounds: a smoke run")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--mem-worker", default="", help=argparse.SUPPRESS)
    ap.add_argument("--deploy", default="", help=argparse.SUPPRESS)
    ap.add_argument("--weights", default="", help=argparse.SUPPRESS)
    ap.add_argument("--onnx", default="", help=argparse.SUPPRESS)
    ap.add_argument("--ort-cache", default="", help=argparse.SUPPRESS)
    ap.add_argument("--crop", type=int, default=224, help=argparse.SUPPRESS)
    ap.add_argument("--report", default="", help="only rewrite the .md of this results .json")
    args = ap.parse_args()
    if args.report:
        with open(args.report) as fh:
            res = json.load(fh)
        res["summary"] = summary(res)
        with open(args.report[:-len(".json")] + ".md", "w") as fh:
            fh.write(markdown(res))
        return
    if args.mem_worker:
        print(json.dumps(mem_worker(args.mem_worker, args.deploy, args.weights, args.onnx, args.crop,
                                    int(args.infer_batches.split(",")[0]) if not args.batch else args.batch,
                                    args.threads, args.ort_cache)))
        return
    if args.quick:
        args.rounds, args.round_s = 2, 0.2
    res = run(args)
    os.makedirs(args.out, exist_ok=True)
    stem = base = os.path.join(args.out, f"big-{platform.node() or 'host'}-{_dt.date.today().isoformat()}")
    n = 1
    while os.path.exists(stem + ".json"):  # an earlier run of the day is kept, not overwritten
        n += 1
        stem = f"{base}-{n}"
    with open(stem + ".json", "w") as fh:
        json.dump(res, fh, indent=1, default=str)
    text = markdown(res)
    with open(stem + ".md", "w") as fh:
        fh.write(text)
    print(text)
    print(f"[bench_big] wrote {stem}.json and {stem}.md")


if __name__ == "__main__":
    main()
