"""Caffe's learning-rate policies (``SGDSolver::GetLearningRate`` in sgd_solver.cpp).

``iter`` counts completed updates (0 before the first). With ``base_lr`` = b:

========== ==============================================================
fixed      b
step       b · γ^⌊iter / stepsize⌋
exp        b · γ^iter
inv        b · (1 + γ·iter)^(−power)
multistep  b · γ^current_step; current_step advances by at most one per
           call, when iter ≥ stepvalue[current_step] (so it is state, and
           is saved in the solverstate)
poly       b · (1 − iter/max_iter)^power
sigmoid    b / (1 + exp(−γ·(iter − stepsize)))
========== ==============================================================

The rate is a float32, as in Caffe (``Dtype rate``): the powers are taken in
double precision and rounded once, the way ``pow(float, int)`` promotes.

Differences from Caffe: the parameter checks Caffe makes on every call
(``CHECK_GT(stepsize, 0)``, ``CHECK_GE(gamma, 0)``) and the fatal error for an
unknown policy happen once, when the solver is built, as ``SolverError``;
``poly`` also needs ``max_iter > 0`` (Caffe would divide by zero).
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import SolverError
from ..proto import caffe_pb2

__all__ = ["LR_POLICIES", "check_lr_policy", "learning_rate"]

_log = logging.getLogger("caffe_compat")

LR_POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")

_f32 = np.float32


def _pow64(x: float | np.floating, y: float) -> float:
    """``pow`` in double precision, inf/nan instead of exceptions (as C's pow)."""
    with np.errstate(all="ignore"):
        return float(np.power(np.float64(x), np.float64(y)))


def check_lr_policy(param: caffe_pb2.SolverParameter, where: str) -> None:
    """Raise :class:`SolverError` where Caffe's ``GetLearningRate`` would abort."""
    policy = param.lr_policy
    if policy not in LR_POLICIES:
        shown = f'"{policy}"' if policy else "(not set)"
        raise SolverError(
            f"{where}: lr_policy {shown} is not a known learning rate policy; "
            f"expected one of {', '.join(LR_POLICIES)}"
        )
    if policy in ("step", "sigmoid") and param.stepsize <= 0:
        raise SolverError(
            f'{where}: lr_policy "{policy}" needs stepsize > 0, got stepsize: {param.stepsize}'
        )
    if policy in ("step", "exp", "inv", "multistep", "sigmoid") and param.gamma < 0:
        raise SolverError(
            f'{where}: lr_policy "{policy}" needs gamma >= 0, got gamma: {param.gamma:g}'
        )
    if policy == "poly" and param.max_iter <= 0:
        raise SolverError(
            f'{where}: lr_policy "poly" needs max_iter > 0 (the rate decays to 0 at '
            f"max_iter), got max_iter: {param.max_iter}"
        )


def learning_rate(param: caffe_pb2.SolverParameter, it: int, current_step: int) -> tuple[float, int]:
    """The rate at iteration ``it`` and the (possibly advanced) current step."""
    policy = param.lr_policy
    base = _f32(param.base_lr)
    gamma = _f32(param.gamma)
    if policy == "fixed":
        rate = float(base)
    elif policy == "step":
        current_step = it // param.stepsize
        rate = float(base) * _pow64(gamma, current_step)
    elif policy == "exp":
        rate = float(base) * _pow64(gamma, it)
    elif policy == "inv":
        # float32 throughout: pow(Dtype(1) + gamma * iter, -power).
        with np.errstate(all="ignore"):
            x = _f32(1) + gamma * _f32(it)
            rate = float(base * np.power(x, -_f32(param.power), dtype=np.float32))
    elif policy == "multistep":
        if current_step < len(param.stepvalue) and it >= param.stepvalue[current_step]:
            current_step += 1
            _log.info("MultiStep Status: Iteration %d, step = %d", it, current_step)
        rate = float(base) * _pow64(gamma, current_step)
    elif policy == "poly":
        with np.errstate(all="ignore"):
            frac = _f32(1) - _f32(it) / _f32(param.max_iter)
            rate = float(base * np.power(frac, _f32(param.power), dtype=np.float32))
    elif policy == "sigmoid":
        z = -gamma * (_f32(it) - _f32(param.stepsize))
        with np.errstate(all="ignore"):
            rate = float(base * (_f32(1) / (_f32(1) + np.exp(z, dtype=np.float32))))
    else:  # pragma: no cover - check_lr_policy ran at construction
        raise SolverError(f"unknown lr_policy {policy!r}")
    return float(_f32(rate)), current_step
