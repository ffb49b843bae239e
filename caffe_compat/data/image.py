"""Images as Caffe's OpenCV calls see them: decode, read, resize, encode.

Caffe reads images with OpenCV (``cv::imread`` / ``cv::imdecode``), resizes
them with ``cv::resize(..., INTER_LINEAR)`` and re-encodes them with
``cv::imencode``. Arrays here are what OpenCV's ``cv::Mat`` holds: ``uint8``
in (H, W, C) order with colour channels in **BGR** order, C = 1 (gray),
3 (BGR) or 4 (BGRA, only when decoding "unchanged").

Two backends, chosen by :func:`backend`:

* ``"opencv"`` (used when ``opencv-python-headless`` is installed:
  ``pip install caffe-compat[opencv]``): OpenCV's own ``imdecode``,
  ``resize`` and ``imencode``, so images decode, resize and encode as in
  Caffe by construction, colour JPEGs with chroma subsampling included.
* ``"pillow"`` (the fallback): Pillow, reproducing OpenCV's choices: colour
  JPEGs read as gray take libjpeg's Y plane (Pillow's ``draft("L")``),
  colour PNGs read as gray use libpng's truncating ``rgb_to_gray`` weights,
  other formats OpenCV's fixed-point BGR→gray; 16-bit gray PNGs keep their
  high byte; EXIF orientation is applied except for "unchanged" (as
  ``imdecode`` does); :func:`resize_linear` is bit-exact with OpenCV 4's
  8-bit ``INTER_LINEAR`` (11-bit fixed-point weights, the SIMD rounding of its
  vertical pass, and the switch to area averaging for an exact 2× shrink).
  Its differences from Caffe: colour JPEGs with chroma subsampling (4:2:0,
  4:2:2) decode through Pillow's libjpeg-turbo with other upsampling than
  OpenCV's build (channels differ by up to ~80 levels at sharp colour edges;
  4:4:4 JPEGs decode bit-exactly); :func:`encode` writes with Pillow (JPEG
  quality 95 as OpenCV's default), so re-encoded bytes differ from OpenCV's.

``CAFFE_COMPAT_IMAGE_BACKEND=pillow`` (or :func:`set_backend`) picks the
Pillow path even where OpenCV is installed.
"""

from __future__ import annotations

import io
import os
from contextlib import contextmanager
from typing import Any, Iterator, Union

import numpy as np

from ..errors import DataError, UnsupportedError

__all__ = [
    "IMREAD_UNCHANGED",
    "IMREAD_GRAYSCALE",
    "IMREAD_COLOR",
    "BACKENDS",
    "backend",
    "set_backend",
    "use_backend",
    "decode",
    "read",
    "read_image",
    "resize_linear",
    "encode",
]

IMREAD_UNCHANGED = -1
IMREAD_GRAYSCALE = 0
IMREAD_COLOR = 1

PathLike = Union[str, "os.PathLike[str]"]


BACKENDS = ("opencv", "pillow")
BACKEND_ENV = "CAFFE_COMPAT_IMAGE_BACKEND"
_chosen: str | None = None  # set_backend()'s choice; None: the environment, then what is installed
_cv2_module: Any = None
_cv2_tried = False


def _cv2() -> Any:
    """The ``cv2`` module, or None when OpenCV is not installed (imported once)."""
    global _cv2_module, _cv2_tried
    if not _cv2_tried:
        _cv2_tried = True
        try:
            import cv2

            _cv2_module = cv2
        except ImportError:
            _cv2_module = None
    return _cv2_module


def backend() -> str:
    """The image backend in use: ``"opencv"`` or ``"pillow"`` (see the module docstring)."""
    name = _chosen or os.environ.get(BACKEND_ENV, "").strip().lower() or None
    if name is None:
        return "opencv" if _cv2() is not None else "pillow"
    if name not in BACKENDS:
        raise UnsupportedError(f"{BACKEND_ENV}={name}: expected one of {', '.join(BACKENDS)}")
    if name == "opencv" and _cv2() is None:
        raise UnsupportedError("the OpenCV image backend needs opencv-python-headless "
                               "(pip install caffe-compat[opencv])")
    return name


def set_backend(name: str | None) -> None:
    """Use ``"opencv"`` or ``"pillow"`` for every image from now on (None: the default)."""
    global _chosen
    if name is not None and name not in BACKENDS:
        raise UnsupportedError(f"image backend {name!r}: expected one of {', '.join(BACKENDS)}")
    previous, _chosen = _chosen, name
    try:
        backend()  # an unusable choice fails here, not at the first image
    except UnsupportedError:
        _chosen = previous
        raise


@contextmanager
def use_backend(name: str | None) -> Iterator[str]:
    """:func:`set_backend` inside a ``with`` block."""
    global _chosen
    previous = _chosen
    set_backend(name)
    try:
        yield backend()
    finally:
        _chosen = previous


def _pil():
    from PIL import Image, ImageOps

    return Image, ImageOps


def decode(data: bytes, flag: int = IMREAD_COLOR, what: str = "<bytes>") -> np.ndarray:
    """``cv::imdecode(data, flag)``: an (H, W, C) uint8 array, BGR order."""
    if backend() == "opencv":
        return _cv_decode(data, flag, what)
    Image, ImageOps = _pil()
    try:
        img = Image.open(io.BytesIO(data))
        fmt = img.format or ""
        if flag == IMREAD_GRAYSCALE and fmt == "JPEG" and img.mode == "RGB":
            # OpenCV asks libjpeg for JCS_GRAYSCALE: the Y plane, no colour maths.
            img.draft("L", img.size)
        img.load()
        if flag != IMREAD_UNCHANGED and img.getexif().get(0x0112, 1) != 1:
            img = ImageOps.exif_transpose(img)  # OpenCV applies the EXIF orientation too
    except Exception as exc:  # Pillow raises many types for bad data
        raise DataError(f"{what}: cannot decode image data ({len(data)} bytes): "
                        f"{type(exc).__name__}: {exc}") from None
    return _to_array(img, fmt, flag, what)


def _to_array(img, fmt: str, flag: int, what: str) -> np.ndarray:
    mode = img.mode
    if mode == "1":
        img, mode = img.convert("L"), "L"
    if mode.startswith("I;16") or mode == "I":
        if flag == IMREAD_UNCHANGED:
            raise DataError(f"{what}: 16-bit image; Caffe needs 8-bit images (unsigned byte)")
        gray = (np.asarray(img).astype(np.int64) >> 8).astype(np.uint8)  # png_set_strip_16
        return _finish_gray(gray, flag)
    if mode in ("P", "PA"):
        alpha = mode == "PA" or "transparency" in img.info
        img, mode = img.convert("RGBA" if alpha else "RGB"), ("RGBA" if alpha else "RGB")
    elif mode == "RGB" and fmt == "PNG" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        try:
            img, mode = img.convert("RGB"), "RGB"
        except Exception as exc:
            raise DataError(f"{what}: unsupported image mode {img.mode}: {exc}") from None
    arr = np.asarray(img)
    if mode == "L":
        return _finish_gray(arr, flag)
    if mode == "LA":
        gray, alpha = arr[..., 0], arr[..., 1]
        if flag == IMREAD_UNCHANGED:
            return np.ascontiguousarray(np.stack([gray, gray, gray, alpha], axis=-1))
        return _finish_gray(gray, flag)
    rgb = arr[..., :3]
    if flag == IMREAD_GRAYSCALE:
        return _rgb_to_gray(rgb, fmt)[..., None]
    bgr = rgb[..., ::-1]
    if flag == IMREAD_UNCHANGED and mode == "RGBA":
        return np.ascontiguousarray(np.concatenate([bgr, arr[..., 3:]], axis=-1))
    return np.ascontiguousarray(bgr)


def _cv_decode(data: bytes, flag: int, what: str) -> np.ndarray:
    cv2 = _cv2()
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        img = cv2.imdecode(buf, flag) if buf.size else None
    except cv2.error as exc:
        img, why = None, str(exc).strip().splitlines()[-1]
    else:
        why = "not an image format OpenCV reads"
    if img is None:
        raise DataError(f"{what}: cannot decode image data ({len(data)} bytes): {why}")
    if img.dtype != np.uint8:
        raise DataError(f"{what}: {img.dtype.itemsize * 8}-bit image; Caffe needs 8-bit images "
                        "(unsigned byte)")
    return img[..., None] if img.ndim == 2 else img


def _finish_gray(gray: np.ndarray, flag: int) -> np.ndarray:
    gray = np.ascontiguousarray(gray, dtype=np.uint8)
    if flag == IMREAD_COLOR:
        return np.repeat(gray[..., None], 3, axis=-1)
    return gray[..., None]


def _rgb_to_gray(rgb: np.ndarray, fmt: str) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    if fmt == "PNG":
        # libpng's png_set_rgb_to_gray(0.299, 0.587) as OpenCV calls it:
        # coefficients 9797/19234/3737 of 32768, truncated, grays unchanged.
        y = (9797 * r + 19234 * g + 3737 * b) >> 15
    else:
        # OpenCV's icvCvt_BGR2Gray_8u (14-bit weights, rounded).
        y = (4899 * r + 9617 * g + 1868 * b + (1 << 13)) >> 14
    return y.astype(np.uint8)


def read(path: PathLike, flag: int = IMREAD_COLOR) -> np.ndarray:
    """``cv::imread(path, flag)``; a missing or unreadable file is a DataError."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot read image file: {exc.strerror or exc}") from None
    return decode(data, flag, str(path))


def read_image(path: PathLike, height: int = 0, width: int = 0, is_color: bool = True) -> np.ndarray:
    """Caffe's ``ReadImageToCVMat``: read as colour or gray, resize if both sizes > 0."""
    img = read(path, IMREAD_COLOR if is_color else IMREAD_GRAYSCALE)
    if height > 0 and width > 0:
        img = resize_linear(img, height, width)
    return img


# ------------------------------------------------------------------ resizing
_COEF_BITS = 11
_COEF_SCALE = 1 << _COEF_BITS


def _weights(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output index: first source index, and the float weights of the
    next and of the first source pixel (computed in float32 as OpenCV does)."""
    scale = 1.0 / (dst / src)  # OpenCV keeps inv_scale = dst/src and inverts it
    f = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    f = f - s.astype(np.float32)
    return s, f, np.float32(1) - f


def _fixed(w: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(w * np.float32(_COEF_SCALE)), -32768, 32767).astype(np.int32)


def resize_linear(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """``cv::resize(img, Size(width, height), 0, 0, INTER_LINEAR)`` for uint8 (H, W, C)."""
    if img.ndim == 2:
        return resize_linear(img[..., None], height, width)[..., 0]
    h, w, cn = img.shape
    if (h, w) == (height, width):
        return img.copy()
    if height <= 0 or width <= 0 or h == 0 or w == 0:
        raise DataError(f"resize: cannot resize a {h}x{w} image to {height}x{width}")
    if backend() == "opencv":
        cv2 = _cv2()
        out = cv2.resize(np.ascontiguousarray(img, dtype=np.uint8), (width, height),
                         interpolation=cv2.INTER_LINEAR)
        return out.reshape(height, width, cn)
    if h == 2 * height and w == 2 * width and cn in (1, 3, 4):
        # OpenCV switches INTER_LINEAR to area averaging for an exact 2x shrink.
        s = img.astype(np.int64)
        total = s[0::2, 0::2] + s[0::2, 1::2] + s[1::2, 0::2] + s[1::2, 1::2]
        return ((total + 2) >> 2).astype(np.uint8)
    sx, fx, gx = _weights(w, width)
    low, high = sx < 0, sx >= w - 1
    fx = np.where(low | high, np.float32(0), fx).astype(np.float32)
    gx = np.float32(1) - fx
    sx = np.clip(sx, 0, w - 1)
    a0, a1 = _fixed(gx), _fixed(fx)
    src = img.astype(np.int32)  # 255 * 2048 * 2 fits easily
    rows = src[:, sx, :] * a0[None, :, None] + src[:, np.minimum(sx + 1, w - 1), :] * a1[None, :, None]
    sy, fy, gy = _weights(h, height)
    b0, b1 = _fixed(gy)[:, None], _fixed(fy)[:, None]
    r0 = rows[np.clip(sy, 0, h - 1)].reshape(height, width * cn)
    r1 = rows[np.clip(sy + 1, 0, h - 1)].reshape(height, width * cn)
    # OpenCV's vertical pass (VResizeLinearVec_32s8u) drops 4 bits before the
    # 16-bit multiply and rounds at the end, on every element of the row.
    out = ((((r0 >> 4) * b0) >> 16) + (((r1 >> 4) * b1) >> 16) + 2) >> 2
    return np.clip(out, 0, 255).astype(np.uint8).reshape(height, width, cn)


# ------------------------------------------------------------------ encoding
_FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "bmp": "BMP", "tif": "TIFF",
            "tiff": "TIFF", "ppm": "PPM", "pgm": "PPM", "webp": "WEBP"}


def encode(img: np.ndarray, ext: str) -> bytes:
    """``cv::imencode("." + ext, img)``: BGR/gray uint8 (H, W, C) → file bytes."""
    key = ext.lower().lstrip(".")
    fmt = _FORMATS.get(key)
    if fmt is None:
        raise DataError(f'cannot encode images as "{ext}"; known: {", ".join(sorted(_FORMATS))}')
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if backend() == "opencv":
        cv2 = _cv2()
        try:
            ok, buf = cv2.imencode("." + key, np.ascontiguousarray(arr))
        except cv2.error as exc:
            ok, buf = False, str(exc).strip().splitlines()[-1]
        if not ok:
            raise DataError(f"cannot encode a {'x'.join(map(str, arr.shape))} image as {ext}: {buf}")
        return buf.tobytes()
    Image, _ = _pil()
    if arr.ndim == 3:
        arr = arr[..., 2::-1] if arr.shape[2] == 3 else arr[..., [2, 1, 0, 3]]
    pil = Image.fromarray(np.ascontiguousarray(arr))
    buf = io.BytesIO()
    options = {"JPEG": {"quality": 95}, "PNG": {"compress_level": 1}}.get(fmt, {})
    pil.save(buf, format=fmt, **options)
    return buf.getvalue()
