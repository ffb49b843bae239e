"""Build one layer from a prototxt snippet, and gradcheck it in float64.

    layer = build_layer('type: "ReLU" relu_param { negative_slope: 0.1 }', [(2, 3)])
    gradcheck_layer(layer, [x64])           # bottoms (and learnable params) checked
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from google.protobuf import text_format

from caffe_compat.layers.base import Layer, LayerContext
from caffe_compat.layers.registry import get_layer_class
from caffe_compat.proto import caffe_pb2
from caffe_compat.proto.files import parse_text, read_text


def build_layer(text: str, bottom_shapes: Sequence[Sequence[int]], phase: int = caffe_pb2.TRAIN,
                name: str = "l", n_top: int = 1) -> Layer:
    """A layer from the inside of a ``layer { ... }`` block.

    ``bottom``/``top`` fields are added when the snippet has none (one bottom
    per shape, ``n_top`` tops).
    """
    lp = parse_text(text, caffe_pb2.LayerParameter(), "<test>")
    if not lp.name:
        lp.name = name
    if not len(lp.bottom):
        lp.bottom.extend(f"b{i}" for i in range(len(bottom_shapes)))
    if not len(lp.top):
        lp.top.extend(f"t{i}" for i in range(n_top))
    lp.phase = phase
    cls = get_layer_class(lp.type, lp.name)
    shapes = [tuple(int(d) for d in s) for s in bottom_shapes]
    return cls(lp, shapes, LayerContext(phase=phase))


def run_layer(layer: Layer, *bottoms: torch.Tensor) -> tuple[torch.Tensor, ...]:
    out = layer.forward(*bottoms)
    return (out,) if isinstance(out, torch.Tensor) else tuple(out)


def gradcheck_layer(layer: Layer, bottoms: Sequence[torch.Tensor], check: Sequence[int] | None = None,
                    params: bool = True, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
                    nondet_tol: float = 0.0) -> bool:
    """``torch.autograd.gradcheck`` of ``layer`` in float64.

    ``check``: indices of bottoms to differentiate (default: all floating
    bottoms); ``params``: also differentiate the learnable parameters.
    Integer-valued bottoms (labels) are passed through unchanged.
    """
    layer = layer.double()
    layer.refresh_params()
    xs = [b.detach().double() for b in bottoms]
    check = list(range(len(xs))) if check is None else list(check)
    for i in check:
        xs[i].requires_grad_(True)
    learn = [i for i, p in enumerate(layer.params) if p.requires_grad] if params else []
    ps = [layer.params[i].detach().double().requires_grad_(True) for i in learn]

    def fn(*args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        inputs = list(xs)
        for k, i in enumerate(check):
            inputs[i] = args[k]
        saved = layer.params
        layer.params = list(saved)
        for k, i in enumerate(learn):
            layer.params[i] = args[len(check) + k]
        try:
            outs = run_layer(layer, *inputs)
        finally:
            layer.params = saved
        return tuple(o for o in outs if o.is_floating_point() and o.requires_grad)

    args = [xs[i] for i in check] + ps
    return torch.autograd.gradcheck(fn, args, eps=eps, atol=atol, rtol=rtol, nondet_tol=nondet_tol)


def with_input_layer(src: str | Path, dst: str | Path, data_shape: Sequence[int]) -> Path:
    """``src`` (a train/test prototxt) with its Data layers replaced by one Input layer giving
    ``data`` of ``data_shape`` and ``label`` of ``data_shape[:1]``; written to ``dst``."""
    net = read_text(str(src), caffe_pb2.NetParameter())
    out = caffe_pb2.NetParameter(name=net.name)
    inp = out.layer.add(name="input", type="Input", top=["data", "label"])
    inp.input_param.shape.add(dim=list(data_shape))
    inp.input_param.shape.add(dim=list(data_shape[:1]))
    out.layer.extend(layer for layer in net.layer if layer.type != "Data")
    Path(dst).write_text(text_format.MessageToString(out))
    return Path(dst)
