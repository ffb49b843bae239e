"""Python layers written in torch: ``forward`` on tensors, no numpy, no backward.

Beyond Caffe. Subclass :class:`TorchLayer` and use it from a prototxt exactly
like a pycaffe layer (``type: "Python"`` with ``python_param``, or a
``.caffeinit`` name)::

    class Scale2(caffe_compat.TorchLayer):
        def setup(self, bottom_shapes):
            self.w = self.add_blob(bottom_shapes[0][1], filler="constant", value=1.0)

        def forward(self, x):
            return x * self.w.view(1, -1, *([1] * (x.dim() - 2)))

Autograd derives the backward, the layer runs on the device the net runs on
(GPU included), and its parameters are the layer's Caffe blobs: listed in
``net.params``, updated by the solver, stored in ``.caffemodel`` files (in
``parameters()`` order, i.e. creation order for the layer's own parameters;
buffers follow as non-learnable blobs).
Top shapes come from running ``forward`` on meta tensors; a layer whose
forward cannot run there is run once on zeros instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch import nn

from .blob import ParamBlob
from .fillers import fill
from .proto import caffe_pb2
from .python_layer import Phase, PythonLayerError, load_stored, user_error

if TYPE_CHECKING:
    from .layers.python.python import PythonLayer

__all__ = ["TorchLayer", "TorchBridge"]

Shape = tuple[int, ...]


class TorchLayer(nn.Module):
    """Base class of Python layers whose ``forward`` works on torch tensors.

    ``param_str`` and ``phase`` are set before :meth:`setup`; ``self.training``
    follows the phase (TRAIN → True), so dropout-like code can use it.
    """

    #: what ``layer.type`` says, as for every Python layer
    type = "Python"  # type: ignore[assignment]  # shadows nn.Module.type()

    def __init__(self, param: caffe_pb2.LayerParameter | None = None) -> None:
        super().__init__()
        self.layer_param = param
        self.param_str: str = param.python_param.param_str if param is not None else ""
        self.phase: int = Phase(param.phase if param is not None else caffe_pb2.TRAIN)
        self._host_blobs: list[ParamBlob] = []

    def setup(self, bottom_shapes: list[Shape]) -> None:
        """Check the bottom shapes, parse ``self.param_str``, create parameters."""

    def forward(self, *bottoms: torch.Tensor) -> torch.Tensor | Sequence[torch.Tensor]:
        raise NotImplementedError(f"{type(self).__qualname__} does not define forward(*bottoms)")

    def add_blob(self, *shape: int, filler: str | caffe_pb2.FillerParameter | None = None,
                 learnable: bool = True, **filler_fields: Any) -> torch.Tensor:
        """A new parameter blob (Caffe's order is creation order).

        ``filler`` is a FillerParameter or a filler type name with its fields
        as keywords (``filler="gaussian", std=0.01``); default constant 0.
        """
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        if isinstance(filler, str):
            filler = caffe_pb2.FillerParameter(type=filler, **filler_fields)
        value = fill(filler, tuple(int(d) for d in shape), type(self).__qualname__)
        name = f"blob{sum(1 for _ in self.parameters(recurse=False)) + len(self._buffers)}"
        if learnable:
            p = nn.Parameter(value)
            self.register_parameter(name, p)
            return p
        self.register_buffer(name, value)
        return value

    @property
    def blobs(self) -> list[ParamBlob]:
        """The layer's parameter blobs, as ``net.params`` shows them."""
        return self._host_blobs


class TorchBridge:
    """The torch side of one ``PythonLayer``: owns the user's module."""

    def __init__(self, host: "PythonLayer", cls: type[TorchLayer], bottom_shapes: Sequence[Shape]) -> None:
        self.host = host
        lp = host.layer_param
        self.user = user = self._guard(lambda: cls(lp), "__init__")
        if not isinstance(user, TorchLayer) or "_host_blobs" not in vars(user):
            raise PythonLayerError(f"{host.where} ({host.origin}): __init__ must call "
                                   "super().__init__(param)")
        user.param_str = lp.python_param.param_str
        user.phase = Phase(host.phase)
        user.train(host.phase == caffe_pb2.TRAIN)
        self._guard(lambda: user.setup([tuple(s) for s in bottom_shapes]), "setup")
        host.add_module("user", user)
        tensors = [p for p in user.parameters()] + [b for _, b in user.named_buffers() if b is not None]
        for i, t in enumerate(tensors):
            if i < len(lp.blobs):
                load_stored(host, t, lp.blobs[i], i)
            host.params.append(t)
            host._param_attrs.append("")  # lives in the user module, not on the host
            host._param_blobs.append(ParamBlob(t))
        user._host_blobs = host._param_blobs  # one list: sharing updates both
        self._own = tensors
        self.n_learnable = sum(1 for _ in user.parameters())

    def _guard(self, fn: Any, method: str) -> Any:
        try:
            return fn()
        except PythonLayerError:
            raise
        except Exception as exc:
            msg = f"{self.host.where} ({self.host.origin}): {method}() raised {type(exc).__name__}"
            raise user_error(exc, msg + (f": {exc}" if str(exc) else "")) from exc

    def _tensors(self) -> dict[str, torch.Tensor]:
        # host.params may hold tensors shared from another layer (param { name }).
        names = [n for n, _ in self.user.named_parameters()] + [n for n, _ in self.user.named_buffers()]
        return dict(zip(names, self.host.params))

    def _run(self, bottoms: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        params = self.host.params
        if len(params) == len(self._own) and all(p is q for p, q in zip(params, self._own)):
            out = self.user(*bottoms)  # the common case: the module's own tensors
        else:  # shared (param { name }), or swapped for meta tensors / a gradient check
            out = torch.func.functional_call(self.user, self._tensors(), tuple(bottoms), strict=False)
        return (out,) if isinstance(out, torch.Tensor) else tuple(out)

    def forward(self, bottoms: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        return self._guard(lambda: self._run(bottoms), "forward")

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        metas = [torch.empty(s, dtype=torch.float32, device="meta") for s in bottom_shapes]
        saved = list(self.host.params)
        try:
            self.host.params[:] = [torch.empty_like(p, device="meta") for p in saved]
            with torch.no_grad():
                outs = self._run(metas)
        except Exception:  # noqa: BLE001 - data-dependent code: run it for real on zeros
            self.host.params[:] = saved
            device = saved[0].device if saved else self.host.ctx.device
            zeros = [torch.zeros(s, dtype=torch.float32, device=device) for s in bottom_shapes]
            with torch.no_grad():
                outs = self._guard(lambda: self._run(zeros), "forward")
        finally:
            self.host.params[:] = saved
        return [tuple(t.shape) for t in outs]
