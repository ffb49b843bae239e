"""Data-parallel training from Python, the way Caffe 1.0's ``python/train.py`` does it.

    python examples/parallel/train.py --solver S [--snapshot STATE] [--gpus 0 1 | --cpus 2]

One process per device; each sets its solver rank and count, builds its own
solver (so Data layers read their own shard), restores the snapshot, then
``NCCL(solver, uid)`` joins the group, ``bcast()`` gives everyone rank 0's
weights and ``add_callback`` averages the gradients before each update.
The same run from the command line is ``caffe-compat train --solver=S
--gpu=0,1`` (or ``--cpu_processes=2``), which also agrees on SIGINT/SIGHUP
and writes the final snapshot.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp


def solve(solver_path: str, snapshot: str, gpus: list[int], count: int, uid: str, rank: int) -> None:
    import caffe_compat as caffe
    from caffe_compat import mode
    from caffe_compat.parallel import NCCL

    if gpus:
        caffe.set_device(gpus[rank])
        caffe.set_mode_gpu()
    mode.set_solver_count(count)
    mode.set_solver_rank(rank)
    mode.set_multiprocess(True)

    solver = caffe.get_solver(solver_path)
    if snapshot:
        solver.restore(snapshot)
    nccl = NCCL(solver, uid)
    nccl.bcast()
    solver.add_callback(nccl)
    solver.step(solver.param.max_iter - solver.iter)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solver", required=True, help="solver prototxt")
    parser.add_argument("--snapshot", default="", help="solverstate to resume from")
    devices = parser.add_mutually_exclusive_group()
    devices.add_argument("--gpus", type=int, nargs="+", default=[], help="GPU ids, one process each")
    devices.add_argument("--cpus", type=int, default=2, help="CPU processes (without --gpus)")
    args = parser.parse_args()

    from caffe_compat.parallel import NCCL

    count = len(args.gpus) or args.cpus
    uid = NCCL.new_uid()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=solve, args=(args.solver, args.snapshot, args.gpus, count, uid, rank))
             for rank in range(count)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    failed = [p.exitcode for p in procs if p.exitcode]
    raise SystemExit(failed[0] if failed else 0)


if __name__ == "__main__":
    main()
