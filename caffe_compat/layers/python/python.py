"""The ``Python`` layer type: a user's layer class, found by module and class name.

Matches Caffe's ``include/caffe/layers/python_layer.hpp`` and
``GetPythonLayer`` in ``src/caffe/layer_factory.cpp``:
``python_param { module layer param_str share_in_parallel }`` names the
class; it is instantiated with the LayerParameter, given ``param_str`` and
``phase``, then ``setup(bottom, top)`` runs once and ``reshape`` before every
``forward``. Any number of bottoms and tops, of any shape the layer gives.

Two kinds of user class:

* a pycaffe layer (:class:`caffe_compat.Layer`, numpy on blobs with a
  hand-written ``backward``), run through :mod:`._numpy_bridge`;
* a :class:`caffe_compat.TorchLayer` (``forward`` on tensors, autograd's
  backward, runs on the GPU).

Names registered in ``.caffeinit`` work as ``python_param.module`` and as the
layer ``type`` (:mod:`caffe_compat.caffeinit`). ``net.layers`` shows the user's
object for these layers, as pycaffe does.

Differences from Caffe: a Python layer whose layer or top name contains
"loss" and that has no ``loss_weight`` gets loss weight 1 on its first top
(when no later layer consumes that top); Caffe gives it 0 and silently
trains nothing. ``loss_weight: 0`` opts out. ``share_in_parallel`` is
accepted and ignored (as in upstream Caffe since multi-GPU moved to NCCL).
Blobs stored in the LayerParameter (``Net(net.to_proto())``) are copied into
the blobs ``setup`` made (Caffe would keep both sets). ``net.backward()``
needs a ``forward()`` first (Caffe runs the layers' backward on whatever the
blobs hold). Errors name the layer and keep the user's exception type.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Sequence

import torch

from ...caffeinit import find_layer_class
from ...python_layer import PythonLayerClassError, describe_class, is_real_pycaffe_class
from ...torch_layer import TorchBridge, TorchLayer
from ..base import Layer, LayerContext, Shape
from ..registry import register_layer
from ._numpy_bridge import NumpyBridge

__all__ = ["PythonLayer", "bound_layer_class"]

_log = logging.getLogger("caffe_compat")


@register_layer("Python")
class PythonLayer(Layer):
    #: the net runs backward through this layer even when its tops carry no
    #: diff (Caffe calls every Python layer's backward; it may set param diffs)
    always_backward: ClassVar[bool] = True
    #: set on subclasses made by :func:`bound_layer_class`
    bound_class: ClassVar[type | None] = None
    caffeinit_name: ClassVar[str | None] = None

    def __init__(self, param: Any, bottom_shapes: Sequence[Shape], ctx: LayerContext) -> None:
        super().__init__(param, bottom_shapes, ctx)
        pp = param.python_param
        if self.bound_class is not None:
            cls, self.origin = self.bound_class, describe_class(self.bound_class)
        else:
            cls, self.origin = find_layer_class(self.caffeinit_name or pp.module, pp.layer,
                                                ctx.source_dir, self.where)
        self._impl: NumpyBridge | TorchBridge
        if isinstance(cls, type) and issubclass(cls, TorchLayer):
            self._impl = TorchBridge(self, cls, bottom_shapes)
        elif is_real_pycaffe_class(cls):
            raise PythonLayerClassError(
                f"{self.where}: {self.origin} subclasses a compiled pycaffe's caffe.Layer (its module "
                "imported the real 'caffe'); call caffe_compat.install_alias() before importing it, "
                "or run the script with 'caffe-compat run'")
        else:
            self._impl = NumpyBridge(self, cls, bottom_shapes)
        self._default_loss_weight()

    @property
    def python_object(self) -> Any:
        """The user's layer object (what pycaffe's ``net.layers`` shows)."""
        return self._impl.user

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        return self._impl.top_shapes(bottom_shapes)

    def share_param(self, index: int, owner: Layer, owner_index: int) -> None:
        if isinstance(self._impl, NumpyBridge):
            super().share_param(index, owner, owner_index)
            self._impl.sync_param_blobs()
            return
        self.params[index] = owner.params[owner_index]
        self._param_blobs[index] = owner.blobs[owner_index]

    def refresh_params(self) -> None:
        if isinstance(self._impl, NumpyBridge):
            super().refresh_params()
            return
        user = self._impl.user
        self.params[:] = list(user.parameters()) + [b for _, b in user.named_buffers()]

    def forward(self, *bottoms: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self._impl.forward(bottoms)

    def replay(self, *bottoms: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if isinstance(self._impl, NumpyBridge):
            return self._impl.replay(bottoms)
        out = super().replay(*bottoms)  # a TorchLayer: its forward again, buffers put back
        return (out,) if isinstance(out, torch.Tensor) else tuple(out)

    def extra_repr(self) -> str:
        return f'name="{self.name}", class={self.origin}'

    # --------------------------------------------------------------- loss
    def _default_loss_weight(self) -> None:
        lp = self.layer_param
        if len(lp.loss_weight) or not len(lp.top):
            return
        says = [what for what, text in (("layer name", lp.name), ("top name", lp.top[0]))
                if "loss" in text.lower()]
        if not says:
            return
        consumer = self._consumer_of(lp.top[0])
        if consumer is not None:
            _log.debug('%s: top "%s" feeds layer "%s"; not treated as a loss',
                       self.where, lp.top[0], consumer)
            return
        lp.loss_weight.extend([1.0] + [0.0] * (len(lp.top) - 1))
        _log.info('%s: no loss_weight given, but its %s %s it is a loss: using loss_weight 1 for top "%s" '
                  "(Caffe would use 0 and train nothing; set loss_weight: 0 to opt out)",
                  self.where, " and ".join(says), "say" if len(says) > 1 else "says", lp.top[0])

    def readers_of(self, blob: str) -> list[Any]:
        """The LayerParameters of the later layers that read ``blob`` (through
        any Split layers the net inserted)."""
        try:
            layers = list(self.ctx.net._param.layer) if self.ctx.net is not None else []
        except (AttributeError, ReferenceError):
            return []
        tops = list(self.layer_param.top)
        mine = [i for i, lp in enumerate(layers) if lp.name == self.name and list(lp.top) == tops]
        found: list[Any] = []
        wanted, start = {blob}, (mine[0] + 1 if mine else len(layers))
        for lp in layers[start:]:
            if wanted.intersection(lp.bottom):
                if lp.type == "Split":
                    wanted.update(lp.top)
                else:
                    found.append(lp)
        return found

    def _consumer_of(self, blob: str) -> str | None:
        """The name of a later layer of the net that reads ``blob``, if any."""
        try:
            layers = list(self.ctx.net._param.layer) if self.ctx.net is not None else []
        except (AttributeError, ReferenceError):
            return None
        tops = list(self.layer_param.top)
        mine = [i for i, lp in enumerate(layers) if lp.name == self.name and list(lp.top) == tops]
        for lp in layers[mine[0] + 1:] if mine else []:
            if blob in lp.bottom:
                return lp.name
        return None


_bound: dict[tuple[Any, ...], type[PythonLayer]] = {}


def bound_layer_class(user_class: type | None = None, caffeinit_name: str | None = None) -> type[PythonLayer]:
    """A ``PythonLayer`` subclass fixed to a user class or a ``.caffeinit`` name.

    ``.caffeinit`` names used as a layer ``type`` resolve to such a class; the
    gradient checker builds layers from a class object this way.
    """
    key = (user_class, caffeinit_name)
    cls = _bound.get(key)
    if cls is None:
        label = caffeinit_name or getattr(user_class, "__name__", "?")
        cls = type(f"PythonLayer[{label}]", (PythonLayer,), {
            "bound_class": user_class,
            "caffeinit_name": caffeinit_name,
            "type": caffeinit_name or "Python",
            "__module__": __name__,
        })
        _bound[key] = cls
    return cls
