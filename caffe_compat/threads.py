"""torch's CPU threads under load: OpenMP waits passively unless the user says otherwise.

torch's CPU kernels run on an OpenMP team (GNU libgomp in the official wheels).
By default an idle libgomp thread spin-waits (about 300,000 polls) for the next
parallel region before it sleeps. On a quiet machine that saves a wake-up per
region; on a machine where something else also wants the cores — a data loader,
a second job, CI, other test workers — the spinning threads are always runnable,
take the cores from the work that is left (the other process and our own
interpreter thread), and every parallel region then waits a scheduler time slice
for the one team thread that was preempted. Measured on the 2-core benchmark
machine with other processes running (``bench/bench_threads.py``): LeNet b64
fwd+bwd 280–300 ms spinning against 36–40 ms passive, AlexNet b2 1.0–1.4 s
against 0.32–0.49 s. A sleeping thread is woken with the scheduler's wake-up
preference instead, so passive waiting degrades like OpenCV's thread pool does.
The price is a wake-up per parallel region when nothing competes: on tiny nets
such as LeNet, spinning was faster in the moments the busy VM left it alone
(16 ms against 24–26 ms per fwd+bwd); a machine known to be quiet can ask for
spinning (below), and ``bench/bench_threads.py`` measures both.

libgomp reads its wait policy once, when torch loads it. So this module — the
first thing ``import caffe_compat`` runs; importing it configures — sets
``OMP_WAIT_POLICY=PASSIVE`` for the moment torch is imported (and removes it
again, so child processes inherit the user's environment unchanged), unless

* the user chose a policy (``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT`` or
  ``KMP_BLOCKTIME`` set), which is kept;
* ``CAFFE_COMPAT_OMP_WAIT=spin`` (or ``active``) asks for libgomp's default;
* torch was imported before caffe_compat: its OpenMP runtime is initialised and
  can no longer change its policy (:func:`openmp_policy` says so; set
  ``OMP_WAIT_POLICY=PASSIVE`` in the environment, or import caffe_compat first).
"""

from __future__ import annotations

import os
import sys

__all__ = ["configure_openmp", "openmp_policy", "USER_VARS"]

#: Environment variables by which a user chooses OpenMP's wait policy themselves.
USER_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")

_policy: str | None = None


def configure_openmp() -> str:
    """Import torch with a passive OpenMP wait policy where that is still possible and the
    user has not chosen one; returns what :func:`openmp_policy` reports. Idempotent."""
    global _policy
    if _policy is not None:
        return _policy
    choice = os.environ.get("CAFFE_COMPAT_OMP_WAIT", "passive").strip().lower()
    user = [f"{k}={os.environ[k]}" for k in USER_VARS if k in os.environ]
    if user:
        _policy = "set by the environment: " + ", ".join(user)
    elif choice in ("spin", "active", "default"):
        _policy = "libgomp's default (spin), asked for by CAFFE_COMPAT_OMP_WAIT"
    elif "torch" in sys.modules:
        _policy = ("libgomp's default (spin): torch was imported before caffe_compat; set "
                   "OMP_WAIT_POLICY=PASSIVE or import caffe_compat first")
    else:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        try:
            import torch  # noqa: F401  (libgomp reads the policy while torch loads it)
        finally:
            del os.environ["OMP_WAIT_POLICY"]
        _policy = "passive (set by caffe_compat when it imported torch)"
    return _policy


def openmp_policy() -> str:
    """How torch's OpenMP threads wait between parallel regions in this process, and why."""
    return _policy or configure_openmp()


configure_openmp()
