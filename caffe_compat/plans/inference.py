"""The inference plan: the eager interpreter with oneDNN's inference kernels where a
deploy net allows them.

A net that nothing backpropagates through (no layer needs backward: a deploy net, a
TEST net without ``force_backward``) starts with this plan, and so does every TEST-phase
net (a solver's test net runs its passes without grad). On the CPU, without grad, it runs

* a 2-d Convolution and the in-place BatchNorm (global statistics), Scale and ReLU
  that follow it on its top as one oneDNN convolution: the statistics and the scale
  folded into weights and bias, the ReLU a post-op, the weights packed once into
  oneDNN's blocked layout (torch's own convolution reorders them on every call);
* an InnerProduct and its in-place ReLU as one oneDNN matmul (torch's addmm is
  1.6-1.9x slower on the AlexNet/VGG classifier shapes at batch 1 and 8).

Every blob holds what Caffe's holds: the layers taken in are in place, so their one
top blob shows the last one's output, as in Caffe. Numbers differ from the
layer-by-layer ones by float rounding only. What is derived from the weights is made
again when one of them changes: torch's version counter sees writes through torch,
:func:`~caffe_compat.blob.param_written` those through a numpy array.

Anything else (CUDA, a backward that needs a graph, per-layer hooks, a layer set up
unusually, a bottom that is not dense float32) runs the eager interpreter unchanged.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

import torch

from ..blob import param_serial, param_written
from .eager import EagerPlan

if TYPE_CHECKING:
    from ..net import Net, _Node

__all__ = ["InferencePlan", "Fused", "fusions"]

_log = logging.getLogger("caffe_compat")


def _available() -> bool:
    try:
        return (torch.backends.mkldnn.is_available()
                and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
                and hasattr(torch.ops.mkldnn, "_linear_pointwise"))
    except Exception:  # a build without oneDNN
        return False


_ONEDNN = _available()
_MIN_LINEAR = 1 << 20  # weight values (see fusions)


def _in_place_on(node: "_Node", blob: int) -> bool:
    return node.bottom_ids == [blob] and node.top_ids == [blob] and not node.has_loss


class Fused:
    """Layers ``first``..``last`` of a net run as one oneDNN primitive."""

    __slots__ = ("first", "last", "head", "bn", "scale", "post", "scalars", "_state", "_w", "_b",
                 "broken")

    def __init__(self, first: int, last: int, head: Any, bn: Any, scale: Any,
                 slope: float | None) -> None:
        self.first, self.last = first, last
        self.head, self.bn, self.scale = head, bn, scale
        self.post = "none" if slope is None else "relu" if slope == 0.0 else "leaky_relu"
        self.scalars: list[Any] = [slope] if self.post == "leaky_relu" else []
        self._state: Any = None
        self._w: torch.Tensor | None = None
        self._b: torch.Tensor | None = None
        self.broken = False  # oneDNN refused: the layers run one by one from now on

    def run(self, xs: list[torch.Tensor]) -> torch.Tensor | None:
        """The fused output for the first layer's bottoms, or None where it does not apply."""
        raise NotImplementedError

    def _tensors(self) -> list[torch.Tensor]:
        ts = list(self.head.params)
        for layer in (self.bn, self.scale):
            if layer is not None:
                ts += layer.params
        return ts

    def _current(self, shape: Any) -> bool:
        """Whether what was made from the weights for ``shape`` (any key of what it was made
        for) still holds; note the new state."""
        ts = self._tensors()
        vers = tuple((id(t), t.data_ptr(), t._version) for t in ts)
        serial = param_serial()
        old = self._state
        if old is not None and serial >= 0 and old[0] == serial and old[1] == shape and old[2] == vers:
            return True
        written = tuple(param_written(t) for t in ts)
        ok = old is not None and None not in written and old[1:] == (shape, vers, written)
        self._state = (serial, shape, vers, written) if None not in written else None
        return ok

    def _folded(self, w: torch.Tensor, b: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Weights and bias with the BatchNorm and Scale that follow folded in (float64 math)."""
        if self.bn is None and self.scale is None:
            return w.detach(), None if b is None else b.detach()
        c = w.shape[0]
        mul = torch.ones(c, dtype=torch.float64)
        add = (torch.zeros(c, dtype=torch.float64) if b is None else b.detach().double())
        if self.bn is not None:
            b0, b1, s = (p.detach().double() for p in self.bn.params)
            factor = torch.where(s == 0, torch.zeros_like(s), 1 / s)
            invstd = 1 / torch.sqrt(b1 * factor + self.bn.eps)
            add = (add - b0 * factor) * invstd
            mul = mul * invstd
        if self.scale is not None:
            gamma = self.scale.params[0].detach().double().reshape(c)
            mul, add = mul * gamma, add * gamma
            if self.scale.bias_term:
                add = add + self.scale.params[-1].detach().double().reshape(c)
        view = (c,) + (1,) * (w.dim() - 1)
        return (w.detach().double() * mul.view(view)).float(), add.float()


class _FusedConv(Fused):
    __slots__ = ("_geom",)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        conv = self.head  # padding, stride, dilation as oneDNN's calls take them, made once
        self._geom = (list(conv.geom.pad), list(conv.geom.stride), list(conv._dilation))

    def run(self, xs: list[torch.Tensor]) -> torch.Tensor | None:
        conv = self.head
        x = xs[0]
        if x.dim() != 4 or x.dtype is not torch.float32 or x.is_mkldnn or not (
                x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
            return None
        shape = x.shape
        if conv._plan(shape) is not None:  # overhanging kernel: the layer pads first
            return None
        pad, stride, dilation = self._geom
        # oneDNN chooses the packed layout for the thread count too: weights packed for two
        # threads cost a reorder on every call with one (ResNet-50 b1: 54 -> 107 ms), so a
        # change of the count (the load governor, threads.py) packs them again.
        if not self._current((shape, torch.get_num_threads())) or self._w is None:
            w, b = self._folded(conv.params[0], conv.params[1] if conv.bias_term else None)
            self._w = torch._C._nn.mkldnn_reorder_conv2d_weight(  # type: ignore[call-arg]
                w.contiguous().to_mkldnn(), pad, stride, dilation, conv.group, list(shape))
            self._b = None if b is None else b.contiguous()
        return torch.ops.mkldnn._convolution_pointwise(
            x, self._w, self._b, pad, stride, dilation, conv.group, self.post, self.scalars, "")


class _FusedLinear(Fused):
    __slots__ = ()

    def run(self, xs: list[torch.Tensor]) -> torch.Tensor | None:
        ip = self.head
        x = xs[0]
        if x.dtype is not torch.float32 or x.dim() < 2:
            return None
        flat = x.reshape(x.shape[0], ip._check(x.shape))
        if not flat.is_contiguous():
            flat = flat.contiguous()
        w = ip.params[0]
        if w.dtype is not torch.float32 or not w.is_contiguous():
            return None
        b = ip.params[1].detach() if ip.bias_term else None
        return torch.ops.mkldnn._linear_pointwise(flat, w.detach(), b, self.post, self.scalars, "")


class _FusedEltwise(Fused):
    """An Eltwise and the ReLU in place on its top: the ReLU applied in place to the
    Eltwise's fresh output while it is still in cache, instead of a second pass that
    reads it back from memory into a new tensor (ResNet-50 b1: 16 ReLUs of ~0.75 ms each
    on the 2-core VM became ~0.04 ms)."""

    __slots__ = ()

    def run(self, xs: list[torch.Tensor]) -> torch.Tensor | None:
        y = self.head.forward(*xs)
        if any(y.data_ptr() == x.data_ptr() for x in xs):
            return None  # not a fresh tensor: the layers run one by one
        if self.post == "relu":
            return y.relu_()
        return torch.nn.functional.leaky_relu_(y, self.scalars[0])


def fusions(net: "Net") -> list[Fused | None]:
    """Per layer index, the fused run that starts there (None: the layer runs alone)."""
    from ..layers.common.batch_norm import BatchNorm
    from ..layers.common.eltwise import Eltwise
    from ..layers.common.inner_product import InnerProduct
    from ..layers.common.scale import Scale
    from ..layers.neuron.relu import ReLU
    from ..layers.vision.convolution import Convolution

    nodes = net._nodes
    out: list[Fused | None] = [None] * len(nodes)
    if not _ONEDNN:
        return out
    for i, node in enumerate(nodes):
        layer = node.layer
        kind: Callable[..., Fused]
        if type(layer) is Convolution:
            if (layer.num_spatial != 2 or layer.axis != 1 or layer._sum_dims
                    or len(node.bottom_ids) != 1):
                continue
            kind = _FusedConv
        elif type(layer) is InnerProduct:
            # oneDNN's matmul wins from ~1M weights on (1.25-2.3x at batch 1-64, the
            # classifiers of the zoo nets); below, its call costs more than it saves
            # (LeNet's ip2: 17 vs 3 us).
            if layer.axis != 1 or layer.transpose or layer.params[0].numel() < _MIN_LINEAR:
                continue
            kind = _FusedLinear
        elif type(layer) is Eltwise:
            kind = _FusedEltwise
        else:
            continue
        if node.has_loss or len(node.top_ids) != 1 or node.top_ids == node.bottom_ids:
            continue
        top = node.top_ids[0]
        j = i
        bn = scale = None
        slope: float | None = None
        if kind is _FusedConv:
            nxt = nodes[j + 1] if j + 1 < len(nodes) else None
            if (nxt is not None and type(nxt.layer) is BatchNorm and _in_place_on(nxt, top)
                    and nxt.layer.use_global_stats and nxt.layer.channels == layer.num_output):
                bn, j = nxt.layer, j + 1
                nxt = nodes[j + 1] if j + 1 < len(nodes) else None
            if (nxt is not None and type(nxt.layer) is Scale and _in_place_on(nxt, top)
                    and nxt.layer.axis in (1, -3) and len(nxt.layer.params) >= 1
                    and tuple(nxt.layer.params[0].shape) == (layer.num_output,)):
                scale, j = nxt.layer, j + 1
        nxt = nodes[j + 1] if j + 1 < len(nodes) else None
        if nxt is not None and type(nxt.layer) is ReLU and _in_place_on(nxt, top):
            slope, j = nxt.layer.negative_slope, j + 1
        if kind is _FusedEltwise and slope is None:
            continue  # nothing to take in
        out[i] = kind(i, j, layer, bn, scale, slope)
    return out


class InferencePlan(EagerPlan):
    """:class:`EagerPlan` with the fused CPU inference kernels of :func:`fusions`."""

    name = "inference"

    def __init__(self) -> None:
        self._fused: list[Fused | None] | None = None

    def forward_range(self, net: "Net", start: int, end: int, want_loss: bool,
                      keep: bool) -> torch.Tensor | None:
        if (net._any_backward and torch.is_grad_enabled()) or net.device.type != "cpu" \
                or net._hooks["before_forward"] or net._hooks["after_forward"]:
            return super().forward_range(net, start, end, want_loss, keep)
        if self._fused is None:
            self._fused = fusions(net)
            n = sum(f is not None for f in self._fused)
            if n:
                _log.debug("inference plan: %d fused runs", n)
        with torch.no_grad():
            return self.run_layers(net, start, end, want_loss, False, keep, self._fused)

    def __repr__(self) -> str:
        return "<InferencePlan>"
