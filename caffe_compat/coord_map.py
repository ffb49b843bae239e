"""pycaffe's ``caffe.coord_map``: how spatial coordinates map between NetSpec tops.

A coordinate map is ``(axis, a, b)``: output coordinate = a · input coordinate + b
along the spatial axes from ``axis`` on (``axis`` None: any axis, as for
pointwise layers). Convolution-like layers map by 1/stride with the shift
(pad − (k_eff − 1)/2)/stride, Deconvolution by the inverse, Crop by −offset.
:func:`coord_map_from_to` composes the maps along the NetSpec graph between two
tops, and :func:`crop` builds the Crop layer that aligns one top to another —
the way FCN scripts (``crop(n.upscore, n.data)``) use it.

Differences from Caffe (pycaffe): the failures pycaffe reported with ``assert``
raise :class:`CoordMapAssertionError` (a CaffeCompatError and an AssertionError,
so it is not skipped under ``python -O``); an unconnected pair raises
:class:`CoordMapError` (also a RuntimeError, as pycaffe's). The graph is walked in
a fixed order (pycaffe walked sets), which gives the same maps for a consistent net.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import CaffeCompatError
from .net_spec import Function, Top, layers as L

__all__ = [
    "PASS_THROUGH_LAYERS",
    "conv_params",
    "crop_params",
    "coord_map",
    "compose",
    "inverse",
    "coord_map_from_to",
    "crop",
    "UndefinedMapException",
    "AxisMismatchException",
    "CoordMapError",
    "CoordMapAssertionError",
]

# Layers that keep every coordinate where it is.
PASS_THROUGH_LAYERS = ["AbsVal", "BatchNorm", "Bias", "BNLL", "Dropout",
                       "Eltwise", "ELU", "Log", "LRN", "Exp", "MVN", "Power",
                       "ReLU", "PReLU", "Scale", "Sigmoid", "Split", "TanH",
                       "Threshold"]

CoordMap = tuple[Any, Any, Any]


class UndefinedMapException(CaffeCompatError):
    """The layer type has no coordinate mapping (the walk stops there)."""


class AxisMismatchException(CaffeCompatError, ValueError):
    """Two maps act on different spatial axes and cannot be composed."""


class CoordMapError(CaffeCompatError, RuntimeError):
    """No chain of spatial layers connects the two tops."""


class CoordMapAssertionError(CaffeCompatError, AssertionError):
    """A crop that cannot be made (scale mismatch, negative or fractional offset)."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise CoordMapAssertionError(message)


def conv_params(fn: Function) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(axis, stride, effective kernel size, pad) of a Convolution/Deconvolution/Pooling/Im2col."""
    params = fn.params.get("convolution_param", fn.params)
    axis = params.get("axis", 1)
    if "kernel_size" not in params:
        raise CoordMapAssertionError(f"{fn.type_name} layer: coord_map needs kernel_size "
                                     f"(got parameters {sorted(params)})")
    ks = np.array(params["kernel_size"], ndmin=1)
    dilation = np.array(params.get("dilation", 1), ndmin=1)
    legacy = {"pad_h", "pad_w", "kernel_h", "kernel_w", "stride_h", "stride_w"} & set(fn.params)
    _check(not legacy, "cropping does not support legacy _h/_w params")
    return (axis, np.array(params.get("stride", 1), ndmin=1),
            (ks - 1) * dilation + 1, np.array(params.get("pad", 0), ndmin=1))


def crop_params(fn: Function) -> tuple[int, np.ndarray]:
    """(axis, offset) of a Crop layer, with Caffe's defaults (axis 2, offset 0)."""
    params = fn.params.get("crop_param", fn.params)
    return params.get("axis", 2), np.array(params.get("offset", 0), ndmin=1)


def coord_map(fn: Function) -> CoordMap:
    """The (axis, scale, shift) map from a layer's bottom to its top."""
    if fn.type_name in ("Convolution", "Pooling", "Im2col"):
        axis, stride, ks, pad = conv_params(fn)
        return axis, 1 / stride, (pad - (ks - 1) / 2) / stride
    if fn.type_name == "Deconvolution":
        axis, stride, ks, pad = conv_params(fn)
        return axis, stride, (ks - 1) / 2 - pad
    if fn.type_name in PASS_THROUGH_LAYERS:
        return None, 1, 0
    if fn.type_name == "Crop":
        axis, offset = crop_params(fn)
        return axis - 1, 1, -offset  # the axis before the first cropped one
    raise UndefinedMapException(f"{fn.type_name} layers have no coordinate mapping")


def compose(base_map: CoordMap, next_map: CoordMap) -> CoordMap:
    """``next_map`` after ``base_map``: scales multiply, the shift is scaled by the base scale."""
    ax1, a1, b1 = base_map
    ax2, a2, b2 = next_map
    if ax1 is None:
        ax = ax2
    elif ax2 is None or ax1 == ax2:
        ax = ax1
    else:
        raise AxisMismatchException(f"cannot compose coordinate maps on axes {ax1} and {ax2}")
    return ax, a1 * a2, a1 * b2 + b1


def inverse(coord_map: CoordMap) -> CoordMap:
    """The backward map: de-scale and un-shift."""
    ax, a, b = coord_map
    return ax, 1 / a, -b / a


def _mappable_bottoms(top: Top) -> tuple[Top, ...]:
    # Only a Crop's first bottom is mapped; its second only gives the size.
    bottoms = top.fn.inputs
    return bottoms[:1] if top.fn.type_name == "Crop" else bottoms


def coord_map_from_to(top_from: Top, top_to: Top) -> CoordMap:
    """The map taking coordinates of ``top_from`` to those of ``top_to``.

    Walks back from both tops to a common ancestor, composing maps on the way.
    """
    from_maps: dict[Top, CoordMap] = {top_from: (None, 1, 0)}
    frontier = [top_from]
    while frontier:
        top = frontier.pop()
        try:
            for bottom in _mappable_bottoms(top):
                from_maps[bottom] = compose(from_maps[top], coord_map(top.fn))
                frontier.append(bottom)
        except UndefinedMapException:
            pass
    to_maps: dict[Top, CoordMap] = {top_to: (None, 1, 0)}
    frontier = [top_to]
    while frontier:
        top = frontier.pop()
        if top in from_maps:
            return compose(to_maps[top], inverse(from_maps[top]))
        try:
            for bottom in _mappable_bottoms(top):
                to_maps[bottom] = compose(to_maps[top], coord_map(top.fn))
                frontier.append(bottom)
        except UndefinedMapException:
            continue
    raise CoordMapError("Could not compute map between tops; are they connected by spatial "
                        f"layers? (from a {top_from.fn.type_name} top to a {top_to.fn.type_name} top)")


def crop(top_from: Top, top_to: Top) -> Top:
    """A Crop layer cropping ``top_from`` to ``top_to``'s extent, offsets from the coordinate map."""
    ax, a, b = coord_map_from_to(top_from, top_to)
    if ax is None:
        raise CoordMapError("crop: the tops are related by pointwise layers only; "
                            "there is no spatial axis to crop")
    _check(bool(np.all(np.asarray(a) == 1)), f"scale mismatch on crop (a = {a})")
    _check(bool(np.all(np.asarray(b) <= 0)), f"cannot crop negative offset (b = {b})")
    _check(bool(np.all(np.round(b) == b)), f"cannot crop noninteger offset (b = {b})")
    offset = [int(v) for v in -np.round(np.asarray(b, dtype=float)).astype(int).reshape(-1)]
    return L.Crop(top_from, top_to, crop_param=dict(axis=ax + 1, offset=offset))
