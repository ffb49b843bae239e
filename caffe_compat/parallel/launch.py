"""Processes for data-parallel training: who am I, which device, starting the others.

A process is one rank of a data-parallel run when its environment says so
(``RANK``, ``WORLD_SIZE`` > 1, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``),
as set by ``torchrun`` on one or many machines, or by :func:`spawn`, which
``caffe-compat train --gpu=0,1`` / ``--cpu_processes=N`` use to start one
process per device on this machine. Each rank sets Caffe's solver count and
rank before the solver is built (so data layers shard), picks its device,
and joins the process group (NCCL on CUDA, gloo on the CPU).

:func:`spawn` starts the ranks in their own session, so a terminal's Ctrl-C
reaches only the launcher, which passes SIGINT/SIGHUP on to rank 0 (the ranks
then agree to stop or snapshot, see :mod:`.sync`) and SIGTERM to all. When a
rank fails, the others are stopped and the launcher returns its exit status;
a rank dies with its launcher (Linux ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.distributed as dist

from .. import mode
from ..errors import CaffeCompatError
from .sync import new_uid, quiet_unless_root, timeout

__all__ = ["World", "world_from_env", "become_rank", "rank_devices", "init_process_group", "shutdown",
           "spawn", "flags_argv"]

_log = logging.getLogger("caffe_compat")

_PARENT_ENV = "CAFFE_COMPAT_LAUNCHER_PID"


@dataclass(frozen=True)
class World:
    """This process's place among the ranks (torchrun's environment variables)."""

    rank: int
    size: int
    local_rank: int
    local_size: int


def world_from_env(environ: Mapping[str, str] | None = None) -> World | None:
    """The rank this process was launched as, or None when it runs alone."""
    env = os.environ if environ is None else environ
    try:
        size = int(env.get("WORLD_SIZE", "1") or "1")
        if size <= 1 or "RANK" not in env:
            return None
        rank = int(env["RANK"])
        local_rank = int(env.get("LOCAL_RANK", str(rank)))
        local_size = int(env.get("LOCAL_WORLD_SIZE", str(size)))
    except ValueError as exc:
        raise CaffeCompatError(f"bad launcher environment (RANK/WORLD_SIZE/LOCAL_RANK): {exc}") from None
    if not 0 <= rank < size or not 0 <= local_rank < local_size:
        raise CaffeCompatError(f"bad launcher environment: RANK={rank} WORLD_SIZE={size} "
                               f"LOCAL_RANK={local_rank} LOCAL_WORLD_SIZE={local_size}")
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not env.get(name):
            raise CaffeCompatError(f"launched as rank {rank} of {size} but {name} is not set "
                                   "(torchrun sets it; so does caffe-compat train --gpu=0,1)")
    return World(rank, size, local_rank, local_size)


def rank_devices(gpus: Sequence[int], world: World, explicit: bool) -> list[int]:
    """The GPU (as a one-element list, or none) of this rank: ``--gpu``'s
    LOCAL_RANK-th id; with only Caffe's default device and several local
    ranks, GPU LOCAL_RANK (torchrun's convention)."""
    if not gpus:
        return []
    if len(gpus) == 1 and world.local_size > 1 and not explicit:
        return [world.local_rank]
    if world.local_rank < len(gpus):
        return [gpus[world.local_rank]]
    raise CaffeCompatError(f"--gpu={','.join(map(str, gpus))} names {len(gpus)} device(s) but this "
                           f"is local process {world.local_rank} of {world.local_size}")


def become_rank(world: World) -> None:
    """Before anything is built: Caffe's solver count and rank (data layers
    shard by them), non-root ranks log warnings only, die with the launcher."""
    _die_with_launcher()
    mode.set_multiprocess(world.rank, world.size)
    quiet_unless_root()


def init_process_group(world: World, on_gpu: bool) -> None:
    """Join the process group (NCCL on CUDA, gloo on the CPU)."""
    kwargs: dict[str, Any] = {}
    if on_gpu:
        device = mode.current_device()
        torch.cuda.set_device(device)
        kwargs["device_id"] = device  # binds the communicator now (torch >= 2.3)
    backend = "nccl" if on_gpu else "gloo"
    _log.info("Rank %d of %d joining the %s process group at %s:%s", world.rank, world.size, backend,
              os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT"))
    try:
        dist.init_process_group(backend, init_method="env://", rank=world.rank,
                                world_size=world.size, timeout=timeout(), **kwargs)
    except TypeError:  # torch without device_id
        kwargs.pop("device_id", None)
        dist.init_process_group(backend, init_method="env://", rank=world.rank,
                                world_size=world.size, timeout=timeout())


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _die_with_launcher() -> None:
    parent = os.environ.get(_PARENT_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - no prctl
        return
    if os.getppid() != int(parent):  # the launcher died before prctl
        os._exit(1)


# ---------------------------------------------------------------- launching
def flags_argv(args: argparse.Namespace) -> list[str]:
    """A command's parsed flags back as ``--name=value`` arguments."""
    out = []
    for name, value in sorted(vars(args).items()):
        if name.startswith("_") or name == "command" or value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        out.append(f"--{name}={value}")
    return out


def _free_port() -> int:
    return int(new_uid().rsplit(":", 1)[1])


def spawn(argv: Sequence[str], nprocs: int, cpu: bool) -> int:
    """Run ``python -m caffe_compat ARGV`` as ranks 0..nprocs-1 of one group on
    this machine; return 0 when all succeed, else the first failure's status."""
    port = _free_port()
    threads = max(1, (os.cpu_count() or 1) // nprocs)
    _log.info("Starting %d %s processes (ranks 0-%d, rendezvous 127.0.0.1:%d)", nprocs,
              "CPU" if cpu else "GPU", nprocs - 1, port)
    procs: list[subprocess.Popen[bytes]] = []
    old: dict[int, Any] = {}

    def forward(signum: int, frame: Any) -> None:
        targets = procs if signum == signal.SIGTERM else procs[:1]
        for p in targets:
            if p.poll() is None:
                p.send_signal(signum)

    catch = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    if threading.current_thread() is not threading.main_thread():
        catch = []  # only the main thread may set handlers; signals then reach this process only
    try:
        for sig in catch:
            old[int(sig)] = signal.signal(sig, forward)
        for rank in range(nprocs):
            env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(nprocs),
                       LOCAL_WORLD_SIZE=str(nprocs), GROUP_RANK="0", MASTER_ADDR="127.0.0.1",
                       MASTER_PORT=str(port), **{_PARENT_ENV: str(os.getpid())})
            env.setdefault("OMP_NUM_THREADS", str(threads))
            procs.append(subprocess.Popen([sys.executable, "-m", "caffe_compat", *argv], env=env,
                                          stdin=subprocess.DEVNULL, start_new_session=True))
        return _wait(procs)
    finally:
        _stop(procs, grace=5.0)
        for signum, handler in old.items():
            signal.signal(signum, handler)


def _wait(procs: list[subprocess.Popen[bytes]]) -> int:
    while True:
        codes = [p.poll() for p in procs]
        for rank, code in enumerate(codes):
            if code not in (None, 0):
                status = 128 - code if code < 0 else code
                _log.error("Rank %d exited with status %d; stopping the other ranks", rank, status)
                _stop(procs, grace=5.0)
                return status
        if all(code == 0 for code in codes):
            return 0
        time.sleep(0.05)


def _stop(procs: list[subprocess.Popen[bytes]], grace: float) -> None:
    """SIGTERM every running rank, SIGKILL those alive after ``grace`` seconds."""
    running = [p for p in procs if p.poll() is None]
    for p in running:
        p.terminate()
    deadline = time.monotonic() + grace
    for p in running:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
