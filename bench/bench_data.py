"""Benchmark: Data-layer throughput against the nets it feeds.

Builds LMDBs of random images in a temporary directory (MNIST-like raw
1×28×28, CIFAR-like raw 3×32×32 with a mean file, and PNG-encoded 3×32×32
with TRAIN crop 28 + mirror) and reports

* the Data layer alone, read/decode/transform in the calling thread
  (``prefetch: 0``): images per second of one reader thread; for encoded
  images (PNG, JPEG, and ImageData with a resize) with each image backend
  (OpenCV and the Pillow fallback, ``caffe_compat.data.image``) in
  alternating rounds, the median of the rounds;
* LeNet and CIFAR10-quick (``examples/nets``) training forward/backward with
  their Data layers on those LMDBs, prefetching as configured (default 4):
  images per second, and the time each iteration spends *inside* the Data
  layer's forward, i.e. waiting for a batch. A wait near zero means the
  prefetch thread keeps up and the net never waits on data.

    python bench/bench_data.py [--iters 30] [--records 2000] [--threads N] [--rounds 5]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time

import caffe_compat  # noqa: F401  (first: its OpenMP set-up happens before torch loads)
import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import caffe_compat as caffe  # noqa: E402
from caffe_compat.data import DBWriter, array_to_datum, encoded_datum  # noqa: E402
from caffe_compat.data import image as image_io  # noqa: E402
from caffe_compat.net import load_net_param  # noqa: E402
from caffe_compat.proto import caffe_pb2  # noqa: E402


def _photo(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """A smooth random image (compresses like a photograph, unlike noise)."""
    c, h, w = shape
    base = np.cumsum(rng.integers(-6, 7, (h, w, c)), axis=1) \
        + np.cumsum(rng.integers(-6, 7, (h, 1, c)), axis=0)
    return np.clip(base + 128, 0, 255).astype(np.uint8)


def make_lmdb(path: str, shape: tuple[int, int, int], n: int, encoded: str = "") -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    with DBWriter(path, "lmdb") as w:
        for i in range(n):
            arr = rng.integers(0, 256, shape).astype(np.uint8)
            if encoded:
                buf = io.BytesIO()
                if encoded == "JPEG":
                    Image.fromarray(_photo(rng, shape)).save(buf, format="JPEG", quality=90)
                else:
                    Image.fromarray(arr.transpose(1, 2, 0)).save(buf, format=encoded)
                datum = encoded_datum(buf.getvalue(), i % 10)
            else:
                datum = array_to_datum(arr, i % 10)
            w.put(f"{i:08d}", datum.SerializeToString())
            if i % 1000 == 999:
                w.commit()


def make_image_list(folder: str, shape: tuple[int, int, int], n: int) -> str:
    """``n`` JPEG files of ``shape`` and their list file (for ImageData)."""
    from PIL import Image

    rng = np.random.default_rng(1)
    os.makedirs(folder)
    lines = []
    for i in range(n):
        Image.fromarray(_photo(rng, shape)).save(os.path.join(folder, f"{i:05d}.jpg"), quality=90)
        lines.append(f"{i:05d}.jpg {i % 10}")
    listing = folder + ".txt"
    with open(listing, "w") as f:
        f.write("\n".join(lines) + "\n")
    return listing


def _layer(source: str, batch: int, tp: str) -> str:
    if source.endswith(".txt"):  # an image list: ImageData resizing to 32x32
        folder = os.path.splitext(source)[0] + "/"
        return f"""layer {{ name: "d" type: "ImageData" top: "data" top: "label"
          transform_param {{ {tp} }}
          image_data_param {{ source: "{source}" root_folder: "{folder}" batch_size: {batch}
                              new_height: 32 new_width: 32 }}
          data_param {{ prefetch: 0 }} }}"""
    return f"""layer {{ name: "d" type: "Data" top: "data" top: "label"
      transform_param {{ {tp} }}
      data_param {{ source: "{source}" backend: LMDB batch_size: {batch} prefetch: 0 }} }}"""


def data_only(source: str, batch: int, tp: str, iters: int) -> float:
    net = caffe.Net(_layer(source, batch, tp), caffe.TRAIN)
    net.forward()
    start = time.perf_counter()
    for _ in range(iters):
        net.forward()
    return batch * iters / (time.perf_counter() - start)


def backends_interleaved(source: str, batch: int, tp: str, iters: int, rounds: int) -> dict[str, float]:
    """Median images/s of each image backend, in alternating rounds (order flipped each round)."""
    names = [b for b in image_io.BACKENDS if b != "opencv" or image_io._cv2() is not None]
    results: dict[str, list[float]] = {b: [] for b in names}
    for r in range(rounds):
        for b in names if r % 2 == 0 else names[::-1]:
            with image_io.use_backend(b):
                results[b].append(data_only(source, batch, tp, iters))
    return {b: float(np.median(v)) for b, v in results.items()}


def train_net(prototxt: str, source: str, mean: str | None, iters: int) -> tuple[float, float, float]:
    """(images/s of forward+backward, ms per iteration, ms per iteration inside the Data layer)."""
    param, _ = load_net_param(os.path.join(ROOT, prototxt))
    for lp in param.layer:
        if lp.type == "Data":
            lp.data_param.source = source
            if mean:
                lp.transform_param.mean_file = mean
    net = caffe.Net(param, caffe.TRAIN)
    data_idx = [i for i, layer in enumerate(net.layers) if layer.type == "Data"]
    waited = [0.0]
    marks: dict[int, float] = {}
    net.before_forward(lambda i: marks.__setitem__(i, time.perf_counter()) if i in data_idx else None)
    net.after_forward(lambda i: waited.__setitem__(0, waited[0] + time.perf_counter() - marks[i])
                      if i in data_idx else None)
    batch = net.blobs["data"].shape[0]
    for _ in range(3):
        net.forward()
        net.backward()
    waited[0] = 0.0
    start = time.perf_counter()
    for _ in range(iters):
        net.forward()
        net.backward()
    elapsed = time.perf_counter() - start
    return batch * iters / elapsed, 1000 * elapsed / iters, 1000 * waited[0] / iters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds per image backend")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    caffe.set_mode_cpu()
    with tempfile.TemporaryDirectory() as d:
        mnist, cifar, cifar_png = (os.path.join(d, n) for n in ("mnist", "cifar", "cifar_png"))
        make_lmdb(mnist, (1, 28, 28), args.records)
        make_lmdb(cifar, (3, 32, 32), args.records)
        make_lmdb(cifar_png, (3, 32, 32), min(args.records, 1000), encoded="PNG")
        cifar_jpg, photos = os.path.join(d, "cifar_jpg"), os.path.join(d, "photos")
        make_lmdb(cifar_jpg, (3, 32, 32), min(args.records, 1000), encoded="JPEG")
        photo_list = make_image_list(photos, (3, 48, 40), min(args.records, 500))
        mean = os.path.join(d, "mean.binaryproto")
        blob = caffe_pb2.BlobProto(num=1, channels=3, height=32, width=32)
        blob.data.extend([120.0] * 3 * 32 * 32)
        with open(mean, "wb") as f:
            f.write(blob.SerializeToString())
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU\n")
        print("Data layer alone, one thread (prefetch: 0):")
        rows = [
            ("raw 1x28x28, scale", mnist, 64, "scale: 0.00390625"),
            ("raw 3x32x32, mean_file", cifar, 100, f'mean_file: "{mean}"'),
        ]
        for name, src, batch, tp in rows:
            print(f"  {name:38s} {data_only(src, batch, tp, args.iters):10.0f} images/s")
        cv2 = image_io._cv2()
        print(f"  encoded images, per image backend (OpenCV {cv2.__version__ if cv2 else 'not installed'}"
              f"{f', {cv2.getNumThreads()} OpenCV threads' if cv2 else ''}; "
              f"median of {args.rounds} alternating rounds):")
        encoded = [
            ("PNG 3x32x32, crop 28 + mirror", cifar_png, 100, "crop_size: 28 mirror: true scale: 0.0039"),
            ("JPEG 3x32x32, crop 28 + mirror", cifar_jpg, 100, "crop_size: 28 mirror: true scale: 0.0039"),
            ("ImageData JPEG 48x40 -> resize 32x32", photo_list, 50, "mirror: true"),
        ]
        for name, src, batch, tp in encoded:
            per = backends_interleaved(src, batch, tp, max(args.iters // 3, 3), args.rounds)
            cells = "  ".join(f"{b} {v:8.0f}" for b, v in per.items())
            ratio = f"  (OpenCV {per['opencv'] / per['pillow']:.2f}x)" if len(per) == 2 else ""
            print(f"  {name:38s} {cells} images/s{ratio}")
        print("\nTraining forward+backward with the Data layer prefetching (prefetch: 4):")
        for name, proto, src, m in (("LeNet", "examples/nets/lenet_train_test.prototxt", mnist, None),
                                    ("CIFAR10-quick", "examples/nets/cifar10_quick_train_test.prototxt",
                                     cifar, mean)):
            ips, ms, wait = train_net(proto, src, m, args.iters)
            print(f"  {name:14s} {ips:8.0f} images/s  {ms:7.1f} ms/iter  waiting for data "
                  f"{wait:6.2f} ms/iter ({100 * wait / ms:.1f}%)")


if __name__ == "__main__":
    main()
