"""torch's CPU threads under load: spin while the machine is ours, fewer threads while
other processes compete for its cores.

torch's CPU kernels run on an OpenMP team (GNU libgomp in the official wheels).
By default an idle libgomp thread spin-waits (about 300,000 polls) for the next
parallel region before it sleeps. On a quiet machine that saves a wake-up per
region: a batch-1 GoogLeNet forward is ~60 parallel regions, and waking a sleeping
thread for each cost 1.6x in its convolutions on the 2-core VM (15.7 against 9.6 ms).
On a machine where something else also wants the cores — a data loader, a second
job, CI, other test workers — the spinning threads are always runnable, take the
cores from the work that is left (the other process and our own interpreter
thread), and every parallel region then waits a scheduler time slice for the one
team thread that was preempted (LeNet b64 fwd+bwd 280–300 ms spinning against
36–40 ms passive on the busy VM, ``bench/bench_threads.py``).

So caffe_compat has libgomp spin (for about a millisecond) and governs the team's size instead
(``adaptive``, the default): a quarter second after each decision it measures, over 0.3 s
of the net's forward/backward calls (those of 2 ms or more) (:func:`span`), how much CPU time other processes
took
(``/proc/stat`` less this process's own) and, while they keep cores busy, runs
torch on the cores that are left (one, on the 2-core machine with one other busy
process: a single thread has nothing to spin or wait for); when they stop, the full
count comes back. The count the governor never exceeds is torch's at import
(``OMP_NUM_THREADS``, ``torch.set_num_threads``); a later ``torch.set_num_threads``
by the user becomes the new ceiling. Float results of reductions can depend on the
thread count, so under changing load two runs can differ in the last bits; pin the
count (``CAFFE_COMPAT_OMP_WAIT=spin`` or ``passive``) for bit-for-bit reruns.

libgomp reads its wait policy once, when torch loads it. So this module — the
first thing ``import caffe_compat`` runs; importing it configures — chooses, from
``CAFFE_COMPAT_OMP_WAIT``:

* ``adaptive`` (default): libgomp spinning for :data:`SPIN_COUNT` polls (``GOMP_SPINCOUNT``
  while torch loads, removed again) and the governor above (where ``/proc/stat`` exists;
  elsewhere ``passive``);
* ``passive``: ``OMP_WAIT_POLICY=PASSIVE`` for the moment torch is imported (removed
  again, so child processes inherit the user's environment): threads sleep between
  regions, a wake-up per region, fixed thread count;
* ``spin`` (or ``active``): libgomp's default, fixed thread count;

unless the user chose a policy (``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT`` or
``KMP_BLOCKTIME`` set), which is kept with a fixed count. When torch was imported
before caffe_compat its OpenMP runtime is initialised (spinning, unless the user
chose otherwise); ``adaptive`` then still governs the thread count.
:func:`openmp_policy` says which applies.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Callable

__all__ = ["configure_openmp", "openmp_policy", "span", "ceiling", "Governor", "USER_VARS"]

#: Environment variables by which a user chooses OpenMP's wait policy themselves.
USER_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")

#: Polls before an idle libgomp thread sleeps, in adaptive mode: about a millisecond here, far
#: longer than the gaps between a forward's parallel regions (quiet-machine speed as with
#: libgomp's 300000, within noise: LeNet fwd+bwd, GoogLeNet and ResNet-50 b1), but a tenth of
#: the ~10 ms of CPU the default burns after the last region of a forward, which other thread
#: pools in the process (OpenCV, ONNX Runtime) and neighbours would otherwise lose.
SPIN_COUNT = 30000

_log = logging.getLogger("caffe_compat")
_policy: str | None = None
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds() -> tuple[float, int] | None:
    """CPU seconds all processes were busy (steal included: the hypervisor's, not ours to
    use) and the number of CPUs, from ``/proc/stat``; None where it cannot be read."""
    try:
        with open("/proc/stat", "rb") as f:
            text = f.read(65536).decode("ascii", "replace")
    except OSError:
        return None
    total, ncpu = None, 0
    for line in text.splitlines():
        if line.startswith("cpu "):
            v = [int(x) for x in line.split()[1:9]]
            total = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / _CLK_TCK  # all but idle, iowait
        elif line.startswith("cpu"):
            ncpu += 1
    return None if total is None or ncpu == 0 else (total, ncpu)


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


class Governor:
    """torch's intra-op thread count for the load: the cores other processes leave free
    while the net runs, between one and the ceiling (torch's count when the governor
    started, or the user's since). ``sample`` and the thread functions are injectable for
    tests.

    Other processes' CPU time is measured inside the net's calls only (:meth:`begin` to
    :meth:`end`): a process that runs while this one waits (a data job taking turns with
    it, a benchmark's other contender) does not compete, and costs no thread."""

    INTERVAL = 0.25  # seconds from one decision to the next measurement
    # Seconds of calls measured for one decision. /proc/stat counts in 10 ms ticks, this
    # process's own time is exact: over 0.1 s an idle machine read as 0.15-0.3 busy cores
    # (GoogLeNet b1 calls on the 2-core VM), over 0.3 s as 0.04-0.13.
    WINDOW = 0.3
    # Calls shorter than this are not measured: two /proc/stat reads (~25 us each here,
    # more on many-core machines) would be a visible share of them.
    SHORT = 0.002

    def __init__(self, sample: Callable[[], tuple[float, int] | None] = _cpu_seconds,
                 own: Callable[[], float] = _own_seconds,
                 get_threads: Callable[[], int] | None = None,
                 set_threads: Callable[[int], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if get_threads is None or set_threads is None:
            import torch

            get_threads, set_threads = torch.get_num_threads, torch.set_num_threads
        self._sample, self._own, self._clock = sample, own, clock
        self._get, self._set = get_threads, set_threads
        self.ceiling = get_threads()
        self.threads = self.ceiling  # what the governor last set (or found)
        self.others: float | None = None  # cores other processes keep busy (smoothed)
        self.changes = 0
        self._start: tuple[float, float, float] | None = None  # (clock, busy, own) at begin
        self._depth = 0
        self._span = self._busy = 0.0  # measured call time, other processes' CPU time in it
        self._due = 0.0
        self._began = 0.0
        self._last_call = 1.0  # the previous call's seconds

    def begin(self) -> None:
        """A net call starts (nested calls count as one)."""
        self._depth += 1
        if self._depth > 1:
            return
        now = self._began = self._clock()
        if now < self._due or self._last_call < self.SHORT:
            return
        got = self._sample()
        if got is not None:
            self._start = (now, got[0], self._own())

    def end(self) -> None:
        """The call that :meth:`begin` started is done: add what it measured; decide once
        :attr:`WINDOW` seconds of calls are in."""
        self._depth = max(0, self._depth - 1)
        if self._depth:
            return
        start = self._start
        if start is None:
            self._last_call = self._clock() - self._began
            return
        self._start = None
        got = self._sample()
        if got is None:
            return
        now = self._clock()
        busy, ncpu = got
        self._last_call = now - start[0]
        self._span += now - start[0]
        self._busy += (busy - start[1]) - (self._own() - start[2])
        if self._span < self.WINDOW:
            return
        others = max(0.0, self._busy / self._span)
        self._span = self._busy = 0.0
        self._due = now + self.INTERVAL
        self.others = others if self.others is None else 0.5 * (self.others + others)
        self._decide(ncpu, self.others)

    def current(self) -> int:
        """torch's thread count now; one the user set since the governor's last change is the
        ceiling from now on."""
        current = self._get()
        if current != self.threads:
            self.ceiling = self.threads = current
        return current

    def _decide(self, ncpu: int, others: float) -> None:
        current = self.current()
        free = ncpu - others
        want = current
        if free <= min(current, ncpu) - 0.5:  # (more threads than CPUs: the user's choice)
            want = max(1, int(free + 0.5))
        elif current < self.ceiling and free >= current + 0.8:
            want = self.ceiling if free >= ncpu - 0.2 else min(self.ceiling, int(free + 0.2))
        if want != current:
            self._set(want)
            self.threads = want
            self.changes += 1
            _log.debug("threads: %d -> %d (other processes keep %.1f of %d cores busy)",
                       current, want, others, ncpu)


_governor: Governor | None = None


class _Span:
    """``with threads.span():`` around a net call: the governor's measurement (adaptive
    mode), nothing otherwise."""

    __slots__ = ()

    def __enter__(self) -> None:
        g = _governor
        if g is not None:
            g.begin()

    def __exit__(self, *exc: object) -> None:
        g = _governor
        if g is not None:
            g.end()


_SPAN = _Span()


def span() -> _Span:
    """The context a net's forward/backward runs in, for the load governor."""
    return _SPAN


def ceiling() -> int:
    """The thread count torch runs on when nothing competes: the governor's ceiling in
    adaptive mode (its current count may be lower for a while), torch's count otherwise.
    For thread pools made once and kept (an ONNX Runtime session)."""
    g = _governor
    if g is not None:
        g.current()  # (adopts a count the user just set)
        return g.ceiling
    import torch

    return torch.get_num_threads()


def _import_torch_with(var: str, value: str) -> None:
    """Import torch with ``var=value`` in the environment, which libgomp reads while torch
    loads it; removed again after, so child processes inherit the user's environment."""
    os.environ[var] = value
    try:
        import torch  # noqa: F401
    finally:
        del os.environ[var]


def configure_openmp() -> str:
    """Choose libgomp's wait policy (and the governor) while that is still possible, as the
    module text says; returns what :func:`openmp_policy` reports. Idempotent."""
    global _policy, _governor
    if _policy is not None:
        return _policy
    choice = os.environ.get("CAFFE_COMPAT_OMP_WAIT", "adaptive").strip().lower()
    user = [f"{k}={os.environ[k]}" for k in USER_VARS if k in os.environ]
    adaptive = choice in ("adaptive", "auto", "") and _cpu_seconds() is not None
    if user:
        _policy = "set by the environment: " + ", ".join(user)
    elif choice in ("spin", "active", "default"):  # (not adaptive)
        _policy = "libgomp's default (spin), asked for by CAFFE_COMPAT_OMP_WAIT"
    elif "torch" in sys.modules:
        _policy = ("libgomp's default (spin): torch was imported before caffe_compat"
                   + ("; thread count adapted to the load" if adaptive else
                      "; set OMP_WAIT_POLICY=PASSIVE or import caffe_compat first"))
    elif adaptive:
        _import_torch_with("GOMP_SPINCOUNT", str(SPIN_COUNT))
        _policy = (f"adaptive: libgomp spins ({SPIN_COUNT} polls); fewer threads while other "
                   "processes compete for the cores (set by caffe_compat)")
    else:
        _import_torch_with("OMP_WAIT_POLICY", "PASSIVE")
        _policy = "passive (set by caffe_compat when it imported torch)"
    if adaptive and not user:
        _governor = Governor()
    return _policy


def openmp_policy() -> str:
    """How torch's OpenMP threads wait between parallel regions in this process, and why
    (with the governor's current thread count, in adaptive mode)."""
    text = _policy or configure_openmp()
    g = _governor
    if g is not None:
        text += f" [now {g.threads} of {g.ceiling} threads; {g.changes} changes so far]"
    return text


configure_openmp()
