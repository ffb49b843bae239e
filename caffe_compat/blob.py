"""Blob: pycaffe's N-d array with ``data`` and ``diff`` numpy views.

This module is the one place where numpy meets torch. Layers only ever see
torch tensors; users only ever see numpy arrays from :attr:`Blob.data` and
:attr:`Blob.diff`.

* On the CPU those arrays are views of the tensors' memory: writing
  ``blob.data[...] = x`` changes what the next forward reads, and nothing is
  copied.
* On CUDA they are host mirrors kept in step the way Caffe's SyncedMemory
  does it: a read copies device→host only when the device copy is newer, and
  because the returned array is writable, the host copy then counts as the
  newer one and is uploaded before the next forward/backward/update touches
  the blob (:func:`flush_host_writes`). Nothing is copied for blobs nobody
  looked at.

A blob's *data* tensor is rebound by each forward (intermediate results are
the tensors autograd produced, not copied into a persistent buffer), and its
diff by each backward. Caffe's buffers persist, and scripts keep arrays across
passes (``conv0 = net.blobs['conv'].data[0, 0]``, the dict ``forward()``
returned). So a blob remembers, by weak reference, the last array it handed
out; while that array is alive, the end of a forward (backward) writes the new
data (diff) into it and the blob adopts its memory (:func:`settle_handouts`).
Arrays nobody kept cost nothing. On CUDA the host mirror is already one
persistent array per blob, refreshed when read, as pycaffe's is.

``reshape`` keeps the contents when the new count fits the memory the blob
holds (Caffe's ``Blob::Reshape`` keeps its buffer and capacity, for data and
diff); growing past it gives zeros, as Caffe's fresh SyncedMemory.
"""

from __future__ import annotations

import weakref
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from .errors import BlobReleasedError, ShapeError

__all__ = ["Blob", "flush_host_writes", "settle_handouts", "as_shape", "param_written"]

_INT_MAX = 2**31 - 1

# Blobs whose host mirror may hold writes not yet on the device (CUDA only).
_pending_uploads: set["Blob"] = set()

# Blobs that handed out a CPU array which may still be alive (see settle_handouts).
_handed_out: "weakref.WeakSet[Blob]" = weakref.WeakSet()

# A parameter's numpy array writes straight into its tensor's memory, which torch's
# in-place version counter does not see. What a plan derives from the weights
# (plans/inference.py: packed convolution weights, BatchNorm folded into them) is
# checked against these (param_written): per storage address, the serial number of
# the last array handed out, and how many such arrays are alive.
_param_serial = 0
_param_serials: dict[int, int] = {}
_param_live: dict[int, int] = {}

# Tests set this to run the CUDA host-mirror code path on CPU tensors, so the
# SyncedMemory semantics are checked on machines without a GPU.
_MIRROR_CPU = False


def as_shape(dims: Iterable[int], what: str = "blob") -> tuple[int, ...]:
    """Validate dims the way Blob::Reshape does and return them as a tuple."""
    shape = tuple(int(d) for d in dims)
    for d in shape:
        if d < 0:
            raise ShapeError(f"{what}: negative dimension in shape {list(shape)}")
    if len(shape) > 32:
        raise ShapeError(f"{what}: {len(shape)} axes, Caffe allows at most 32")
    count = 1
    for d in shape:
        count *= d
    if count > _INT_MAX:
        raise ShapeError(f"{what}: shape {list(shape)} has {count} elements, more than "
                         f"INT_MAX = {_INT_MAX} (Caffe's limit for one blob)")
    return shape


def flush_host_writes() -> None:
    """Upload every host mirror that may have been written since it was read."""
    if not _pending_uploads:
        return
    for blob in list(_pending_uploads):
        blob._upload()
    _pending_uploads.clear()


def settle_handouts(diff: bool = False, read_ptrs: set[int] | None = None) -> None:
    """After a forward (``diff=False``) or backward (``diff=True``): write each blob's new
    data (diff) into the array it last handed out, where that array is still alive, and let
    the blob use that memory from now on, as Caffe's one buffer per blob.

    ``read_ptrs``: the addresses of the bottoms the pass read; memory one of them uses is
    never overwritten (a partial forward's in-place layer reading a kept array), the blob
    then lets go of its array instead.
    """
    if not _handed_out:
        return
    for blob in list(_handed_out):
        slot = "_hdiff" if diff else "_hdata"
        ref = getattr(blob, slot)
        arr = ref() if ref is not None else None
        if arr is None:
            setattr(blob, slot, None)
            if blob._hdata is None and blob._hdiff is None:
                _handed_out.discard(blob)
            continue
        t = blob._diff if diff else blob._t
        if t is None:
            if diff and arr.shape == blob.shape:
                arr[...] = 0  # a diff the pass replaced by zeros
                blob._diff = torch.from_numpy(arr)
            continue
        if t.device.type != "cpu" or t.dtype is not torch.float32:
            continue
        if arr.__array_interface__["data"][0] == t.data_ptr() and arr.shape == tuple(t.shape):
            continue  # already its memory
        if not arr.flags.writeable or arr.__array_interface__["data"][0] in (read_ptrs or ()) \
                or (arr.shape != tuple(t.shape) and not (arr.flags.c_contiguous and arr.size >= t.numel())):
            setattr(blob, slot, None)  # in use, or grown past it: the old array keeps its values
            continue
        if arr.shape == tuple(t.shape):
            np.copyto(arr, t.detach().numpy())
            kept = torch.from_numpy(arr)
        else:  # reshaped smaller since: Caffe's buffer holds the new values first
            kept = torch.from_numpy(arr.reshape(-1)[:t.numel()]).view(t.shape)
            kept.copy_(t.detach())
        if diff:
            blob._diff = kept
        else:
            blob._t = kept


def param_written(t: torch.Tensor) -> int | None:
    """When numpy may last have written parameter ``t``: the serial number of the last
    array of its memory handed out (0: never), or None while such an array is alive
    (it can be written at any time)."""
    ptr = t.untyped_storage().data_ptr()
    return None if ptr in _param_live else _param_serials.get(ptr, 0)


def note_param_write(t: torch.Tensor) -> None:
    """Record a write into ``t`` made through numpy (not seen by torch's version counter)."""
    global _param_serial
    _param_serial += 1
    _param_serials[t.untyped_storage().data_ptr()] = _param_serial


def param_serial() -> int:
    """Bumped by every parameter array handed out: while it and the live count stay put,
    no parameter was written through numpy (the cheap check before param_written)."""
    return _param_serial if not _param_live else -1


def _param_array_gone(ptr: int) -> None:
    n = _param_live.get(ptr, 0) - 1
    if n > 0:
        _param_live[ptr] = n
    else:
        _param_live.pop(ptr, None)


def _forget_array(blob: "Blob", slot: str):  # type: ignore[no-untyped-def]
    """A callback for when a handed-out array dies: the blob leaves ``_handed_out`` as soon
    as it keeps no live array, so a forward that nobody watches costs nothing."""
    owner = weakref.ref(blob)

    def gone(ref: "weakref.ref[np.ndarray]") -> None:
        b = owner()
        if b is None or getattr(b, slot) is not ref:
            return
        setattr(b, slot, None)
        if b._hdata is None and b._hdiff is None:
            _handed_out.discard(b)

    return gone


def _refit(t: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor | None:
    """``t``'s memory seen with ``shape`` when the count fits (Caffe's Reshape within
    capacity: the first ``count`` values stay, in memory order), else None (zeros)."""
    if t is None:
        return None
    count = 1
    for d in shape:
        count *= d
    t = t.detach()
    if count <= t.numel():
        flat = t.view(-1) if t.is_contiguous() else t.reshape(-1)
        return flat[:count].view(shape)
    if t.is_contiguous() and t.storage_offset() == 0 and t.dtype is torch.float32:
        storage = t.untyped_storage()
        capacity = storage.nbytes() // 4
        if count <= capacity:  # a blob shrunk earlier: its capacity is still there
            whole = torch.empty(0, dtype=t.dtype, device=t.device).set_(storage, 0, (capacity,), (1,))
            return whole[:count].view(shape)
    return None


class _Mirror:
    """Host copy of a CUDA tensor (one for data, one for diff) and its state.

    ``source``/``version`` name the device tensor (and its in-place version
    counter) the array last agreed with; ``host_newer`` marks an array handed
    out to the user, which must be uploaded before the device copy is used.
    """

    __slots__ = ("array", "source", "version", "host_newer")

    def __init__(self) -> None:
        self.array: np.ndarray | None = None
        self.source: torch.Tensor | None = None
        self.version = -1
        self.host_newer = False


class Blob:
    """A named N-d array of float32 with a gradient, as pycaffe shows it."""

    __slots__ = ("_t", "_diff", "_shape", "_device", "_mdata", "_mdiff", "_released", "_name",
                 "_hdata", "_hdiff", "_forget", "__weakref__")

    def __init__(self, shape: Sequence[int] = (), device: torch.device | str = "cpu") -> None:
        if isinstance(shape, int):
            shape = (shape,)
        self._shape: tuple[int, ...] = as_shape(shape)
        self._device = torch.device(device)
        self._t: torch.Tensor | None = None
        self._diff: torch.Tensor | None = None
        self._mdata: _Mirror | None = None
        self._mdiff: _Mirror | None = None
        #: set when a lean training step or a plan that computes only the outputs dropped
        #: this intermediate (see release()); a string says why
        self._released: bool | str = False
        self._name: str | None = None  # the net's name for it, for messages
        # weak references to the last CPU arrays handed out (see settle_handouts)
        self._hdata: weakref.ref[np.ndarray] | None = None
        self._hdiff: weakref.ref[np.ndarray] | None = None
        self._forget: dict[str, Any] | None = None  # the two weakref callbacks, made once

    # ------------------------------------------------------------------ tensors
    @classmethod
    def wrap(cls, tensor: torch.Tensor) -> "Blob":
        """A blob whose data is ``tensor`` (shared, not copied)."""
        blob = cls(tuple(tensor.shape), tensor.device)
        blob._t = tensor
        return blob

    @property
    def tensor(self) -> torch.Tensor:
        """The data as a torch tensor (allocated as zeros on first use)."""
        t = self._t
        if t is None:
            if self._released:
                raise BlobReleasedError(
                    self._released if isinstance(self._released, str) else
                    "this blob's data was released after a training step to save memory "
                    "(caffe.accelerate(..., lean_memory=True)); run net.forward() to compute it again"
                )
            t = self._t = torch.zeros(self._shape, dtype=torch.float32, device=self._device)
        return t

    @tensor.setter
    def tensor(self, value: torch.Tensor) -> None:
        self._t = value
        self._shape = tuple(value.shape)

    def release(self, why: str | None = None) -> None:
        """Drop the data tensor (an intermediate result) so autograd can free it;
        reading the blob raises (with ``why``, when given) until the next forward
        writes it again."""
        t = self._t
        if t is not None:
            self._shape = tuple(t.shape)
            self._t = None
        if t is not None or why:
            self._released = why or True

    @property
    def diff_tensor(self) -> torch.Tensor:
        """The gradient as a torch tensor (zeros until something writes it)."""
        d = self._fitted_diff()
        if d is None:
            d = self._diff = torch.zeros(self.shape, dtype=torch.float32, device=self._device)
        return d

    @diff_tensor.setter
    def diff_tensor(self, value: torch.Tensor) -> None:
        self._diff = value

    def _fitted_diff(self) -> torch.Tensor | None:
        """The diff kept for the current shape: after a reshape, what of Caffe's buffer is
        left (:func:`_refit`); None when there is none (or it is on another device)."""
        d = self._diff
        if d is None or d.device != self._device:
            return None
        shape = self.shape
        if tuple(d.shape) != shape:
            d = self._diff = _refit(d, shape)  # the top was reshaped: Caffe's diff keeps its buffer
        return d

    @property
    def has_diff(self) -> bool:
        """Whether a gradient was written (by backward or by the user)."""
        return self._fitted_diff() is not None

    # ------------------------------------------------------------ numpy views
    @property
    def data(self) -> np.ndarray:
        t = self.tensor
        if t.dtype is not torch.float32:
            # Reduced precision (opt-in autocast): a float32 copy, read-only in effect.
            return t.detach().float().cpu().numpy()
        if t.device.type == "cpu" and not _MIRROR_CPU:
            return self._hand_out("_hdata", t)
        return self._host("_mdata", t)

    @data.setter
    def data(self, value: np.ndarray) -> None:
        # pycaffe raises here; assigning a whole array is the common mistake
        # this catches (``blob.data = x`` instead of ``blob.data[...] = x``).
        self.data[...] = value

    @property
    def diff(self) -> np.ndarray:
        d = self.diff_tensor
        if d.device.type == "cpu" and not _MIRROR_CPU:
            return self._hand_out("_hdiff", d)
        return self._host("_mdiff", d)

    @diff.setter
    def diff(self, value: np.ndarray) -> None:
        self.diff[...] = value

    def _hand_out(self, slot: str, t: torch.Tensor) -> np.ndarray:
        if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
            # A channels-last result (the inference plan's convolutions): pycaffe's arrays
            # are C-contiguous, so the blob takes an NCHW copy, made once, on this read.
            t = t.contiguous()
            if slot == "_hdata":
                self._t = t
            else:
                self._diff = t
        ref = getattr(self, slot)
        if ref is not None:
            arr = ref()
            if arr is not None and arr.__array_interface__["data"][0] == t.data_ptr() \
                    and arr.shape == tuple(t.shape) and arr.strides == tuple(4 * x for x in t.stride()):
                return arr
        arr = t.detach().numpy()
        forget = self._forget
        if forget is None:
            forget = self._forget = {s: _forget_array(self, s) for s in ("_hdata", "_hdiff")}
        setattr(self, slot, weakref.ref(arr, forget[slot]))
        _handed_out.add(self)
        return arr

    def _host(self, slot: str, t: torch.Tensor) -> np.ndarray:
        mirror = getattr(self, slot)
        if mirror is None:
            mirror = _Mirror()
            setattr(self, slot, mirror)
        shape = tuple(t.shape)
        if mirror.array is None or mirror.array.shape != shape:
            mirror.array = np.empty(shape, dtype=np.float32)
            mirror.source = None
            mirror.host_newer = False
        if not mirror.host_newer and (mirror.source is not t or mirror.version != t._version):
            mirror.array[...] = t.detach().cpu().numpy()  # the one device→host copy
            mirror.source, mirror.version = t, t._version
        # The array handed out is writable: from now on the host copy counts as
        # the newer one, as after Caffe's mutable_cpu_data().
        mirror.host_newer = True
        _pending_uploads.add(self)
        return mirror.array

    def _upload(self) -> None:
        for slot, t in (("_mdata", self._t), ("_mdiff", self._diff_for_upload())):
            mirror = getattr(self, slot)
            if mirror is None or not mirror.host_newer:
                continue
            mirror.host_newer = False
            if t is None or tuple(t.shape) != mirror.array.shape:
                mirror.array = None
                continue
            with torch.no_grad():
                t.detach().copy_(torch.from_numpy(mirror.array))
            mirror.source, mirror.version = t, t._version

    def _diff_for_upload(self) -> torch.Tensor | None:
        return self._diff

    # ------------------------------------------------------------------ shape
    @property
    def shape(self) -> tuple[int, ...]:
        t = self._t
        return tuple(t.shape) if t is not None else self._shape

    @property
    def count(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def num_axes(self) -> int:
        return len(self.shape)

    def _legacy(self, index: int) -> int:
        shape = self.shape
        if len(shape) > 4:
            raise ShapeError(
                f"Cannot use legacy accessors on a blob with {len(shape)} axes "
                f"(shape {list(shape)}); use .shape"
            )
        if index >= len(shape):
            return 1
        return shape[index]

    @property
    def num(self) -> int:
        return self._legacy(0)

    @property
    def channels(self) -> int:
        return self._legacy(1)

    @property
    def height(self) -> int:
        return self._legacy(2)

    @property
    def width(self) -> int:
        return self._legacy(3)

    def reshape(self, *dims: int) -> None:
        """Change the shape; contents are zero unless the shape is unchanged."""
        if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
            dims = tuple(dims[0])
        shape = as_shape(dims, f'blob "{self._name}"' if self._name else "blob")
        if shape == self.shape and self._t is not None:
            return
        self._resize(shape)

    def _resize(self, shape: tuple[int, ...]) -> None:
        """Caffe's ``Blob::Reshape``: contents kept where the count fits, else zeros."""
        self._flush_mirrors()
        self._shape = shape
        self._replace(_refit(self._t, shape))
        self._released = False
        self._diff = _refit(self._diff_for_upload(), shape)
        self._forget_mirrors()

    def _flush_mirrors(self) -> None:
        if self in _pending_uploads:
            self._upload()
            _pending_uploads.discard(self)

    def _forget_mirrors(self) -> None:
        for mirror in (self._mdata, self._mdiff):
            if mirror is not None:
                mirror.array = None
                mirror.host_newer = False

    def _replace(self, t: torch.Tensor | None) -> None:
        self._t = t

    def to(self, device: torch.device) -> None:
        """Move data and diff to ``device`` (used when the run mode changes)."""
        flush_host_writes()
        self._device = torch.device(device)
        if self._t is not None and self._t.device != self._device:
            self._t = self._t.detach().to(self._device)
        if self._diff is not None and self._diff.device != self._device:
            self._diff = self._diff.to(self._device)
        self._forget_mirrors()

    @property
    def device(self) -> torch.device:
        return self._device

    def __repr__(self) -> str:
        return f"<Blob shape={list(self.shape)} device={self._device}>"


class ParamBlob(Blob):
    """A learnable (or statistics) blob backed by a persistent tensor.

    The data tensor never changes identity (a layer holds it); the diff is its
    ``.grad``. It is allocated on first use (``diff``/``diff_tensor``, or backward, which
    then accumulates into it in place, as Caffe accumulates parameter gradients until
    ``clear_param_diffs``), so a deploy net that never backpropagates holds its weights
    once, not twice; it reads as zeros until written, as Caffe's diff does.
    """

    __slots__ = ()

    def __init__(self, tensor: torch.Tensor) -> None:
        super().__init__(tuple(tensor.shape), tensor.device)
        self._t = tensor

    @property
    def tensor(self) -> torch.Tensor:
        return self._t  # type: ignore[return-value]

    @tensor.setter
    def tensor(self, value: torch.Tensor) -> None:  # noqa: D401 - param blobs keep identity
        with torch.no_grad():
            self._t.data = value.detach()  # type: ignore[union-attr]
        self._shape = tuple(value.shape)

    @property
    def diff_tensor(self) -> torch.Tensor:
        t = self._t
        assert t is not None
        if isinstance(t, torch.nn.Parameter):
            g = t.grad
            if g is None or g.shape != t.shape or g.device != t.device:
                g = t.grad = torch.zeros_like(t)
            return g
        return super().diff_tensor

    @diff_tensor.setter
    def diff_tensor(self, value: torch.Tensor) -> None:
        t = self._t
        if isinstance(t, torch.nn.Parameter):
            t.grad = value
        else:
            self._diff = value

    def _diff_for_upload(self) -> torch.Tensor | None:
        t = self._t
        if isinstance(t, torch.nn.Parameter):
            return t.grad
        return self._diff

    def _hand_out(self, slot: str, t: torch.Tensor) -> np.ndarray:
        # A parameter keeps its tensor (updates and accumulation are in place): nothing to
        # settle; but a data array may be written at any time while it lives (param_written).
        arr = t.detach().numpy()
        if slot == "_hdata":
            note_param_write(t)
            ptr = t.untyped_storage().data_ptr()
            _param_live[ptr] = _param_live.get(ptr, 0) + 1
            weakref.finalize(arr, _param_array_gone, ptr)
        return arr

    def _replace(self, t: torch.Tensor | None) -> None:
        # Reshaping a parameter (net surgery) swaps its storage, not the object,
        # so every layer sharing it sees the new shape.
        p = self._t
        assert p is not None
        with torch.no_grad():
            p.data = t if t is not None else torch.zeros(self._shape, dtype=p.dtype, device=p.device)

    def _resize(self, shape: tuple[int, ...]) -> None:
        p = self._t
        assert p is not None
        grad = _refit(self._diff_for_upload(), shape)
        super()._resize(shape)
        if isinstance(p, torch.nn.Parameter):
            p.grad = grad if grad is not None else torch.zeros_like(p)
            self._diff = None

    def to(self, device: torch.device) -> None:
        flush_host_writes()
        self._device = torch.device(device)
        p = self._t
        assert p is not None
        if p.device != self._device:
            with torch.no_grad():
                p.data = p.data.to(self._device)
                if p.grad is not None:
                    p.grad = p.grad.to(self._device)
        if self._diff is not None:
            self._diff = self._diff.to(self._device)
        self._forget_mirrors()
