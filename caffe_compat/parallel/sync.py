"""Gradient averaging across processes: Caffe 1.0's ``NCCL`` solver callback (``parallel.cpp``).

``NCCL(solver)`` points every learnable parameter's diff into one flat buffer
(as ``GPUParams::Configure`` does with Caffe's ``diff_``), so a single
collective reduces them all:

* :meth:`NCCL.bcast` — rank 0's learnable parameter values to every rank
  (``NCCL::Broadcast``), plus the solver's iter, current_step and history so
  that every rank continues in step even if only rank 0 restored a snapshot.
* :meth:`NCCL.on_gradients_ready` — after the local forward/backward
  × iter_size and before the update: sum over ranks, then multiply by
  ``(float)(1 / solver_count)`` (``ncclAllReduce`` + ``caffe_gpu_scal``).
  With ``layer_wise_reduce`` (Caffe's default) and iter_size > 1, Caffe
  reduces after each backward pass instead (per layer, from the net's
  after_backward callbacks); so do we, after each pass. Per element the
  arithmetic is the same as per layer, so the numbers are Caffe's.

Any torch.distributed backend works: NCCL for CUDA parameters, gloo on the CPU.

Stop/snapshot requests (SIGINT, SIGHUP) are agreed on by all ranks
(:meth:`NCCL.agree_on_actions`): each rank's request rides on the gradient
all-reduce as three extra floats (stop, snapshot, farewell), and every rank
acts on iteration i's requests after iteration i + 1's update — one
iteration late, but at the same iteration everywhere and without a host
sync per iteration. A stop that interrupts a test on rank 0 makes rank 0
take part in the all-reduces the others still wait for ("farewell" rounds).

Differences from Caffe: Caffe's workers have no action function, so a
SIGINT in multi-GPU training stops rank 0 only and the others hang; here all
ranks stop together. Nets with shared weights work with
``layer_wise_reduce: true`` (Caffe aborts: "Layer-wise reduce is not
supported for nets with shared weights").
"""

from __future__ import annotations

import logging
import socket
from typing import Any, Callable

import torch
import torch.distributed as dist

from .. import mode
from ..errors import UnsupportedError
from ..solver.updates import f32

__all__ = ["NCCL", "has_nccl", "new_uid", "timeout"]

_log = logging.getLogger("caffe_compat")

_STOP, _SNAPSHOT, _FAREWELL = 0, 1, 2
_N_FLAGS = 3


def has_nccl() -> bool:
    """pycaffe's ``caffe.has_nccl()``: multi-process training is available."""
    return dist.is_available()


def new_uid() -> str:
    """A rendezvous address for ``NCCL(solver, uid)`` (pycaffe's ``NCCL.new_uid()``).

    Caffe's uid is NCCL's unique id; ours is a ``tcp://`` address on this
    host with a free port, usable by processes of this machine.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def timeout() -> Any:
    """How long a rank waits in a collective (env CAFFE_COMPAT_DIST_TIMEOUT, seconds; 30 min)."""
    import datetime
    import os

    return datetime.timedelta(seconds=float(os.environ.get("CAFFE_COMPAT_DIST_TIMEOUT", "1800")))


def quiet_unless_root() -> None:
    """Only rank 0 logs below WARNING (Caffe: ``LOG_IF(INFO, Caffe::root_solver())``)."""
    if mode.solver_rank() != 0:
        logging.getLogger("caffe_compat").setLevel(logging.WARNING)


class NCCL:
    """Caffe 1.0's ``caffe.NCCL(solver, uid)``: a solver callback averaging gradients.

    ``uid`` (from :meth:`new_uid`) starts the process group when none exists,
    with ``caffe.solver_count()`` ranks and this process as
    ``caffe.solver_rank()``; otherwise the existing default group is used.
    Use as pycaffe's: ``nccl.bcast(); solver.add_callback(nccl)``.
    """

    new_uid = staticmethod(new_uid)

    def __init__(self, solver: Any, uid: str | None = None) -> None:
        if not dist.is_available():
            raise UnsupportedError("NCCL: this torch build has no torch.distributed")
        self._solver = solver
        blobs = solver.net.learnable_params
        device = blobs[0].tensor.device if blobs else solver.net.device
        if device.type == "cuda":  # NCCL's barrier and our events use the current device
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            if uid is None:
                raise UnsupportedError(
                    "NCCL(solver): no process group; pass the uid from NCCL.new_uid() "
                    "(as pycaffe's NCCL(solver, uid)) or call torch.distributed.init_process_group")
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method=uid,
                                    world_size=mode.solver_count(), rank=mode.solver_rank(),
                                    timeout=timeout())
        self.rank, self.size = dist.get_rank(), dist.get_world_size()
        if (mode.solver_rank(), mode.solver_count()) != (self.rank, self.size):
            _log.warning("NCCL: the process group has rank %d of %d but caffe.solver_rank()/"
                         "solver_count() say %d of %d; data layers built before this read as the "
                         "latter", self.rank, self.size, mode.solver_rank(), mode.solver_count())
            mode.set_multiprocess(self.rank, self.size)
        mode.set_multiprocess(True)
        quiet_unless_root()
        self._scale = f32(1.0 / self.size)
        p = solver._param
        self._per_pass = bool(p.layer_wise_reduce) and p.iter_size > 1
        self._rounds = p.iter_size if self._per_pass else 1
        if self._per_pass:
            solver._pass_hooks.append(self._reduce)
        self._blobs: list[Any] = []
        self._views: list[torch.Tensor] = []
        self._buf = torch.zeros(0)
        self._bind()
        # action agreement (agree_on_actions)
        self._local_fn: Callable[[], Any] | None = None
        self._local = [0.0] * _N_FLAGS
        self._prev: Any = None
        self._cur: Any = None
        self._awaiting = False
        self._stopped = False
        self._farewell_seen = False
        self._slots: list[tuple[Any, torch.Tensor]] = []  # (CUDA event, pinned flags) × 2

    # ------------------------------------------------------------ buffers
    def _bind(self) -> None:
        """Put every learnable diff into one flat buffer (+ the request flags)."""
        blobs = self._solver.net.learnable_params
        sizes = [b.tensor.numel() for b in blobs]
        device = blobs[0].tensor.device if blobs else self._solver.net.device
        if self._buf.numel() != sum(sizes) + _N_FLAGS or self._buf.device != device:
            self._buf = torch.zeros(sum(sizes) + _N_FLAGS, dtype=torch.float32, device=device)
        views, offset = [], 0
        with torch.no_grad():
            for b, n in zip(blobs, sizes):
                v = self._buf[offset:offset + n].view(b.tensor.shape)
                v.copy_(b.diff_tensor)
                b.diff_tensor = v
                views.append(v)
                offset += n
        self._blobs, self._views = blobs, views
        self._flags = self._buf[offset:]

    def _ensure_bound(self) -> None:
        # Net surgery or a device move replaces diff tensors; point them back.
        blobs = self._solver.net.learnable_params
        if len(blobs) != len(self._blobs) or any(
                b is not o or b.diff_tensor is not v for b, o, v in zip(blobs, self._blobs, self._views)):
            self._bind()

    def _flat(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([t.detach().reshape(-1).float() for t in tensors])

    def _broadcast_into(self, tensors: list[torch.Tensor]) -> None:
        if not tensors:
            return
        flat = self._flat(tensors)
        dist.broadcast(flat, 0)
        offset = 0
        with torch.no_grad():
            for t in tensors:
                t.copy_(flat[offset:offset + t.numel()].view(t.shape))
                offset += t.numel()

    # ------------------------------------------------------------ pycaffe API
    def bcast(self) -> None:
        """Rank 0's weights (and solver iter/history) to every rank."""
        s = self._solver
        self._broadcast_into([b.tensor for b in s.net.learnable_params])
        self._broadcast_into(list(s._history))
        state = torch.tensor([s._iter, s._current_step], dtype=torch.int64, device=self._buf.device)
        dist.broadcast(state, 0)
        s._iter, s._current_step = (int(v) for v in state.tolist())

    def on_start(self) -> None:
        self._local = [0.0] * _N_FLAGS

    def on_gradients_ready(self) -> None:
        if not self._per_pass:
            self._reduce()
        if self._local_fn is not None:
            self._commit()

    def __call__(self, layer: int) -> None:
        """``solver.net.after_backward(nccl)`` (train.py's layer_wise_reduce): the
        per-pass reduction is already set up from the solver's parameters."""

    # ------------------------------------------------------------ reduction
    def _poll_local(self) -> None:
        if self._local_fn is None:
            return
        for _ in range(8):  # drain: a SIGHUP and a SIGINT may both be pending
            r = _as_action(self._local_fn())
            if r == "none":
                break
            self._local[_STOP if r == "stop" else _SNAPSHOT] = 1.0

    def _reduce(self) -> None:
        self._ensure_bound()
        self._poll_local()
        if any(self._local):
            self._flags.copy_(torch.tensor(self._local))
        else:
            self._flags.zero_()
        dist.all_reduce(self._buf, op=dist.ReduceOp.SUM)
        self._buf.mul_(self._scale)

    # ------------------------------------------------------------ agreement
    def agree_on_actions(self, local: Callable[[], Any] | None) -> Callable[[], Any]:
        """Wrap the solver's action function so all ranks stop/snapshot together.

        Returns the function to give ``solver.set_action_function``.
        """
        self._local_fn = local or (lambda: "none")
        if self._buf.device.type == "cuda":
            self._slots = [(torch.cuda.Event(), torch.zeros(_N_FLAGS, pin_memory=True)) for _ in range(2)]
        return self.requested_action

    def _commit(self) -> None:
        """Keep this iteration's agreed flags (copied to the host without a sync)."""
        if self._slots:  # the slot of iteration i - 2, read at the last poll
            entry: Any = self._slots[1] if self._cur is self._slots[0] else self._slots[0]
            event, host = entry
            host.copy_(self._flags, non_blocking=True)
            event.record(torch.cuda.current_stream(self._flags.device))
        else:
            entry = (None, self._flags.clone())
        self._prev, self._cur = self._cur, entry
        self._awaiting = True

    @staticmethod
    def _read(entry: Any) -> list[float]:
        if entry is None:
            return [0.0] * _N_FLAGS
        event, flags = entry
        if event is not None:
            event.synchronize()
        return flags.tolist()

    def requested_action(self) -> str:
        """The solver's action function under :meth:`agree_on_actions`."""
        if self._awaiting:  # the poll after an update: act on the previous iteration's requests
            self._awaiting = False
            flags = self._read(self._prev)
            if flags[_FAREWELL] > 0:
                self._farewell_seen = True
            if flags[_STOP] > 0:
                self._stopped = True
                return "stop"
            return "snapshot" if flags[_SNAPSHOT] > 0 and self.rank == 0 else "none"
        if self.rank == 0:  # rank 0's test loop: a stop interrupts the test (see finish)
            assert self._local_fn is not None
            return _as_action(self._local_fn())
        return "none"

    def finish(self, check: bool = True) -> bool:
        """End of training, on every rank: let the others stop if rank 0 left
        early, check that all ranks hold the same weights, wait for all.

        Returns False when the weights differ (rank 0 logs an error).
        """
        s = self._solver
        farewell = self._farewell_seen or self._read(self._cur)[_FAREWELL] > 0
        if self._local_fn is not None and self.rank == 0 and s._early_exit and not self._stopped \
                and s.iter < s._param.max_iter:
            self._farewell()
            farewell = True
        same = True
        if check and not farewell:
            same = self.check_in_sync()
        dist.barrier()
        return same

    def _farewell(self) -> None:
        # The others wait in iteration `iter`'s all-reduce(s); they stop after
        # iteration iter + 1 unless iteration iter - 1's flags already stop them.
        s = self._solver
        before = self._read(self._cur)
        iters = 1 if before[_STOP] > 0 or s.iter + 1 >= s._param.max_iter else 2
        _log.info("Rank 0 stopped during a test; letting the other solvers stop")
        for _ in range(iters * self._rounds):
            self._buf.zero_()
            self._flags[_STOP] = 1.0
            self._flags[_FAREWELL] = 1.0
            dist.all_reduce(self._buf, op=dist.ReduceOp.SUM)

    def check_in_sync(self) -> bool:
        """Compare every rank's trained weights (lr_mult ≠ 0) with rank 0's."""
        net = self._solver.net
        tensors = [b.tensor for b, lr in zip(net.learnable_params, net.params_lr) if lr != 0]
        if not tensors:
            return True
        mine = self._flat(tensors)
        root = mine.clone()
        dist.broadcast(root, 0)
        differ = torch.tensor([0.0 if torch.equal(mine, root) else 1.0], device=mine.device)
        dist.all_reduce(differ, op=dist.ReduceOp.SUM)
        n = int(differ.item())
        if self.rank == 0:
            if n:
                _log.error("%d of %d solvers hold weights that differ from rank 0's", n, self.size)
            else:
                _log.info("All %d solvers hold identical weights.", self.size)
        return n == 0


def _as_action(r: Any) -> str:
    """An action function's answer as "none", "stop" or "snapshot"."""
    if r is None:
        return "none"
    value = getattr(r, "value", r)
    if isinstance(value, int):  # Caffe's SolverAction::Enum
        return ("none", "stop", "snapshot")[value]
    return str(value).lower()
