"""CPU kernel choices for shapes where torch's default kernel is slow.

Measured with ``bench/bench_kernels.py`` (forward + backward, 2-core AMD EPYC;
figures in README):

* **2-D MAX and AVE pooling with 8 or more channels.** torch's NCHW pooling
  kernels are scalar loops; the channels-last kernels vectorise over the
  channels. The forward runs channels-last and converts back; the backward
  runs the NCHW kernel on the indices the forward returned. Both kernels visit
  a window in the same order with the same tie rule, so values and gradients
  are bit-identical to torch's (and the first maximum wins, as in Caffe).
  The input is converted a few images at a time, so the copies stay small and
  in cache. MAX 1.4–2.4× faster, AVE 1.2–1.5×; with fewer channels the layout
  conversions can cost more than they save.
* **The weight gradient of a one-channel 2-D convolution** (the first layer of
  every grey-scale net such as LeNet). oneDNN's direct backward-weights kernel
  is several times slower there than im2col + GEMM — Caffe's own algorithm —
  which torch keeps as ``_slow_conv2d_backward``: forward + backward 2–3.5×
  faster. The forward and the input gradient stay oneDNN's.

Each path is taken only for a plain CPU tensor of float32/float64 outside
tracing and compilation (``torch.compile``, ``torch.export``, ONNX export see
torch's own ops), and :func:`set_enabled` turns all of them off.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

__all__ = ["set_enabled", "pool2d", "conv2d"]

_aten = torch.ops.aten
_FLOATS = (torch.float32, torch.float64)
_CL = torch.channels_last
_MIN_POOL_CHANNELS = 8  # below this the layout conversions cost more than they save
_CHUNK_BYTES = 1 << 21  # pooling input converted per chunk
_on = True


def set_enabled(on: bool) -> bool:
    """Use (True) or bypass (False) the kernel choices; returns the previous setting."""
    global _on
    was, _on = _on, bool(on)
    return was


def _plain_cpu(x: Any) -> bool:
    return (_on and type(x) is torch.Tensor and x.device.type == "cpu" and x.dtype in _FLOATS
            and not torch.compiler.is_compiling() and not torch.jit.is_tracing())


# ------------------------------------------------------------------ pooling
class _PoolChannelsLast(torch.autograd.Function):
    """Forward through the channels-last kernel, backward through the NCHW one."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, is_max: bool, k: list[int], s: list[int], p: list[int],
                ceil: bool) -> torch.Tensor:
        # A few images at a time: the channels-last copies stay small (no memory
        # peak beyond torch's own kernel) and warm in cache.
        n = x.shape[0]
        step = max(1, _CHUNK_BYTES // max(1, x[:1].numel() * x.element_size()))
        y = idx = None
        for i in range(0, n, step):
            xc = x[i:i + step].contiguous(memory_format=_CL)
            if is_max:
                yc, ic = _aten.max_pool2d_with_indices(xc, k, s, p, [1, 1], ceil)
            else:
                yc, ic = _aten.avg_pool2d(xc, k, s, p, ceil, True, None), None
            del xc
            if step >= n:  # one chunk
                y, idx = yc.contiguous(), None if ic is None else ic.contiguous()
                break
            if y is None:
                y = x.new_empty((n, *yc.shape[1:]))
                idx = None if ic is None else ic.new_empty((n, *ic.shape[1:]))
            y[i:i + step] = yc
            if ic is not None:
                idx[i:i + step] = ic  # type: ignore[index]
        if is_max:
            ctx.save_for_backward(x, idx)
        else:
            ctx.save_for_backward(x)
        ctx.args = (is_max, k, s, p, ceil)
        assert y is not None
        return y

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        is_max, k, s, p, ceil = ctx.args
        g = g.contiguous()
        if is_max:
            x, idx = ctx.saved_tensors
            gx = _aten.max_pool2d_with_indices_backward(g, x, k, s, p, [1, 1], ceil, idx)
        else:
            (x,) = ctx.saved_tensors
            gx = _aten.avg_pool2d_backward(g, x, k, s, p, ceil, True, None)
        return gx, None, None, None, None, None


def pool2d(x: torch.Tensor, is_max: bool, k: Sequence[int], s: Sequence[int], p: Sequence[int],
           ceil: bool) -> torch.Tensor:
    """``F.max_pool2d`` / ``F.avg_pool2d`` (count_include_pad) of NCHW ``x``, same values."""
    k, s, p = list(k), list(s), list(p)
    if _plain_cpu(x) and x.dim() == 4 and x.shape[1] >= _MIN_POOL_CHANNELS and x.is_contiguous():
        return _PoolChannelsLast.apply(x, is_max, k, s, p, ceil)
    if is_max:
        return F.max_pool2d(x, k, s, p, ceil_mode=ceil)
    return F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=True)


# -------------------------------------------------------------- convolution
class _ConvOneChannel(torch.autograd.Function):
    """2-D convolution of a one-channel input; weight gradient by im2col + GEMM."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                s: list[int], p: list[int]) -> torch.Tensor:
        ctx.save_for_backward(x, w)
        ctx.args = (s, p, b is not None)
        return F.conv2d(x, w, b, s, p)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, w = ctx.saved_tensors
        s, p, has_bias = ctx.args
        g = g.contiguous()
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = gw = gb = None
        if need_x:
            gx = _aten.convolution_backward(g, x, w, None, s, p, [1, 1], False, [0, 0], 1,
                                            [True, False, False])[0]
        if need_w or (need_b and has_bias):
            _, gw, gb = _aten._slow_conv2d_backward(g, x.contiguous(), w, list(w.shape[2:]), s, p,
                                                    [False, need_w, need_b and has_bias])
        return gx, gw, gb, None, None


def conv2d(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, stride: Sequence[int],
           pad: Sequence[int], dilation: Sequence[int], groups: int) -> torch.Tensor:
    """``F.conv2d`` with the same values (up to float rounding in the weight gradient)."""
    if (groups == 1 and w.shape[1] == 1 and tuple(dilation) == (1, 1) and w.requires_grad
            and torch.is_grad_enabled() and _plain_cpu(x) and x.dim() == 4 and w.dtype == x.dtype):
        return _ConvOneChannel.apply(x, w, b, list(stride), list(pad))
    return F.conv2d(x, w, b, tuple(stride), tuple(pad), tuple(dilation), groups)
