"""The embedded demo (``make demo``): Caffe's LeNet trained on handwritten digits.

Nothing is downloaded. The data set is the 1,797 8x8 handwritten digits that
scikit-learn ships; each is scaled to 0-255, resized to 20x20 with OpenCV's
bilinear filter and centred in a 28x28 frame (MNIST's layout). The script then
does what a Caffe user does with MNIST:

1. write the images as PNG files with ``path label`` list files;
2. ``caffe-compat convert_imageset --gray`` them into train/test LMDBs;
3. ``caffe-compat train --solver=examples/mnist/lenet_solver.prototxt``
   (Caffe's LeNet prototxt and solver, Data layers on the LMDBs);
4. print the final test accuracy (expected above 95%) and draw the loss curve
   with ``caffe-compat plot``.

Everything goes to ``examples/output/`` (git-ignored); a second run starts
afresh. Exit status 1 when the accuracy is not above 95%.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "examples" / "output"
SOLVER = "examples/mnist/lenet_solver.prototxt"
N_TEST = 360


def caffe_compat(*args: str, log: Path | None = None) -> str:
    """Run a ``caffe-compat`` subcommand from the repository root; echo and return its log."""
    cmd = [sys.executable, "-m", "caffe_compat", *args]
    print("$ caffe-compat " + " ".join(args), flush=True)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        sys.stdout.write(line)
        sys.stdout.flush()
    if proc.wait() != 0:
        sys.exit(f"caffe-compat {args[0]} failed with status {proc.returncode}")
    text = "".join(lines)
    if log is not None:
        log.write_text(text)
    return text


def digits_28x28() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as uint8 28x28 images (digit in the central 20x20)."""
    from sklearn.datasets import load_digits

    from caffe_compat.data.image import resize_linear

    digits = load_digits()
    small = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    out = np.zeros((len(small), 28, 28), dtype=np.uint8)
    for i, img in enumerate(small):
        out[i, 4:24, 4:24] = resize_linear(img[..., None], 20, 20)[..., 0]
    return out, digits.target.astype(np.int64)


def write_image_lists(images: np.ndarray, labels: np.ndarray) -> None:
    from PIL import Image

    order = np.random.default_rng(0).permutation(len(images))
    splits = {"test": order[:N_TEST], "train": order[N_TEST:]}
    for split, idx in splits.items():
        folder = OUT / "digits" / split
        folder.mkdir(parents=True)
        lines = []
        for k, i in enumerate(idx):
            name = f"{split}/{k:05d}.png"
            Image.fromarray(images[i]).save(OUT / "digits" / name)
            lines.append(f"{name} {labels[i]}")
        (OUT / "digits" / f"{split}.txt").write_text("\n".join(lines) + "\n")
        print(f"wrote {len(idx)} {split} images to {folder.relative_to(ROOT)}")


def main() -> int:
    start = time.time()
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    images, labels = digits_28x28()
    write_image_lists(images, labels)
    for split in ("train", "test"):
        caffe_compat("convert_imageset", "--gray", "--backend=lmdb", "examples/output/digits/",
                     f"examples/output/digits/{split}.txt", f"examples/output/digits_{split}_lmdb")
    train_log = OUT / "lenet_train.log"
    text = caffe_compat("train", f"--solver={SOLVER}", log=train_log)
    found = re.findall(r"Test net output #\d+: accuracy = ([-+0-9.eE]+)", text)
    if not found:
        sys.exit("no test accuracy in the training log")
    accuracy = float(found[-1])
    plot = OUT / "lenet_loss.png"
    caffe_compat("plot", str(train_log.relative_to(ROOT)), "-o", str(plot.relative_to(ROOT)),
                 "--title", "LeNet on scikit-learn digits (caffe-compat)")
    print()
    print(f"LeNet test accuracy on {N_TEST} held-out digits: {accuracy:.2%}")
    print(f"loss curve: {plot.relative_to(ROOT)}; log: {train_log.relative_to(ROOT)}")
    print(f"demo finished in {time.time() - start:.0f} s")
    if accuracy <= 0.95:
        print("expected an accuracy above 95%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
