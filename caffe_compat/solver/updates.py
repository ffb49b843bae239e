"""Caffe's gradient processing and update rules, on lists of tensors at once.

Each step mirrors ``SGDSolver::ApplyUpdate`` (sgd_solver.cpp and the
``*_solver.cpp`` files) in Caffe's order, every stage as a few
``torch._foreach_*`` calls over all parameters (no per-parameter Python loop):

1. :func:`clip_gradients` — scale every diff by clip/‖g‖ when the global L2
   norm of all diffs exceeds ``clip_gradients`` (on the *accumulated* diffs,
   before the ÷ iter_size);
2. :func:`normalize` — ÷ iter_size;
3. :func:`regularize` — g += local_decay·w (L2) or local_decay·sign(w) (L1),
   local_decay = weight_decay · decay_mult;
4. ``rule.compute`` — the solver type's update value, written into the diff
   (as Caffe leaves it), using and updating the history;
5. the solver then subtracts the diff from the data.

The arithmetic follows Caffe's BLAS call sequence (``axpby`` is "scale y,
then add a·x"), so results agree with Caffe to float32 rounding.

Differences from Caffe: none known in the arithmetic; the clip threshold and
all coefficients are float32 as in Caffe.
"""

from __future__ import annotations

import logging
import math
from typing import ClassVar, Sequence

import numpy as np
import torch

from ..proto import caffe_pb2

__all__ = [
    "UpdateRule", "SGDRule", "NesterovRule", "AdaGradRule", "RMSPropRule", "AdaDeltaRule",
    "AdamRule", "RULES", "clip_gradients", "normalize", "regularize", "f32",
]

_log = logging.getLogger("caffe_compat")

Tensors = Sequence[torch.Tensor]


def f32(x: float) -> float:
    """``x`` rounded to float32 (Caffe's ``Dtype``), as a Python float."""
    return float(np.float32(x))


def clip_gradients(grads: Tensors, clip: float) -> float | None:
    """Scale ``grads`` down to global L2 norm ``clip`` (Caffe: only if clip ≥ 0).

    Returns the scale factor used, or None when nothing was scaled.
    """
    if clip < 0 or not grads:
        return None
    norms = torch._foreach_norm(list(grads))
    l2 = f32(math.sqrt(float(torch.stack(norms).double().square().sum())))
    if not l2 > clip:
        return None
    scale = f32(clip / l2)
    _log.info("Gradient clipping: scaling down gradients (L2 norm %g > %g) by scale factor %g",
              l2, clip, scale)
    torch._foreach_mul_(list(grads), scale)
    return scale


def normalize(grads: Tensors, iter_size: int) -> None:
    """Undo the accumulation over ``iter_size`` forward/backward passes."""
    if iter_size != 1 and grads:
        torch._foreach_mul_(list(grads), f32(1.0 / iter_size))


def regularize(params: Tensors, grads: Tensors, decays: Sequence[float], kind: str) -> None:
    """Add weight decay to the gradients, grouped by local decay value."""
    groups: dict[float, list[int]] = {}
    for i, d in enumerate(decays):
        if d:
            groups.setdefault(d, []).append(i)
    for d, idx in groups.items():
        p = [params[i] for i in idx]
        g = [grads[i] for i in idx]
        if kind == "L2":
            torch._foreach_add_(g, p, alpha=d)
        else:  # "L1"; validated when the solver was built
            torch._foreach_add_(g, torch._foreach_sign(p), alpha=d)


class UpdateRule:
    """One solver type's ``ComputeUpdateValue``: turns diffs into updates in place."""

    type: ClassVar[str] = ""
    #: history blobs per learnable parameter (Adam, AdaDelta keep two).
    n_history: ClassVar[int] = 1

    def __init__(self, param: caffe_pb2.SolverParameter) -> None:
        self.momentum = f32(param.momentum)
        self.momentum2 = f32(param.momentum2)
        self.delta = f32(param.delta)
        self.rms_decay = f32(param.rms_decay)

    def compute(self, grads: list[torch.Tensor], history: list[torch.Tensor],
                rates: list[float], it: int) -> None:
        raise NotImplementedError


class SGDRule(UpdateRule):
    """V ← m·V + rate·g; the update is V (the rate lives in the history)."""

    type = "SGD"

    def compute(self, grads, history, rates, it):
        h = history
        torch._foreach_mul_(grads, rates)
        torch._foreach_mul_(h, self.momentum)
        torch._foreach_add_(h, grads)
        torch._foreach_copy_(grads, h)


class NesterovRule(UpdateRule):
    """V ← m·V + rate·g; update = (1 + m)·V_new − m·V_old ("step back, then over")."""

    type = "Nesterov"

    def compute(self, grads, history, rates, it):
        m = self.momentum
        old = torch._foreach_mul(history, 1.0)
        torch._foreach_mul_(grads, rates)
        torch._foreach_mul_(history, m)
        torch._foreach_add_(history, grads)
        torch._foreach_mul_(old, -m)
        torch._foreach_add_(old, history, alpha=f32(1.0 + m))
        torch._foreach_copy_(grads, old)


class AdaGradRule(UpdateRule):
    """H ← H + g²; update = rate·g / (sqrt(H) + δ)."""

    type = "AdaGrad"

    def compute(self, grads, history, rates, it):
        sq = torch._foreach_mul(grads, grads)
        torch._foreach_add_(history, sq)
        den = torch._foreach_sqrt(history)
        torch._foreach_add_(den, self.delta)
        torch._foreach_div_(grads, den)
        torch._foreach_mul_(grads, rates)


class RMSPropRule(UpdateRule):
    """H ← d·H + (1 − d)·g²; update = rate·g / (sqrt(H) + δ)."""

    type = "RMSProp"

    def compute(self, grads, history, rates, it):
        d = self.rms_decay
        sq = torch._foreach_mul(grads, grads)
        torch._foreach_mul_(history, d)
        torch._foreach_add_(history, sq, alpha=f32(1.0 - d))
        den = torch._foreach_sqrt(history)
        torch._foreach_add_(den, self.delta)
        torch._foreach_div_(grads, den)
        torch._foreach_mul_(grads, rates)


class AdaDeltaRule(UpdateRule):
    """Zeiler's AdaDelta with ρ = momentum: history[0:n] = E[g²], history[n:2n] = E[Δ²].

    Δ = g·sqrt((E[Δ²] + δ)/(E[g²] + δ)); E[Δ²] is updated with the unscaled
    Δ; the update is rate·Δ.
    """

    type = "AdaDelta"
    n_history = 2

    def compute(self, grads, history, rates, it):
        n = len(grads)
        hg, hu = history[:n], history[n:]
        rho = self.momentum
        one_minus = f32(1.0 - rho)
        sq = torch._foreach_mul(grads, grads)
        torch._foreach_mul_(hg, rho)
        torch._foreach_add_(hg, sq, alpha=one_minus)
        num = torch._foreach_add(hu, self.delta)
        den = torch._foreach_add(hg, self.delta)
        torch._foreach_div_(num, den)
        torch._foreach_sqrt_(num)
        torch._foreach_mul_(grads, num)
        sq = torch._foreach_mul(grads, grads)
        torch._foreach_mul_(hu, rho)
        torch._foreach_add_(hu, sq, alpha=one_minus)
        torch._foreach_mul_(grads, rates)


class AdamRule(UpdateRule):
    """m ← β1·m + (1 − β1)·g; v ← β2·v + (1 − β2)·g²;
    update = rate·sqrt(1 − β2^t)/(1 − β1^t) · m/(sqrt(v) + δ), t = iter + 1.

    history[0:n] = m, history[n:2n] = v; δ is added to the *uncorrected*
    sqrt(v), as in Caffe (not Kingma & Ba's ε̂ placement).
    """

    type = "Adam"
    n_history = 2

    def compute(self, grads, history, rates, it):
        n = len(grads)
        m, v = history[:n], history[n:]
        b1, b2 = self.momentum, self.momentum2
        t = it + 1
        # Caffe: sqrt(Dtype(1) - pow(beta2, t)) / (Dtype(1.) - pow(beta1, t)), in
        # double (pow(float, int) promotes), stored as a float.
        with np.errstate(all="ignore"):
            correction = f32(np.sqrt(1.0 - np.power(np.float64(b2), t))
                             / (1.0 - np.power(np.float64(b1), t)))
        scales = [f32(r * correction) for r in rates]
        torch._foreach_mul_(m, b1)
        torch._foreach_add_(m, grads, alpha=f32(1.0 - b1))
        sq = torch._foreach_mul(grads, grads)
        torch._foreach_mul_(v, b2)
        torch._foreach_add_(v, sq, alpha=f32(1.0 - b2))
        den = torch._foreach_sqrt(v)
        torch._foreach_add_(den, self.delta)
        torch._foreach_copy_(grads, m)
        torch._foreach_div_(grads, den)
        torch._foreach_mul_(grads, scales)


RULES: dict[str, type[UpdateRule]] = {
    r.type: r for r in (SGDRule, NesterovRule, AdaGradRule, RMSPropRule, AdaDeltaRule, AdamRule)
}
