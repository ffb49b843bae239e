"""pycaffe's ``caffe.io``: proto ⇄ array conversions, image loading and resizing, Transformer.

Matches ``python/caffe/io.py`` as it runs on a current stack (scikit-image 0.24,
SciPy, NumPy 1.26), without needing scikit-image or SciPy:

* ``load_image`` decodes with Pillow and converts as ``skimage.io.imread`` +
  ``img_as_float`` do (uint8 / 255, uint16 / 65535, grey as
  0.2125 R + 0.7154 G + 0.0721 B after blending RGBA onto white).
* ``resize_image`` reproduces ``skimage.transform.resize(..., mode='constant')``
  for 1- and 3-channel images (a Gaussian anti-aliasing blur with
  sigma = (in/out - 1)/2 when shrinking, then interpolation at half-pixel
  centres with zeros outside the image, clipped to [0, 1]) and
  ``scipy.ndimage.zoom`` for other channel counts. Orders 0 and 1 (the
  default) are computed here; spline orders 2-5 use SciPy when installed.
* Blob and Datum conversions read and write packed float runs as bytes, or
  through the protobuf API where that is as fast (no per-element Python loop),
  so a 100 MB mean file converts at memory speed.

Differences from Caffe (pycaffe): ``Transformer.preprocess`` never modifies the
caller's array (pycaffe scales a float32 input in place when no resize or
channel swap copies it first); CMYK/YCbCr images are converted to RGB and
grey+alpha images load as grey (pycaffe returned their raw channels); animated
images give their first frame; 2-D means of another size are resized (pycaffe
raised); a constant mean image is kept (pycaffe produced NaNs). Errors are
:class:`~caffe_compat.errors.CaffeCompatError` subclasses (pycaffe raised
bare ``Exception`` for unknown inputs and bad orders).
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .errors import BlobNotFoundError, DataError, ShapeError, UnsupportedError
from .proto import caffe_pb2, caffe_raw_pb2

__all__ = [
    "blobproto_to_array",
    "array_to_blobproto",
    "arraylist_to_blobprotovector_str",
    "blobprotovector_str_to_arraylist",
    "array_to_datum",
    "datum_to_array",
    "Transformer",
    "load_image",
    "resize_image",
    "oversample",
]


# =========================================================== proto <-> array
def _raw_values(raw: caffe_raw_pb2.RawBlobProto, diff: bool) -> np.ndarray:
    single, double = (raw.diff, raw.double_diff) if diff else (raw.data, raw.double_data)
    if single or not double:
        return np.frombuffer(single, dtype="<f4").astype(np.float64)
    return np.frombuffer(double, dtype="<f8").astype(np.float64)


def _blob_shape(blob: Any) -> tuple[int, ...]:
    if blob.HasField("num") or blob.HasField("channels") or blob.HasField("height") \
            or blob.HasField("width"):
        return (blob.num, blob.channels, blob.height, blob.width)  # legacy 4-d form
    return tuple(blob.shape.dim)


def _shaped(values: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    try:
        return values.reshape(shape)
    except ValueError:
        raise ShapeError(
            f"{what}: the blob holds {values.size} value(s) but its shape is {list(shape)}"
            + (" (no shape stored: give shape.dim or num/channels/height/width)" if not shape else "")
        ) from None


def _from_raw(raw: caffe_raw_pb2.RawBlobProto, return_diff: bool, what: str) -> np.ndarray:
    return _shaped(_raw_values(raw, return_diff), _blob_shape(raw), what)


def blobproto_to_array(blob: caffe_pb2.BlobProto, return_diff: bool = False) -> np.ndarray:
    """The blob's data (or diff) as a float64 array of the blob's shape.

    Legacy blobs (num/channels/height/width set) come back 4-d, as in pycaffe.
    """
    raw = caffe_raw_pb2.RawBlobProto.FromString(blob.SerializeToString())
    return _from_raw(raw, return_diff, "blobproto_to_array")


def _to_raw(arr: Any, diff: Any = None) -> caffe_raw_pb2.RawBlobProto:
    arr = np.asarray(arr)
    raw = caffe_raw_pb2.RawBlobProto()
    raw.shape.dim.extend(arr.shape)
    # pycaffe goes through float64 (``astype(float)``) before the float32 field.
    raw.data = np.ascontiguousarray(arr, dtype=np.float64).astype("<f4").tobytes()
    if diff is not None:
        raw.diff = np.ascontiguousarray(diff, dtype=np.float64).astype("<f4").tobytes()
    return raw


def array_to_blobproto(arr: np.ndarray, diff: np.ndarray | None = None) -> caffe_pb2.BlobProto:
    """A BlobProto with ``arr``'s shape and values (and ``diff`` if given)."""
    return caffe_pb2.BlobProto.FromString(_to_raw(arr, diff).SerializeToString())


def arraylist_to_blobprotovector_str(arraylist: Iterable[np.ndarray]) -> bytes:
    """A serialized BlobProtoVector of the arrays (as mean files store several)."""
    vec = caffe_raw_pb2.RawBlobProtoVector()
    vec.blobs.extend(_to_raw(a) for a in arraylist)
    # Re-serialize through caffe_pb2 so the bytes are exactly what pycaffe writes.
    return caffe_pb2.BlobProtoVector.FromString(vec.SerializeToString()).SerializeToString()


def blobprotovector_str_to_arraylist(str: bytes) -> list[np.ndarray]:  # noqa: A002 (pycaffe's name)
    """The arrays of a serialized BlobProtoVector."""
    data = str
    raw = caffe_raw_pb2.RawBlobProtoVector.FromString(data)
    out = []
    for i, blob in enumerate(raw.blobs):
        values = _raw_values(blob, False)
        shape = _blob_shape(blob)
        if values.size != int(np.prod(shape)) and not blob.data and not blob.double_data:
            # Values written unpacked (one tag per float) by an old writer: parse the slow way.
            return [blobproto_to_array(b) for b in caffe_pb2.BlobProtoVector.FromString(data).blobs]
        out.append(_shaped(values, shape, f"blobprotovector_str_to_arraylist: blob {i}"))
    return out


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


# Writing float_data as one packed run (tag, varint length, the floats) parsed by
# MergeFromString is 17-46x faster than ``float_data.extend(...)`` with protobuf 7's
# upb runtime (bench/bench_datum_proto.py); reading goes through the API, which is faster.
_FLOAT_DATA_PACKED = bytes([(6 << 3) | 2])  # Datum.float_data, length-delimited


def array_to_datum(arr: np.ndarray, label: int | None = None) -> caffe_pb2.Datum:
    """A Datum from a C×H×W array: uint8 arrays go to ``data`` bytes, others to ``float_data``."""
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise ShapeError(f"array_to_datum: expected a 3-d (channels, height, width) array, "
                         f"got shape {list(arr.shape)}")
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = arr.shape
    if arr.dtype == np.uint8:
        datum.data = arr.tobytes()
    else:
        payload = np.ascontiguousarray(arr, dtype=np.float64).astype("<f4").tobytes()
        # A packed run parses into the (unpacked) repeated field at C speed.
        datum.MergeFromString(_FLOAT_DATA_PACKED + _varint(len(payload)) + payload)
    if label is not None:
        datum.label = label
    return datum


def _float_data(datum: caffe_pb2.Datum) -> np.ndarray:
    return np.array(datum.float_data, dtype=np.float64)


def datum_to_array(datum: caffe_pb2.Datum) -> np.ndarray:
    """The Datum's values as a C×H×W array (uint8 for byte data, float64 for float_data).

    The label is not returned (read ``datum.label``).
    """
    shape = (datum.channels, datum.height, datum.width)
    if datum.encoded:
        raise DataError("datum_to_array: this Datum is encoded (compressed image bytes); "
                        "pycaffe's datum_to_array reads raw Datums only")
    if len(datum.data):
        values = np.frombuffer(datum.data, dtype=np.uint8).copy()
    else:
        values = _float_data(datum)
    return _shaped(values, shape, "datum_to_array")


# ============================================================== Transformer
class Transformer:
    """Turns H×W×K images into net inputs and back (pycaffe's ``caffe.io.Transformer``).

    ``inputs`` maps input names to their blob shapes (N, K, H, W). ``preprocess``
    applies, in order: float32, resize to (H, W), transpose, channel swap,
    ×raw_scale, −mean, ×input_scale; ``deprocess`` undoes them in reverse.
    """

    def __init__(self, inputs: Mapping[str, Sequence[int]]) -> None:
        self.inputs = inputs
        self.transpose: dict[str, Sequence[int]] = {}
        self.channel_swap: dict[str, Sequence[int]] = {}
        self.raw_scale: dict[str, float] = {}
        self.mean: dict[str, np.ndarray] = {}
        self.input_scale: dict[str, float] = {}

    def _check_input(self, in_: str) -> None:
        if in_ not in self.inputs:
            raise BlobNotFoundError(f"Transformer: {in_!r} is not one of the net inputs: "
                                    f"{list(self.inputs)}")

    def preprocess(self, in_: str, data: np.ndarray) -> np.ndarray:
        """``data`` (H'×W'×K) as a K×H×W float32 array for input ``in_``."""
        self._check_input(in_)
        caffe_in = np.array(data, dtype=np.float32)  # our own copy: the steps below work in place
        in_dims = tuple(self.inputs[in_][2:])
        if caffe_in.shape[:2] != in_dims:
            caffe_in = resize_image(caffe_in, in_dims)
        transpose = self.transpose.get(in_)
        if transpose is not None:
            caffe_in = caffe_in.transpose(transpose)
        channel_swap = self.channel_swap.get(in_)
        if channel_swap is not None:
            caffe_in = caffe_in[list(channel_swap), :, :]
        # In-place float32 arithmetic, as pycaffe does it (same rounding).
        if self.raw_scale.get(in_) is not None:
            caffe_in *= self.raw_scale[in_]
        if self.mean.get(in_) is not None:
            caffe_in -= self.mean[in_]
        if self.input_scale.get(in_) is not None:
            caffe_in *= self.input_scale[in_]
        return caffe_in

    def deprocess(self, in_: str, data: np.ndarray) -> np.ndarray:
        """Undo :meth:`preprocess` (the resize excepted); singleton axes are squeezed."""
        self._check_input(in_)
        decaf_in = np.array(data).squeeze()
        if self.input_scale.get(in_) is not None:
            decaf_in /= self.input_scale[in_]
        if self.mean.get(in_) is not None:
            decaf_in += self.mean[in_]
        if self.raw_scale.get(in_) is not None:
            decaf_in /= self.raw_scale[in_]
        channel_swap = self.channel_swap.get(in_)
        if channel_swap is not None:
            decaf_in = decaf_in[np.argsort(channel_swap), :, :]
        transpose = self.transpose.get(in_)
        if transpose is not None:
            decaf_in = decaf_in.transpose(np.argsort(transpose))
        return decaf_in

    def set_transpose(self, in_: str, order: Sequence[int]) -> None:
        """Axis order taking the image to the blob's, e.g. (2, 0, 1) for H×W×K → K×H×W."""
        self._check_input(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise ShapeError(f"Transformer.set_transpose({in_!r}): the order needs "
                             f"{len(self.inputs[in_]) - 1} axes (the input's, less the batch "
                             f"axis), got {len(order)}: {tuple(order)}")
        self.transpose[in_] = order

    def set_channel_swap(self, in_: str, order: Sequence[int]) -> None:
        """Channel order applied after the transpose, e.g. (2, 1, 0) for RGB → BGR."""
        self._check_input(in_)
        if len(order) != self.inputs[in_][1]:
            raise ShapeError(f"Transformer.set_channel_swap({in_!r}): the order needs one entry "
                             f"per input channel ({self.inputs[in_][1]}), got {len(order)}: "
                             f"{tuple(order)}")
        self.channel_swap[in_] = order

    def set_raw_scale(self, in_: str, scale: float) -> None:
        """Scale applied before the mean (255 for models trained on [0, 255] pixels)."""
        self._check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_: str, mean: np.ndarray) -> None:
        """Mean to subtract: one value per channel (K,) or an image (K×H×W or H×W).

        An image of another size is resized to the input's H×W.
        """
        self._check_input(in_)
        mean = np.asarray(mean)
        channels, in_hw = self.inputs[in_][1], tuple(self.inputs[in_][2:])
        if mean.ndim == 1:
            if mean.shape[0] != channels:
                raise ShapeError(f"Transformer.set_mean({in_!r}): {mean.shape[0]} mean value(s) "
                                 f"but the input has {channels} channel(s)")
            mean = mean[:, np.newaxis, np.newaxis]
        else:
            ms = (1,) + mean.shape if mean.ndim == 2 else mean.shape
            if len(ms) != 3:
                raise ShapeError(f"Transformer.set_mean({in_!r}): expected a mean of shape "
                                 f"(K,), (K, H, W) or (H, W), got {list(mean.shape)}")
            if ms != tuple(self.inputs[in_][1:]):
                mean = _resize_mean(mean.reshape(ms), in_hw)
        self.mean[in_] = mean

    def set_input_scale(self, in_: str, scale: float) -> None:
        """Scale applied after the mean subtraction."""
        self._check_input(in_)
        self.input_scale[in_] = scale


def _resize_mean(mean: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    m_min, m_max = mean.min(), mean.max()
    if m_max == m_min:
        return np.full((mean.shape[0],) + tuple(dims), m_min, dtype=np.float32)
    normal = (mean - m_min) / (m_max - m_min)
    resized = resize_image(normal.transpose((1, 2, 0)), dims).transpose((2, 0, 1))
    # numpy 1.x (pycaffe's) kept float32 here: scalars did not widen arrays.
    return resized * np.float32(m_max - m_min) + np.float32(m_min)


# ================================================================ image I/O
def _read_image(filename: str | os.PathLike[str]) -> np.ndarray:
    """Decoded pixels as ``skimage.io.imread`` (via imageio/Pillow) gives them."""
    from PIL import Image, UnidentifiedImageError

    try:
        im = Image.open(filename)
    except FileNotFoundError:
        raise DataError(f"load_image: {filename}: no such file") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"load_image: {filename}: cannot decode as an image ({exc})") from None
    with im:
        try:
            im.seek(0)
            mode = im.mode
            frame: Image.Image = im
            if mode in ("P", "PA"):
                has_alpha = mode == "PA" or (im.palette is not None and im.palette.mode == "RGBA")
                frame = im.convert("RGBA" if has_alpha else "RGB")
            elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                frame = im.convert("RGB")
            elif mode in ("RGBa", "La"):
                frame = im.convert(mode.upper())
            elif mode == "I;16B":
                frame = im.convert("I;16")
            arr = np.array(frame)
        except OSError as exc:
            raise DataError(f"load_image: {filename}: cannot decode as an image ({exc})") from None
    if arr.ndim == 3 and arr.shape[2] == 2:  # grey + alpha: keep the grey
        arr = arr[:, :, 0]
    return arr


def _as_float(arr: np.ndarray) -> np.ndarray:
    """``skimage.img_as_float``: integers scaled by their type's maximum."""
    if arr.dtype == bool:
        return arr.astype(np.float64)
    if arr.dtype.kind == "u":
        return np.multiply(arr, 1.0 / np.iinfo(arr.dtype).max, dtype=np.float64)
    if arr.dtype.kind == "i":
        return np.maximum(np.multiply(arr, 1.0 / np.iinfo(arr.dtype).max, dtype=np.float64), -1.0)
    return arr


def _to_gray(arr: np.ndarray) -> np.ndarray:
    if arr.ndim != 3:
        return arr
    rgb = _as_float(arr)
    if rgb.shape[2] == 4:  # blended onto a white background, as skimage's rgba2rgb
        alpha = rgb[:, :, 3:4]
        rgb = np.clip((1 - alpha) * 1.0 + alpha * rgb[:, :, :3], 0, 1)
    return rgb @ np.array([0.2125, 0.7154, 0.0721], dtype=rgb.dtype)


def load_image(filename: str | os.PathLike[str], color: bool = True) -> np.ndarray:
    """An image as float32 in [0, 1]: H×W×3 RGB, or H×W×1 with ``color=False``.

    ``color=False`` converts colour images to grey; grey images load as H×W×3
    with ``color=True`` (the grey value repeated).
    """
    arr = _read_image(filename)
    if not color:
        arr = _to_gray(arr)
    img = _as_float(arr).astype(np.float32)
    if img.ndim == 2:
        img = img[:, :, np.newaxis]
        if color:
            img = np.tile(img, (1, 1, 3))
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    return img


# ================================================================== resizing
def _axis_coords(n_in: int, n_out: int, grid: bool) -> np.ndarray:
    """Input coordinate of each output sample (as scipy.ndimage.zoom computes it)."""
    o = np.arange(n_out, dtype=np.float64)
    if grid:  # half-pixel centres
        return (o + 0.5) * (n_in / n_out) - 0.5
    step = (n_in - 1) / (n_out - 1) if n_out > 1 else 1.0
    return o * step


def _interp_matrix(n_in: int, n_out: int, order: int, grid: bool) -> np.ndarray:
    """The (n_out, n_in) order-0/1 interpolation map of one axis, with scipy.ndimage's edges.

    ``grid`` (skimage's 'grid-constant'): taps outside the image count as 0.
    Otherwise ('constant'): a sample whose coordinate lies outside [0, n-1] is 0;
    rounding can put the last one there (22 -> 20 samples), and SciPy zeroes it.
    """
    c = _axis_coords(n_in, n_out, grid)
    inside = np.ones(n_out, dtype=bool) if grid else (c >= 0) & (c <= n_in - 1)
    if order == 0:
        taps = [(np.clip(np.floor(c + 0.5).astype(np.intp), 0, n_in - 1), np.ones(n_out))]
    else:
        i0 = np.floor(c).astype(np.intp)
        taps = [(i0, 1.0 - (c - i0)), (i0 + 1, c - i0)]
    m = np.zeros((n_out, n_in))
    for idx, w in taps:
        ok = (idx >= 0) & (idx < n_in) & inside & (w != 0)
        np.add.at(m, (np.nonzero(ok)[0], idx[ok]), w[ok])
    return m


def _gaussian_rows(n_in: int, rows: np.ndarray, sigma: float) -> np.ndarray:
    """Rows ``rows`` of scipy's gaussian_filter1d (truncate 4, zero padding) as a matrix."""
    radius = int(4.0 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * offsets.astype(np.float64) ** 2)
    phi /= phi.sum()
    cols = rows[:, None] + offsets[None, :]
    ok = (cols >= 0) & (cols < n_in)
    m = np.zeros((len(rows), n_in))
    m[np.nonzero(ok)[0], cols[ok]] = np.broadcast_to(phi, cols.shape)[ok]
    return m


def _apply_axis(x: np.ndarray, m: np.ndarray, axis: int) -> np.ndarray:
    """``m`` applied along ``axis`` of ``x`` (float64), using only each row's band of taps."""
    n_out, n_in = m.shape
    nonzero = m != 0
    lo = np.where(nonzero.any(1), nonzero.argmax(1), 0)
    hi = np.where(nonzero.any(1), n_in - nonzero[:, ::-1].argmax(1), 0)
    width = max(1, int((hi - lo).max()))
    src = np.ascontiguousarray(np.moveaxis(x, axis, 0))  # rows gather fast; sums in float64
    out = np.zeros((n_out,) + src.shape[1:])
    bshape = (n_out,) + (1,) * (src.ndim - 1)
    for k in range(width):
        cols = lo + k
        w = np.where(cols < hi, m[np.arange(n_out), np.minimum(cols, n_in - 1)], 0.0)
        out += w.reshape(bshape) * src[np.minimum(cols, n_in - 1)]
    return np.moveaxis(out, 0, axis)


def _skimage_resize(im: np.ndarray, dims: tuple[int, int], order: int) -> np.ndarray:
    """``skimage.transform.resize(im, dims, order, mode='constant')`` for im in [0, 1]."""
    dtype = np.float32 if im.dtype in (np.float32, np.float16) else np.float64
    im = im.astype(dtype, copy=False)
    factors = [im.shape[a] / dims[a] for a in range(2)]
    if order > 1:
        ndi = _scipy_ndimage(order)
        out_shape = tuple(dims) + im.shape[2:]
        f = np.divide(im.shape, out_shape)
        if any(a > b for a, b in zip(im.shape, out_shape)):
            im = ndi.gaussian_filter(im, np.maximum(0, (f - 1) / 2), mode="grid-constant")
        out = ndi.zoom(im, 1 / f, order=order, mode="grid-constant", grid_mode=True)
    else:
        # skimage blurs axis 0, then axis 1 (each rounded to the image's dtype), then
        # interpolates. Only the rows and columns the interpolation reads are blurred.
        maps = [_interp_matrix(im.shape[a], dims[a], order, True) for a in range(2)]
        used = [np.nonzero(m.any(0))[0] for m in maps]
        x = im
        for axis in range(2):
            if factors[axis] > 1:
                blur = _gaussian_rows(im.shape[axis], used[axis], (factors[axis] - 1) / 2)
                x = _apply_axis(x, blur, axis).astype(dtype)
            else:
                x = np.take(x, used[axis], axis=axis)
        for axis in range(2):
            x = _apply_axis(x, maps[axis][:, used[axis]], axis)
        out = x.astype(dtype)
    return np.clip(out, 0, 1)


def _scipy_ndimage(order: int):
    try:
        import scipy.ndimage as ndi
    except ImportError:
        raise UnsupportedError(f"resize_image: interp_order={order} (spline interpolation) needs "
                               "SciPy (pip install scipy); orders 0 and 1 work without it") from None
    return ndi


def resize_image(im: np.ndarray, new_dims: Sequence[int], interp_order: int = 1) -> np.ndarray:
    """Resize an H×W×K image to ``new_dims`` = (height, width); float32 result.

    ``interp_order``: 0 nearest, 1 bilinear (default), 2-5 splines (SciPy).
    """
    im = np.asarray(im)
    dims = (int(new_dims[0]), int(new_dims[1]))
    if not 0 <= interp_order <= 5:
        raise ValueError(f"resize_image: interp_order must be 0..5, got {interp_order}")
    if im.ndim not in (2, 3):
        raise ShapeError(f"resize_image: expected an H×W×K image, got shape {list(im.shape)}")
    if im.shape[-1] in (1, 3):
        im_min, im_max = im.min(), im.max()
        if im_max > im_min:
            # Resized in [0, 1] and mapped back, as pycaffe does for scikit-image.
            im_std = (im - im_min) / (im_max - im_min)
            resized = _skimage_resize(im_std, dims, interp_order) * (im_max - im_min) + im_min
        else:  # a constant image: avoid dividing by 0
            return np.full(dims + im.shape[2:], im_min, dtype=np.float32)
    elif im.ndim != 3:
        raise ShapeError(f"resize_image: expected an H×W×K image, got shape {list(im.shape)}")
    elif interp_order > 1:
        scale = tuple(np.array(dims, dtype=float) / np.array(im.shape[:2]))
        resized = _scipy_ndimage(interp_order).zoom(im, scale + (1,), order=interp_order)
    else:  # scipy.ndimage.zoom: corner-aligned samples, no blur
        x = im
        for axis in range(2):
            x = _apply_axis(x, _interp_matrix(im.shape[axis], dims[axis], interp_order, False), axis)
        resized = x.astype(im.dtype) if im.dtype.kind == "f" else _round_to(x, im.dtype)
    return resized.astype(np.float32)


def _round_to(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """SciPy's cast of interpolated values to an integer image: half away from zero."""
    return np.trunc(x + np.copysign(0.5, x)).astype(dtype)


def oversample(images: Sequence[np.ndarray] | np.ndarray, crop_dims: Sequence[int] | np.ndarray
               ) -> np.ndarray:
    """The four corner crops, the centre crop and their mirror images: (10·N)×h×w×K float32."""
    im_shape = np.array(images[0].shape)
    crop = np.array(crop_dims)
    h, w = int(crop[0]), int(crop[1])
    if h > im_shape[0] or w > im_shape[1]:
        raise ShapeError(f"oversample: crop {h}×{w} is larger than the images "
                         f"({im_shape[0]}×{im_shape[1]})")
    # The centre crop's corners truncate toward zero, as pycaffe's int array does.
    centre = im_shape[:2] / 2.0
    y0, x0 = (centre - crop / 2.0).astype(int)
    starts = [(0, 0), (0, im_shape[1] - w), (im_shape[0] - h, 0),
              (im_shape[0] - h, im_shape[1] - w), (y0, x0)]
    out = np.empty((10 * len(images), h, w, im_shape[-1]), dtype=np.float32)
    for n, im in enumerate(images):
        crops = np.stack([im[y:y + h, x:x + w, :] for y, x in starts])
        out[10 * n:10 * n + 5] = crops
        out[10 * n + 5:10 * n + 10] = crops[:, :, ::-1, :]
    return out
