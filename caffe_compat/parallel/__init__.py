"""Data-parallel training on torch.distributed with Caffe 1.0's multi-GPU semantics.

One process per device, each with its own solver (Caffe 1.0 ran one solver
per GPU in threads of one process; ``python/train.py`` used processes):

    caffe-compat train --solver=S --gpu=0,1            # one process per GPU, NCCL
    caffe-compat train --solver=S --gpu=all
    caffe-compat train --solver=S --cpu_processes=2    # CPU processes, gloo
    torchrun --nproc_per_node=N -m caffe_compat train --solver=S [--gpu=0,1,..]
    torchrun --nnodes=M --nproc_per_node=N ... (several machines)

What each rank does (``caffe.cpp`` train, ``parallel.cpp``, ``solver.cpp``):

* ``solver_count`` and ``solver_rank`` are set before the solver is built:
  TRAIN Data and HDF5Data layers keep record ``offset`` when ``offset %
  count == rank`` (Caffe 1.0's ``DataLayer::Skip``), so the ranks read
  interleaved shards of one source and the effective batch is count × batch;
  the solver seeds ``random_seed + rank``.
* Every rank builds its solver, restores the snapshot / copies the weights,
  then rank 0's learnable weights are broadcast (:meth:`NCCL.bcast`).
* After the local forward/backward × iter_size and before the update, the
  diffs are summed over ranks and multiplied by (float)(1/count), as Caffe's
  NCCL callback does; every rank applies the same update.
* Rank 0 alone logs (other ranks log warnings and errors only), runs the
  test nets, writes snapshots, and runs ``Solve`` (final snapshot, final
  test); the others run ``Step(max_iter - iter)``.
* SIGINT/SIGHUP: the ranks agree to stop or snapshot at the same iteration.
  At the end the ranks compare their weights; rank 0 logs "All N solvers hold
  identical weights."
* Python layers: each process has its own layer object (the multi-process
  behaviour of Caffe 1.0's python/train.py; its CLI aborts on a TRAIN Python
  layer with several GPUs). A layer may read ``caffe_compat.mode.solver_rank()``
  and ``solver_count()`` to shard its own data. ``python_param.share_in_parallel``
  is deprecated in Caffe 1.0 and ignored.

The pycaffe route (Caffe 1.0's python/train.py) works too:
``uid = NCCL.new_uid()``; in each process ``set_solver_count``,
``set_solver_rank``, build the solver, ``nccl = NCCL(solver, uid)``,
``nccl.bcast()``, ``solver.add_callback(nccl)``, ``solver.step(n)``; see
examples/parallel/train.py.

Differences from Caffe: all ranks stop together on SIGINT (Caffe's other
solvers hang); ``--gpu=0,1`` without CUDA trains with as many CPU processes
(keeping the effective batch); batch-norm statistics stay per rank, as in
Caffe. See :mod:`.sync` for the reduction details.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from .launch import (World, become_rank, flags_argv, init_process_group, rank_devices, shutdown, spawn,
                     world_from_env)
from .sync import NCCL, has_nccl, new_uid

__all__ = ["NCCL", "has_nccl", "new_uid", "train", "World", "world_from_env", "become_rank", "rank_devices",
           "init_process_group", "shutdown", "spawn", "flags_argv"]

_log = logging.getLogger("caffe_compat")


def train(solver: Any, action: Callable[[], Any] | None = None, check: bool = True) -> bool:
    """Train ``solver`` as this process's rank of the initialised process group.

    ``action`` is the local action function (e.g. the signal handler's); the
    ranks agree on its requests. Rank 0 runs ``solve()``, the others
    ``step(max_iter - iter)``. Returns False when the ranks ended with
    different weights (``check``).
    """
    sync = NCCL(solver)
    sync.bcast()
    solver.add_callback(sync)
    solver.set_action_function(sync.agree_on_actions(action))
    if sync.rank == 0:
        solver.solve()
    else:
        solver.step(solver._param.max_iter - solver.iter)
    return sync.finish(check)
