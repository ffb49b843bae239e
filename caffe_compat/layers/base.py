"""The base class of every layer: a ``torch.nn.Module`` built from a LayerParameter.

A layer subclass

* declares Caffe's bottom/top count contract as class attributes (checked by
  the net with a message naming the layer);
* parses its ``LayerParameter`` once in ``__init__`` (it also receives the
  bottom shapes, as Caffe's ``LayerSetUp`` does) and creates its parameter
  blobs with :meth:`Layer.add_param`;
* implements ``forward(*bottoms)`` as pure tensor code returning its tops in
  prototxt order. Autograd provides the backward.

Top shapes (what Caffe's ``Reshape`` computes) come for free: by default the
net runs ``forward`` on meta tensors. Layers whose output shape depends on the
data, or that cannot run on meta tensors, override :meth:`Layer.top_shapes`.
The common layers also give :meth:`Layer.quick_top_shapes` — the shapes from a
formula, after the same checks forward makes — because the first operation on
a meta tensor in a process costs about 1.5 s (torch imports its decomposition
and dynamo machinery); a net made only of such layers never pays it.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch
from torch import nn

from ..blob import ParamBlob, as_shape
from ..errors import CaffeCompatError, LayerError, ShapeError, WeightsError, layer_where
from ..fillers import fill
from ..proto import caffe_pb2

__all__ = ["Layer", "LossLayer", "LayerContext", "Shape", "canonical_axis", "blob_proto_to_tensor",
           "accumulating_param_diffs", "param_diffs_in_place"]

Shape = tuple[int, ...]

FLT_MIN = 1.17549435e-38
FLT_MAX = 3.4028234663852886e38


@dataclass
class LayerContext:
    """What a layer may know about the net it is built into."""

    phase: int = caffe_pb2.TEST
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    source: str = "<net>"
    source_dir: Path | None = None
    net: Any = None  # weak proxy to the Net, for data and Python layers
    force_backward: bool = False
    #: the net's running total of host memory (caffe_compat.sizes.MemoryBudget), if any
    memory: Any = None

    def __deepcopy__(self, memo: dict) -> "LayerContext":
        # A copied layer (copy.deepcopy of an exported module) belongs to no net.
        return LayerContext(self.phase, self.device, self.source, self.source_dir, None,
                            self.force_backward, None)


class _InPlaceDiffs:
    """See :func:`accumulating_param_diffs` (a class, not a generator: it runs every pass)."""

    __slots__ = ("on", "_was")

    def __init__(self) -> None:
        self.on = False
        self._was: list[bool] = []

    def __enter__(self) -> None:
        self._was.append(self.on)
        self.on = True

    def __exit__(self, *exc: object) -> None:
        self.on = self._was.pop()


_IN_PLACE_DIFFS = _InPlaceDiffs()


def accumulating_param_diffs() -> _InPlaceDiffs:
    """While the net backpropagates into its parameter diffs: a layer may add a weight
    gradient straight into ``weight.grad`` (Caffe's GEMM with beta = 1 into the diff) and
    give autograd None for it, instead of a fresh gradient tensor that is then added.
    Outside (gradcheck, ``torch.autograd.grad`` by a user) gradients are returned as usual."""
    return _IN_PLACE_DIFFS


def param_diffs_in_place() -> bool:
    return _IN_PLACE_DIFFS.on


def canonical_axis(axis: int, num_axes: int, where: str = "") -> int:
    """Caffe's ``Blob::CanonicalAxisIndex``: negative axes count from the end."""
    if not -num_axes <= axis < max(num_axes, 1):
        raise ShapeError(
            f"{where + ': ' if where else ''}axis {axis} out of range for a blob with "
            f"{num_axes} axes"
        )
    return axis + num_axes if axis < 0 else axis


def blob_proto_to_tensor(proto: caffe_pb2.BlobProto) -> torch.Tensor:
    """A float32 tensor from a BlobProto (N-d ``shape`` or legacy 4-d dims)."""
    if proto.HasField("num") or proto.HasField("channels") or proto.HasField("height") \
            or proto.HasField("width"):
        shape: Shape = (proto.num, proto.channels, proto.height, proto.width)
    else:
        shape = tuple(proto.shape.dim)
    values = proto.double_data if len(proto.double_data) else proto.data
    t = torch.tensor(list(values), dtype=torch.float32)
    count = 1
    for d in shape:
        count *= d
    if t.numel() != count:
        raise WeightsError(
            f"BlobProto holds {t.numel()} values but its shape {list(shape)} needs {count}"
        )
    return t.reshape(shape)


def _legacy_equal(a: Shape, b: Shape) -> bool:
    """Shapes equal, counting a legacy 4-d (1,1,N,K) equal to its N-d (N,K)."""
    if a == b:
        return True
    if len(a) > 4 or len(b) > 4:
        return False
    pad = lambda s: (1,) * (4 - len(s)) + tuple(s)  # noqa: E731
    return pad(a) == pad(b)


class Layer(nn.Module):
    """One Caffe layer. Subclasses register with ``@register_layer("Type")``."""

    type: ClassVar[str] = ""  # type: ignore[assignment]  # shadows nn.Module.type()

    exact_num_bottom: ClassVar[int | None] = None
    min_bottom: ClassVar[int | None] = None
    max_bottom: ClassVar[int | None] = None
    exact_num_top: ClassVar[int | None] = None
    min_top: ClassVar[int | None] = None
    max_top: ClassVar[int | None] = None
    equal_num_bottom_top: ClassVar[bool] = False
    auto_top_blobs: ClassVar[bool] = False
    #: top[0] gets loss weight 1 unless the prototxt says otherwise.
    is_loss: ClassVar[bool] = False
    #: bottom indices that never receive a gradient, even with force_backward
    #: (Caffe's AllowForceBackward returning false, e.g. loss labels).
    no_force_backward: ClassVar[frozenset[int]] = frozenset()
    #: the net feeds this layer's tops itself (Input-like layers).
    is_input: ClassVar[bool] = False

    def __init__(self, param: caffe_pb2.LayerParameter, bottom_shapes: Sequence[Shape],
                 ctx: LayerContext) -> None:
        super().__init__()
        self.layer_param = param
        self.name: str = param.name
        self.phase: int = param.phase if param.HasField("phase") else ctx.phase
        self.ctx = ctx
        #: Caffe's ``blobs_``: the tensors forward reads, in Caffe's order.
        self.params: list[torch.Tensor] = []
        self._param_blobs: list[ParamBlob] = []
        self._param_attrs: list[str] = []

    # -------------------------------------------------------------- messages
    @property
    def where(self) -> str:
        return layer_where(self.type, self.name)

    def error(self, message: str,
              cls: builtins.type[CaffeCompatError] = LayerError) -> CaffeCompatError:
        """An exception whose message starts by naming this layer."""
        return cls(f"{self.where}: {message}")

    # ------------------------------------------------------------ parameters
    def add_param(self, shape: Sequence[int], filler: caffe_pb2.FillerParameter | None = None,
                  *, learnable: bool = True, attr: str | None = None) -> torch.Tensor:
        """Create parameter blob number ``len(self.params)``.

        Values come from the blobs stored in the LayerParameter when it has
        them (a net built from a .caffemodel, or weights written into a
        prototxt), otherwise from ``filler``.
        """
        index = len(self.params)
        # Caffe's INT_MAX limit, checked before the filler allocates anything.
        shape = as_shape(shape, f"{self.where}: parameter blob {index}")
        if self.ctx.memory is not None:  # and the net's total, before the filler allocates
            count = 1
            for d in shape:
                count *= d
            self.ctx.memory.add(f"{self.where} parameter blob {index}", 4 * count)
        if index < len(self.layer_param.blobs):
            value = blob_proto_to_tensor(self.layer_param.blobs[index])
            if not _legacy_equal(tuple(value.shape), shape):
                raise self.error(
                    f"stored blob {index} has shape {list(value.shape)}, expected {list(shape)}",
                    ShapeError,
                )
            value = value.reshape(shape)
        else:
            value = fill(filler, shape, self.where)
        value = value.to(self.ctx.device)
        tensor: torch.Tensor
        name = attr or f"blob{index}"
        if learnable:
            tensor = nn.Parameter(value, requires_grad=True)
            self.register_parameter(name, tensor)
        else:
            tensor = value
            self.register_buffer(name, tensor)
        self.params.append(tensor)
        self._param_attrs.append(name)
        self._param_blobs.append(ParamBlob(tensor))
        return tensor

    @property
    def blobs(self) -> list[ParamBlob]:
        """pycaffe's ``layer.blobs``: the parameter blobs with numpy views."""
        return self._param_blobs

    def share_param(self, index: int, owner: "Layer", owner_index: int) -> None:
        """Use ``owner``'s parameter blob instead of our own (``param { name }``)."""
        tensor = owner.params[owner_index]
        name = self._param_attrs[index]
        if isinstance(tensor, nn.Parameter):
            self._parameters[name] = tensor
        else:
            self._buffers[name] = tensor
        self.params[index] = tensor
        self._param_blobs[index] = owner._param_blobs[owner_index]

    def refresh_params(self) -> None:
        """Re-read ``self.params`` from the module's registered tensors."""
        for i, name in enumerate(self._param_attrs):
            tensor: torch.Tensor | None = self._parameters.get(name)
            if tensor is None:
                tensor = self._buffers[name]
            assert tensor is not None
            self.params[i] = tensor
            blob = self._param_blobs[i]
            if blob._t is not tensor:
                blob._t = tensor

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        # nn.Module.to()/.double() replace buffers with new tensors; keep
        # self.params (what forward reads) pointing at the registered ones.
        out = super()._apply(fn, recurse)
        self.refresh_params()
        return out

    def start_background(self) -> None:
        """Called once the whole net has passed its checks: start background
        work (a data layer's prefetch thread). A net that fails to build never
        starts any."""

    # ----------------------------------------------------------------- shape
    #: Element-wise layers: one top, shaped like bottom 0 (and every bottom alike).
    same_shape_top: ClassVar[bool] = False

    def quick_top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape] | None:
        """Top shapes without running forward, or None to run it on meta tensors.

        An override runs the checks forward runs (``meta_bottoms`` gives shape-only
        tensors to run them on: creating those costs nothing) and returns None
        wherever it does not know the answer, so the meta forward decides.
        """
        if self.same_shape_top and all(tuple(s) == tuple(bottom_shapes[0]) for s in bottom_shapes):
            return [tuple(bottom_shapes[0])]
        return None

    @staticmethod
    def meta_bottoms(bottom_shapes: Sequence[Shape]) -> list[torch.Tensor]:
        return [torch.empty(s, dtype=torch.float32, device="meta") for s in bottom_shapes]

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        """Shapes of the tops for bottoms of ``bottom_shapes`` (Caffe's Reshape).

        :meth:`quick_top_shapes` where a layer gives it; else :meth:`forward`
        runs on meta tensors, so it cannot disagree with what forward really
        produces.
        """
        quick = self.quick_top_shapes(bottom_shapes)
        return quick if quick is not None else self.meta_top_shapes(bottom_shapes)

    def meta_top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        """Top shapes from :meth:`forward` run on meta tensors."""
        metas = self.meta_bottoms(bottom_shapes)
        saved = self.params
        self.params = [torch.empty_like(p, device="meta") for p in saved]
        try:
            with torch.no_grad():
                out = self.forward(*metas)
        finally:
            self.params = saved
        if isinstance(out, torch.Tensor):
            return [tuple(out.shape)]
        return [tuple(t.shape) for t in out]

    def forward(self, *bottoms: torch.Tensor) -> torch.Tensor | Sequence[torch.Tensor]:
        raise NotImplementedError(f"{self.where}: forward not implemented")

    def replay(self, *bottoms: torch.Tensor) -> torch.Tensor | Sequence[torch.Tensor]:
        """Forward once more, for a backward that has no graph to use (:mod:`caffe_compat.plans.replay`).

        The same tops from the same bottoms as the last forward, and no side effects:
        statistics the forward updates (BatchNorm's running sums, any buffer that is not
        a learnable parameter) are put back. Layers that draw random numbers or carry
        state between forwards override this to reuse the last forward's.
        """
        stats = [p for p in self.params if not isinstance(p, nn.Parameter)]
        saved = [p.detach().clone() for p in stats]
        try:
            return self.forward(*bottoms)
        finally:
            with torch.no_grad():
                for p, v in zip(stats, saved):
                    if not torch.equal(p, v):
                        p.copy_(v)

    def replay_in_place(self, top: torch.Tensor) -> torch.Tensor | None:
        """For an in-place layer in a backward without a graph: a tensor of value ``top``
        (the blob's data, the layer's output) whose gradient is Caffe's in-place backward,
        which reads only that output. None where the layer's backward needs its input:
        the net then computes the input again from the layer that wrote it."""
        return None

    def extra_repr(self) -> str:
        return f'name="{self.name}"'


class LossLayer(Layer):
    """Caffe's ``LossLayer``: two bottoms (prediction, target), one scalar top.

    The top gets loss weight 1 by default; a loss layer given no top gets an
    anonymous one (Caffe's AutoTopBlobs), so its loss still counts. Targets
    (bottom 1) never receive gradients, not even with ``force_backward``.
    """

    exact_num_bottom: ClassVar[int | None] = 2
    exact_num_top: ClassVar[int | None] = 1
    auto_top_blobs = True
    is_loss = True
    no_force_backward = frozenset({1})

    def check_batch(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if pred.dim() == 0 or target.dim() == 0 or pred.shape[0] != target.shape[0]:
            raise self.error(
                "the data and label should have the same first dimension: "
                f"bottom[0] {list(pred.shape)} vs bottom[1] {list(target.shape)}",
                ShapeError,
            )
