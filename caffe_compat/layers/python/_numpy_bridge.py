"""Running a pycaffe (numpy) Python layer inside autograd.

The user's layer keeps Caffe's calling convention: persistent bottom/top
:class:`~caffe_compat.blob.Blob` lists (the same objects on every call, so a
layer may keep ``self.top = top``), ``reshape`` then ``forward`` on each
forward pass, ``backward(top, propagate_down, bottom)`` with the top diffs
filled in. :class:`_Bridge` (a ``torch.autograd.Function``) makes that one
node of the graph, so Python layers mix with torch layers.

Memory, as in Caffe: bottoms are shown without copying (on CUDA through the
blobs' host mirrors, copied only if the layer reads them); a top keeps its
memory across passes (the layer may write only part of it); a top that is
in place over its bottom (same blob name) is the *same* Blob as that bottom.
Parameter gradients: during ``backward`` the layer sees the accumulated
gradient in a host scratch array (Caffe hands it the accumulated diff); the
change it makes is returned to autograd, which adds it to ``.grad``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence, cast

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from ...blob import Blob
from ...errors import layer_where
from ...python_layer import (BlobVec, Layer, LayerParamBlob, Phase, PythonLayerError, bind, load_stored,
                             settle, user_error)

if TYPE_CHECKING:
    from .python import PythonLayer

__all__ = ["NumpyBridge"]


class _Bridge(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, impl: "NumpyBridge", n_bottom: int,
                *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ctx.impl = impl
        ctx.n_bottom = n_bottom
        ctx.bottoms = tuple(t.detach() for t in tensors[:n_bottom])  # inputs: no reference cycle
        return impl.run_forward(tensors[:n_bottom])

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        return (None, None) + ctx.impl.run_backward(ctx.bottoms, grads, ctx.needs_input_grad[2:])


def _instantiate(cls: type, param: Any) -> Any:
    try:
        return cls(param)  # Caffe's GetPythonLayer: module.attr(layer)(param)
    except TypeError:
        if isinstance(cls, type) and issubclass(cls, Layer):
            raise
        return cls()  # a duck-typed class with a no-argument constructor


class NumpyBridge:
    """The numpy side of one ``PythonLayer``: owns the user object and its blobs."""

    def __init__(self, host: "PythonLayer", cls: type, bottom_shapes: Sequence[tuple[int, ...]]) -> None:
        self.host = host
        lp = host.layer_param
        self.user = user = self._call_user(lambda: _instantiate(cls, lp), "__init__")
        if not isinstance(user, Layer) and not callable(getattr(user, "forward", None)):
            raise PythonLayerError(f"{host.where} ({host.origin}): a {type(user).__name__} is not a "
                                   "caffe.Layer (it has no forward() method); derive the class from "
                                   "caffe.Layer")
        user.param_str = lp.python_param.param_str
        user.phase = Phase(host.phase)  # an int whose str() is 'TRAIN'/'TEST'
        if not isinstance(getattr(user, "blobs", None), BlobVec):
            user.blobs = BlobVec()
        device = host.ctx.device
        self.bottoms: list[Blob] = [Blob((0,), device) for _ in lp.bottom]
        self.inplace = frozenset(j for j, t in enumerate(lp.top) if j < len(lp.bottom) and lp.bottom[j] == t)
        self.tops: list[Blob] = [self.bottoms[j] if j in self.inplace else Blob((0,), device)
                                 for j in range(len(lp.top))]
        for blob, name in [*zip(self.bottoms, lp.bottom), *zip(self.tops, lp.top)]:
            blob._name = name  # for messages: 'blob "out": negative dimension ...'
        # The shape objects the tops start with: still the same object after
        # setup()/reshape() means the layer never shaped that top.
        self._unshaped = [None if j in self.inplace else t._shape for j, t in enumerate(self.tops)]
        for blob, shape in zip(self.bottoms, bottom_shapes):
            bind(blob, torch.zeros(shape, dtype=torch.float32, device=device))
        self.call("setup", self.bottoms, self.tops)
        self.adopt_blobs()

    # ----------------------------------------------------------- user code
    def _call_user(self, fn: Any, method: str) -> Any:
        try:
            return fn()
        except PythonLayerError:
            raise  # already names the layer
        except Exception as exc:
            raise user_error(exc, self._message(method, exc)) from exc

    def _message(self, method: str, exc: BaseException) -> str:
        text = f"{self.host.where} ({self.host.origin}): {method}() raised {type(exc).__name__}"
        text += f": {exc}" if str(exc) else ""
        ps = self.host.layer_param.python_param.param_str
        if method == "setup" and ps:
            text += f" (param_str: {ps!r})"
        return text

    def call(self, method: str, *args: Any) -> None:
        fn = getattr(self.user, method, None)
        if fn is None and method in ("setup", "reshape"):
            return  # a duck-typed class may leave these out (caffe.Layer's are no-ops)
        if fn is None:
            raise PythonLayerError(f"{self.host.where} ({self.host.origin}): the class has no {method}() "
                                   "method")
        try:
            self._call_user(lambda: fn(*args), method)
        finally:
            self._settle()

    def _settle(self) -> None:
        # Upload what the layer may have written (top data, bottom diffs,
        # parameters); forget host copies of what it only read.
        for j, b in enumerate(self.bottoms):
            settle(b, data=j in self.inplace, diff=True)
        for j, t in enumerate(self.tops):
            if j not in self.inplace:
                settle(t, data=True, diff=False)
        for p in self.user.blobs:
            settle(p, data=True, diff=True)

    # ---------------------------------------------------------- parameters
    def adopt_blobs(self) -> None:
        """Register blobs made by ``self.blobs.add_blob`` as the layer's parameters."""
        host = self.host
        for i in range(len(host.params), len(self.user.blobs)):
            blob = self.user.blobs[i]
            if not isinstance(blob, LayerParamBlob):
                raise PythonLayerError(f"{host.where}: self.blobs[{i}] is a {type(blob).__name__}; "
                                       "create parameter blobs with self.blobs.add_blob(*shape)")
            if i < len(host.layer_param.blobs):  # weights stored in the LayerParameter win over setup's
                load_stored(host, blob.tensor, host.layer_param.blobs[i], i)
            name = f"blob{i}"
            host.register_parameter(name, cast(torch.nn.Parameter, blob.tensor))
            host.params.append(blob.tensor)
            host._param_attrs.append(name)
            host._param_blobs.append(blob)

    def sync_param_blobs(self) -> None:
        # Sharing (param { name }, share_with) replaces tensors in host.params.
        blobs = self.user.blobs
        for i, t in enumerate(self.host.params):
            if blobs[i]._t is not t:
                owner = self.host._param_blobs[i]
                blobs[i] = owner if isinstance(owner, LayerParamBlob) and owner._t is t else LayerParamBlob(t)

    # -------------------------------------------------------------- passes
    def top_shapes(self, bottom_shapes: Sequence[tuple[int, ...]]) -> list[tuple[int, ...]]:
        for blob, shape in zip(self.bottoms, bottom_shapes):
            if blob._t is None or blob.shape != tuple(shape):
                bind(blob, torch.zeros(tuple(shape), dtype=torch.float32, device=blob.device))
        self.call("reshape", self.bottoms, self.tops)
        self.adopt_blobs()
        self.user.blobs.freeze(self.host.where)
        self._check_tops_shaped()
        return [tuple(t.shape) for t in self.tops]

    def _check_tops_shaped(self) -> None:
        """A top that setup()/reshape() never shaped, read by a later layer, is this
        layer's mistake: say so here rather than let that layer blame its bottom.
        (A top nobody reads, or only Python layers read, may be shaped in forward:
        Caffe runs such nets.)"""
        for j, (blob, unshaped) in enumerate(zip(self.tops, self._unshaped)):
            if unshaped is None or blob._shape is not unshaped:
                continue
            name = self.host.layer_param.top[j]
            readers = [lp for lp in self.host.readers_of(name) if lp.type != "Python"]
            if readers:
                raise PythonLayerError(
                    f'{self.host.where} ({self.host.origin}): setup() and reshape() never set the shape '
                    f'of top {j} "{name}", which {layer_where(readers[0].type, readers[0].name)} reads; '
                    f"call top[{j}].reshape(...) in setup() or reshape()")
        self._unshaped = [None] * len(self.tops)  # checked once, after the first reshape

    replaying = False

    def replay(self, bottoms: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        self.replaying = True
        try:
            return self.forward(bottoms)
        finally:
            self.replaying = False

    def forward(self, bottoms: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        self.user.blobs.freeze(self.host.where)
        self.sync_param_blobs()
        params = self.host.params
        if torch.is_grad_enabled() and (any(b.requires_grad for b in bottoms)
                                        or any(p.requires_grad for p in params)):
            return _Bridge.apply(self, len(bottoms), *bottoms, *params)
        return self.run_forward(bottoms)

    def run_forward(self, bottoms: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        device = bottoms[0].device if len(bottoms) else self.host.ctx.device
        if self.replaying:
            # A backward without a graph: the tops hold what the last forward wrote; the
            # user's forward does not run again (Caffe's backward calls only backward).
            for j, (blob, t) in enumerate(zip(self.bottoms, bottoms)):
                if j not in self.inplace:
                    bind(blob, t.detach())
            return tuple(blob.tensor.detach() for blob in self.tops)
        for j, (blob, t) in enumerate(zip(self.bottoms, bottoms)):
            t = t.detach()
            # In place, the layer overwrites its bottom: give it a copy, since
            # autograd may still need the input tensor itself.
            bind(blob, t.clone() if j in self.inplace else t)
        for j, blob in enumerate(self.tops):
            if j not in self.inplace and blob.device != device:
                blob.to(device)
        self.call("reshape", self.bottoms, self.tops)
        self.call("forward", self.bottoms, self.tops)
        # A new tensor object over the top's memory: the next pass overwrites
        # it, as in Caffe, while autograd gets an output it owns.
        return tuple(blob.tensor.detach() for blob in self.tops)

    def run_backward(self, bottoms: Sequence[torch.Tensor], grads: Sequence[torch.Tensor | None],
                     needs: Sequence[bool]) -> tuple[torch.Tensor | None, ...]:
        n = len(bottoms)
        for j, (blob, t) in enumerate(zip(self.bottoms, bottoms)):
            if j not in self.inplace:
                bind(blob, t)  # the data this pass saw; its diff starts at zero
        for j, (blob, g) in enumerate(zip(self.tops, grads)):
            if g is None:
                g = torch.zeros(blob.shape, dtype=torch.float32, device=blob.device)
            # In place, the layer turns the top diff into the bottom diff in this array.
            blob._diff = g.detach().clone() if j in self.inplace else g.detach().contiguous()
        pblobs = list(self.user.blobs)
        before: list[np.ndarray | None] = []
        for k, pb in enumerate(pblobs):
            g = pb.tensor.grad
            before.append(g.detach().cpu().numpy().copy() if g is not None and needs[n + k] else None)
            pb.scratch = before[-1].copy() if before[-1] is not None else np.zeros(pb.shape, np.float32)
        try:
            self.call("backward", self.tops, [bool(x) for x in needs[:n]], self.bottoms)
            out: list[torch.Tensor | None] = []
            for j, blob in enumerate(self.bottoms):
                out.append(blob._diff if needs[j] and blob._diff is not None else None)
            for k, pb in enumerate(pblobs):
                if not needs[n + k]:
                    out.append(None)
                    continue
                delta = pb.scratch if before[k] is None else pb.scratch - before[k]
                delta = np.ascontiguousarray(delta, dtype=np.float32)
                out.append(torch.from_numpy(delta).to(pb.tensor.device))
            return tuple(out)
        finally:
            for pb in pblobs:
                pb.scratch = None
            for blob in self.bottoms + self.tops:
                blob._diff = None  # autograd owns the gradients now
