"""pycaffe's batch conveniences on Net (``python/caffe/pycaffe.py``).

``forward_all`` and ``forward_backward_all`` split arrays into net-sized
batches (padding the last one with zeros and dropping the padding from the
result), as pycaffe does. They are attached to :class:`~caffe_compat.net.Net`,
with the underscore methods of pycaffe's compiled ``Net`` that scripts call
(``_forward(i, j)``, ``_backward(i, j)``, ``_bottom_ids(i)``, ``_top_ids(i)``,
``_batch``, ``_set_input_arrays``; BVLC's ``python/train.py`` and many
net-surgery scripts use them with layer indices).
"""

from __future__ import annotations

from itertools import zip_longest
from typing import Any, Iterator, cast

import numpy as np

from .errors import ShapeError
from .net import Net

__all__ = ["forward_all", "forward_backward_all", "batches"]


def batches(net: Net, arrays: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    """Net-sized batches of ``arrays`` (first axis), the last one zero-padded."""
    if not arrays:
        return
    sizes = {name: len(a) for name, a in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ShapeError(f"all arrays must have the same number of items, got {sizes}")
    num = next(iter(sizes.values()))
    batch = next(iter(net.blobs.values())).shape[0]
    for start in range(0, num - num % batch, batch):
        yield {name: a[start:start + batch] for name, a in arrays.items()}
    rest = num % batch
    if rest:
        padded = {}
        for name, a in arrays.items():
            a = np.asarray(a)
            pad = np.zeros((batch - rest,) + a.shape[1:], dtype=np.float32)
            padded[name] = np.concatenate([a[-rest:], pad])
        yield padded


def _pad_of(outs: dict[str, list[Any]], kwargs: dict[str, Any]) -> int:
    if not outs or not kwargs:
        return 0
    return len(next(iter(outs.values()))) - len(next(iter(kwargs.values())))


def forward_all(self: Net, blobs: list[str] | None = None, **kwargs: np.ndarray) -> dict[str, np.ndarray]:
    """Forward ``kwargs`` (input name → N items) in batches; outputs for all N."""
    names = set(self.outputs) | set(blobs or ())
    outs: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for batch in batches(self, kwargs):
        for name, value in self.forward(blobs, **cast(dict[str, Any], batch)).items():
            outs[name].extend(value.copy())
    result = {n: np.asarray(v) for n, v in outs.items()}
    pad = _pad_of(outs, kwargs)
    return {n: v[:-pad] for n, v in result.items()} if pad else result


def forward_backward_all(self: Net, blobs: list[str] | None = None, diffs: list[str] | None = None,
                         **kwargs: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Forward inputs and backward output diffs (both from ``kwargs``) in batches."""
    outs: dict[str, list[np.ndarray]] = {n: [] for n in set(self.outputs) | set(blobs or ())}
    grads: dict[str, list[np.ndarray]] = {n: [] for n in set(self.inputs) | set(diffs or ())}
    fwd = batches(self, {n: kwargs[n] for n in self.inputs if n in kwargs})
    bwd = batches(self, {n: kwargs[n] for n in self.outputs if n in kwargs})
    nothing: dict[str, np.ndarray] = {}
    for fb, bb in zip_longest(fwd, bwd, fillvalue=nothing):
        for name, value in self.forward(blobs, **cast(dict[str, Any], fb)).items():
            outs[name].extend(value.copy())
        for name, value in self.backward(diffs, **cast(dict[str, Any], bb)).items():
            grads[name].extend(value.copy())
    result_o = {n: np.asarray(v) for n, v in outs.items()}
    result_d = {n: np.asarray(v) for n, v in grads.items()}
    pad = _pad_of(outs, kwargs)
    if pad:
        result_o = {n: v[:-pad] for n, v in result_o.items()}
        result_d = {n: v[:-pad] for n, v in result_d.items()}
    return result_o, result_d


Net.forward_all = forward_all  # type: ignore[attr-defined]
Net.forward_backward_all = forward_backward_all  # type: ignore[attr-defined]


def _set_input_arrays(self: Net, data: np.ndarray, labels: np.ndarray) -> None:
    """Feed the net's first layer, a MemoryData layer (pycaffe's ``set_input_arrays``)."""
    from .layers.data.memory_data import set_input_arrays

    set_input_arrays(self, data, labels)


Net.set_input_arrays = _set_input_arrays  # type: ignore[attr-defined]
Net._set_input_arrays = _set_input_arrays  # type: ignore[attr-defined]


def _layer_name(net: Net, index: int, what: str) -> str:
    names = net._layer_names
    if not -len(names) <= int(index) < len(names):
        raise IndexError(f"{what}: layer index {index} out of range (the net has {len(names)} layers)")
    return names[int(index)]


def _forward_indices(self: Net, start: int, end: int) -> float:
    """pycaffe's ``net._forward(start, end)`` (Caffe's ``ForwardFromTo``): the loss of those layers."""
    first, last = _layer_name(self, start, "_forward"), _layer_name(self, end, "_forward")
    self.forward(start=first, end=last)
    weights = self.blob_loss_weights
    loss = 0.0
    for name in self._layer_names[self._layer_names.index(first):self._layer_names.index(last) + 1]:
        for top in self.top_names[name]:
            if weights.get(top):
                loss += float(self.blobs[top].data.sum()) * weights[top]
    return loss


def _backward_indices(self: Net, start: int, end: int) -> None:
    """pycaffe's ``net._backward(start, end)`` (Caffe's ``BackwardFromTo``, ``start >= end``)."""
    self.backward(start=_layer_name(self, start, "_backward"), end=_layer_name(self, end, "_backward"))


def _bottom_ids(self: Net, index: int) -> list[int]:
    """The blob indices (into ``net._blobs``) of layer ``index``'s bottoms."""
    ids = {name: i for i, name in enumerate(self._blob_names)}
    return [ids[b] for b in self.bottom_names[_layer_name(self, index, "_bottom_ids")]]


def _top_ids(self: Net, index: int) -> list[int]:
    """The blob indices (into ``net._blobs``) of layer ``index``'s tops."""
    ids = {name: i for i, name in enumerate(self._blob_names)}
    return [ids[t] for t in self.top_names[_layer_name(self, index, "_top_ids")]]


def _batch(self: Net, blobs: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    """pycaffe's ``net._batch(blobs)``: net-sized batches, the last one zero-padded."""
    return batches(self, blobs)


Net._forward = _forward_indices  # type: ignore[attr-defined]
Net._backward = _backward_indices  # type: ignore[attr-defined]
Net._bottom_ids = _bottom_ids  # type: ignore[attr-defined]
Net._top_ids = _top_ids  # type: ignore[attr-defined]
Net._batch = _batch  # type: ignore[attr-defined]
