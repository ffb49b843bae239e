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
  conversions can cost more than they save. On the model-zoo nets' shapes
  (``bench/bench_kernels.py --big``) MAX is 1.6–11× faster, except where one
  window covers the whole map (global pooling, e.g. GoogLeNet's and ResNet-50's
  AVE 7/1 on 7×7: 0.2–0.5×), where the output is small (AlexNet's pool5 at
  batch 1, 9216 outputs: 0.5–0.8×; the conversions' fixed cost) and for AVE
  over many channels (GoogLeNet's auxiliary AVE 5/3 on 512 channels: 0.6–0.9×),
  which stay torch's.
* **Pooling of a channels-last input** (what the inference plan's convolutions
  give) runs torch's channels-last kernel directly, with the batch stride of a
  one-image batch made canonical: 4-20x faster than either NCHW path on the
  GoogLeNet/ResNet-50 shapes (``F.max_pool2d`` on (1, 192, 56, 56): 0.12 ms
  against 0.58 ms chunked and 2.6 ms NCHW).
* **The weight gradient of a one-channel 2-D convolution** (the first layer of
  every grey-scale net such as LeNet). oneDNN's direct backward-weights kernel
  is several times slower there than im2col + GEMM — Caffe's own algorithm —
  which torch keeps as ``_slow_conv2d_backward``: forward + backward 2–3.5×
  faster. The forward and the input gradient stay oneDNN's.

* **LRN across channels** (AlexNet, CaffeNet, GoogLeNet). The channel window
  sum runs as n − 1 shifted in-place adds of the squares instead of
  ``avg_pool3d`` over a (N, 1, C, H, W) view, whose CPU kernel neither
  vectorises nor threads over that view; the backward is Caffe's closed form
  (``lrn_layer.cpp``: dx = g·s^−β − 2αβ/n · x · Σ_window(g·y/s)), which is
  autograd's derivative with a fifth of its kernels; without a graph the
  forward works in place. Forward + backward 3–10× faster on the nets' shapes,
  forward alone 3–8×.

Each path is taken only for a plain CPU tensor of float32/float64 outside
tracing and compilation (``torch.compile``, ``torch.export``, ONNX export see
torch's own ops), and :func:`set_enabled` turns all of them off.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

__all__ = ["set_enabled", "pool2d", "conv2d", "lrn_across_channels", "channels_last_view"]

_aten = torch.ops.aten
_FLOATS = (torch.float32, torch.float64)
_CL = torch.channels_last
_MIN_POOL_CHANNELS = 8  # below this the layout conversions cost more than they save
_CHUNK_BYTES = 1 << 21  # pooling input converted per chunk
_MIN_POOL_OUTPUTS = 1 << 14  # fewer: the conversions' fixed cost exceeds the gain
_MAX_AVE_CHANNELS = 256  # AVE wins on CIFAR's 32-64 channels, loses on GoogLeNet's 512-528
_on = True


def set_enabled(on: bool) -> bool:
    """Use (True) or bypass (False) the kernel choices; returns the previous setting."""
    global _on
    was, _on = _on, bool(on)
    return was


def channels_last_view(x: torch.Tensor) -> torch.Tensor | None:
    """``x`` with canonical channels-last strides when it is a channels-last tensor that is
    not also NCHW-contiguous (else None). A one-image batch may carry any batch stride
    (torch.cat gives one), which makes torch's kernels take it for NCHW and copy."""
    if x.dim() != 4 or x.is_contiguous() or not x.is_contiguous(memory_format=_CL):
        return None
    n, c, h, w = x.shape
    if x.stride(0) != c * h * w and n == 1:
        x = x.as_strided(x.shape, (c * h * w, 1, w * c, c))
    return x


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


def _one_window(shape: Sequence[int], k: Sequence[int], p: Sequence[int]) -> bool:
    """Whether the window covers the whole (padded) map: global pooling, a plain reduction
    that torch's NCHW kernel does faster than a layout change."""
    return shape[2] + 2 * p[0] <= k[0] and shape[3] + 2 * p[1] <= k[1]


def _outputs(shape: Sequence[int], k: Sequence[int], s: Sequence[int], p: Sequence[int],
             ceil: bool) -> int:
    """Elements of the pooled output (torch's rounding; the layer checks Caffe's)."""
    n = shape[0] * shape[1]
    for i in range(2):
        span = shape[2 + i] + 2 * p[i] - k[i]
        n *= max(1, (-(-span // s[i]) if ceil else span // s[i]) + 1)
    return n


def pool2d(x: torch.Tensor, is_max: bool, k: Sequence[int], s: Sequence[int], p: Sequence[int],
           ceil: bool) -> torch.Tensor:
    """``F.max_pool2d`` / ``F.avg_pool2d`` (count_include_pad) of NCHW ``x``, same values."""
    k, s, p = list(k), list(s), list(p)
    xl = channels_last_view(x) if _plain_cpu(x) else None
    if xl is not None:  # already channels-last (the inference plan's convolutions): torch's own
        x = xl          # channels-last kernel, 4-20x faster than the NCHW paths on these shapes
    elif (_plain_cpu(x) and x.dim() == 4 and x.shape[1] >= _MIN_POOL_CHANNELS and x.is_contiguous()
            and (is_max or x.shape[1] <= _MAX_AVE_CHANNELS) and not _one_window(x.shape, k, p)
            and _outputs(x.shape, k, s, p, ceil) >= _MIN_POOL_OUTPUTS):
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


# ---------------------------------------------------------------------- LRN
def _channel_window_sum(t: torch.Tensor, half: int) -> torch.Tensor:
    """Σ of ``t`` over the channels c − half … c + half (zero outside), as 2·half shifted adds."""
    acc = t.clone()
    for d in range(1, min(half, t.shape[1] - 1) + 1):
        acc[:, d:] += t[:, :-d]
        acc[:, :-d] += t[:, d:]
    return acc


def _lrn_scale(x: torch.Tensor, n: int, alpha: float, k: float) -> torch.Tensor:
    """k + α/n · Σ_window x² (Caffe's ``scale_``)."""
    return _channel_window_sum(x * x, (n - 1) // 2).mul_(alpha / n).add_(k)


def _pow_neg_(t: torch.Tensor, beta: float) -> torch.Tensor:
    """``t ** -beta`` in place. Caffe's β = 0.75 (every zoo net's LRN) as
    rsqrt(t) · sqrt(rsqrt(t)): 2.5-3.4x faster than pow on the AlexNet/GoogLeNet LRN
    shapes, within 2.2e-7 relative of float64 (pow: 6e-8)."""
    if beta == 0.75:
        r = t.rsqrt_()
        return r.mul_(r.sqrt())
    if beta == 0.5:
        return t.rsqrt_()
    if beta == 1.0:
        return t.reciprocal_()
    return t.pow_(-beta)


class _LRNAcross(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, n: int, alpha: float, beta: float, k: float) -> torch.Tensor:
        scale = _lrn_scale(x, n, alpha, k)
        powed = _pow_neg_(scale.clone(), beta)
        ctx.save_for_backward(x, scale, powed)
        ctx.args = (n, alpha, beta)
        return x * powed

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, scale, powed = ctx.saved_tensors
        n, alpha, beta = ctx.args
        ratio = g * x  # g · y / scale = g · x · scale^-β / scale
        ratio.mul_(powed).div_(scale)
        gx = g * powed
        gx.addcmul_(x, _channel_window_sum(ratio, (n - 1) // 2), value=-2.0 * alpha * beta / n)
        return gx, None, None, None, None


def lrn_across_channels(x: torch.Tensor, n: int, alpha: float, beta: float,
                        k: float) -> torch.Tensor | None:
    """Caffe's ACROSS_CHANNELS LRN of NCHW ``x`` (odd ``n``), or None where this path is not
    taken (the caller then runs its general formula)."""
    if not (_plain_cpu(x) and x.dim() == 4):
        return None
    if torch.is_grad_enabled() and x.requires_grad:
        return _LRNAcross.apply(x, n, alpha, beta, k)
    return _pow_neg_(_lrn_scale(x, n, alpha, k), beta).mul_(x)
