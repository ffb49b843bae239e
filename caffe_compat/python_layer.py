"""pycaffe's Python-layer API: ``caffe.Layer`` and the blobs such a layer sees.

A user's layer (pycaffe's ``python/caffe/_caffe.cpp`` ``Layer`` class and
``include/caffe/layers/python_layer.hpp``)::

    class MyLayer(caffe.Layer):
        def setup(self, bottom, top): ...        # once; self.param_str, self.phase set
        def reshape(self, bottom, top): ...      # before every forward
        def forward(self, bottom, top): ...      # numpy on bottom[i].data -> top[j].data
        def backward(self, top, propagate_down, bottom): ...   # top diffs -> bottom diffs

``bottom``/``top`` are lists of :class:`~caffe_compat.blob.Blob` with writable
numpy ``data``/``diff``; ``self.blobs.add_blob(*shape)`` creates a learnable
parameter blob (zero-filled) that the net lists in ``net.params``, the solver
updates and ``.caffemodel`` files store. The net-side bridge that runs such a
layer inside autograd is :mod:`caffe_compat.layers.python.python`.

Also here: the errors a Python layer reports, and the helpers that keep the
host copies of its blobs in step with the device (CUDA).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from . import blob as _blob_module
from .blob import Blob, ParamBlob, as_shape
from .errors import LayerError, ShapeError
from .proto import caffe_pb2

__all__ = [
    "Layer",
    "Phase",
    "BlobVec",
    "LayerParamBlob",
    "PythonLayerError",
    "PythonLayerImportError",
    "PythonLayerClassError",
    "user_error",
    "load_stored",
]


# ------------------------------------------------------------------ errors
class PythonLayerError(LayerError):
    """A Python layer could not be loaded, or its code raised."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class PythonLayerImportError(PythonLayerError, ImportError):
    """The module named by ``python_param.module`` (or ``.caffeinit``) cannot be found."""

    def __init__(self, message: str = "", name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


class PythonLayerClassError(PythonLayerError, AttributeError):
    """The module has no class named by ``python_param.layer``."""


_WRAPPED: dict[type, "type | None"] = {}


def user_error(exc: BaseException, message: str) -> BaseException:
    """An exception for ``exc`` (raised by a user's layer code) naming the layer.

    The result is an instance of a subclass of *both* ``type(exc)`` and
    :class:`PythonLayerError`, so ``except RuntimeError`` (what pycaffe
    scripts catch: Caffe propagates the Python exception unchanged) and
    ``except caffe_compat.errors.LayerError`` both work, and ``str()`` names
    the layer. Where no such subclass can be made (exception types with a
    special constructor), ``exc`` itself is returned with ``message`` as a note.
    """
    base = type(exc)
    if not isinstance(exc, Exception):
        return exc
    if base not in _WRAPPED and issubclass(PythonLayerError, base):
        _WRAPPED[base] = PythonLayerError  # ValueError, Exception: already one
    if base not in _WRAPPED:
        try:
            _WRAPPED[base] = type(base.__name__, (base, PythonLayerError), {
                "__module__": base.__module__,
                "__qualname__": base.__qualname__,
                "__str__": PythonLayerError.__str__,
            })
        except TypeError:  # incompatible layouts
            _WRAPPED[base] = None
    cls = _WRAPPED[base]
    if cls is not None:
        try:
            new = cls(message)
            new.__cause__ = exc
            return new
        except Exception:  # noqa: BLE001 - constructor wants other arguments
            pass
    if hasattr(exc, "add_note"):
        exc.add_note(message)
    return exc


# ------------------------------------------------------- host/device sync
def settle(blob: Blob, data: bool, diff: bool) -> None:
    """After user code ran: upload the host copies it may have written.

    ``data``/``diff`` say whether writes to that half count (a top's data, a
    bottom's diff, a parameter's data); the other half's host copy is only
    forgotten, so nothing is written back into tensors autograd holds. On
    the CPU (no host mirrors) this does nothing.
    """
    if blob._mdata is None and blob._mdiff is None:
        return
    for slot, keep, t in (("_mdata", data, blob._t), ("_mdiff", diff, blob._diff_for_upload())):
        mirror = getattr(blob, slot)
        if mirror is None or not mirror.host_newer:
            continue
        mirror.host_newer = False
        if keep and t is not None and tuple(t.shape) == mirror.array.shape:
            with torch.no_grad():
                t.detach().copy_(torch.from_numpy(mirror.array))
            mirror.source, mirror.version = t, t._version
    _blob_module._pending_uploads.discard(blob)


def bind(blob: Blob, tensor: torch.Tensor) -> None:
    """Make ``blob`` show ``tensor`` (no copy), with no diff yet."""
    blob._t = tensor
    blob._shape = tuple(tensor.shape)
    blob._device = tensor.device
    blob._diff = None


# -------------------------------------------------------------- parameters
class LayerParamBlob(ParamBlob):
    """A parameter blob of a Python layer.

    Outside the layer's ``backward`` its diff is the parameter's gradient
    (what ``net.params`` shows). During ``backward`` the layer sees a host
    scratch copy of that gradient; what it writes there is handed to autograd
    (see :mod:`caffe_compat.layers.python._numpy_bridge`).
    """

    __slots__ = ("scratch",)

    def __init__(self, tensor: torch.Tensor) -> None:
        super().__init__(tensor)
        self.scratch: np.ndarray | None = None

    @property
    def diff(self) -> np.ndarray:
        if self.scratch is not None:
            return self.scratch
        return ParamBlob.diff.fget(self)  # type: ignore[attr-defined]

    @diff.setter
    def diff(self, value: np.ndarray) -> None:
        self.diff[...] = value


class BlobVec(list):
    """``self.blobs`` of a Python layer (pycaffe's ``BlobVec`` with ``add_blob``)."""

    def __init__(self) -> None:
        super().__init__()
        self._frozen: str | None = None

    def add_blob(self, *shape: Any) -> None:
        """Append a zero-filled learnable blob of ``shape`` (pycaffe: ints)."""
        if self._frozen:
            raise PythonLayerError(
                f"{self._frozen}: add_blob() called after the net collected this layer's "
                "parameters; add parameter blobs in setup() (or the first reshape())"
            )
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        dims = as_shape(shape, "add_blob")
        value = torch.zeros(dims, dtype=torch.float32)
        self.append(LayerParamBlob(torch.nn.Parameter(value, requires_grad=True)))

    def freeze(self, where: str) -> None:
        self._frozen = where


def load_stored(host: Any, tensor: torch.Tensor, proto: caffe_pb2.BlobProto, index: int) -> None:
    """Copy a blob stored in the layer's LayerParameter into ``tensor`` (shapes checked)."""
    from .layers.base import _legacy_equal, blob_proto_to_tensor

    value = blob_proto_to_tensor(proto)
    if not _legacy_equal(tuple(value.shape), tuple(tensor.shape)):
        raise host.error(f"stored blob {index} has shape {list(value.shape)}, the layer made "
                         f"{list(tensor.shape)}", ShapeError)
    with torch.no_grad():
        tensor.copy_(value.reshape(tensor.shape))


# ------------------------------------------------------------------ phase
class Phase(int):
    """``self.phase`` of a Python layer: the int pycaffe gives, named by ``str()``.

    ``self.phase == caffe.TRAIN``, ``int(self.phase)``, indexing and hashing
    behave as the plain int upstream pycaffe sets; ``str(self.phase)`` (and
    ``f"{self.phase}"``) is ``'TRAIN'``/``'TEST'``, which py-faster-rcnn's Caffe
    fork gives (its layers read ``cfg[str(self.phase)]``; with an upstream
    pycaffe they fail with ``KeyError: '0'``). ``repr()`` is ``caffe.TRAIN``.
    """

    __slots__ = ()

    def __new__(cls, value: int) -> "Phase":
        if type(value) is cls:
            return value  # type: ignore[return-value]
        number = int(value)
        if number not in _PHASE_NAMES:
            raise ValueError(f"phase must be caffe.TRAIN (0) or caffe.TEST (1), got {value!r}")
        return super().__new__(cls, number)

    def __str__(self) -> str:
        return _PHASE_NAMES[int(self)]

    def __repr__(self) -> str:
        return f"caffe.{_PHASE_NAMES[int(self)]}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Phase, (int(self),))


_PHASE_NAMES: dict[int, str] = {int(caffe_pb2.TRAIN): "TRAIN", int(caffe_pb2.TEST): "TEST"}


# ------------------------------------------------------------------ layer
class Layer:
    """Base class of Python layers (pycaffe's ``caffe.Layer``).

    Caffe instantiates the class with the layer's ``LayerParameter``, then
    sets ``param_str`` and ``phase`` and calls ``setup`` once, ``reshape``
    before every ``forward``, and ``backward`` when gradients are needed.
    Override ``setup``, ``reshape``, ``forward`` and ``backward``.
    """

    #: what ``layer.type`` says in Caffe for every Python layer
    type = "Python"

    def __init__(self, param: caffe_pb2.LayerParameter | None = None) -> None:
        self.layer_param = param
        self.param_str: str = param.python_param.param_str if param is not None else ""
        self.phase: int = Phase(param.phase if param is not None else caffe_pb2.TRAIN)
        self.blobs = BlobVec()

    @property
    def param_str_(self) -> str:
        """The name older pycaffe used (py-faster-rcnn's layers read it)."""
        return self.param_str

    @param_str_.setter
    def param_str_(self, value: str) -> None:
        self.param_str = value

    def setup(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Check the bottoms, read ``self.param_str``, create ``self.blobs``."""

    def reshape(self, bottom: list[Blob], top: list[Blob]) -> None:
        """Reshape the tops for the current bottoms (called before every forward)."""

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        raise NotImplementedError(f"{type(self).__qualname__} does not define forward(bottom, top)")

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        raise NotImplementedError(
            f"{type(self).__qualname__} does not define backward(top, propagate_down, bottom), "
            "but a gradient is needed through it"
        )


def is_real_pycaffe_class(cls: type) -> bool:
    """Whether ``cls`` derives from a compiled pycaffe's ``caffe.Layer``."""
    return any(getattr(k, "__module__", "") in ("caffe._caffe", "_caffe") for k in cls.__mro__)


def describe_class(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
