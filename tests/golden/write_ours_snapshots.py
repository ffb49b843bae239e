"""Write the snapshots caffe_compat makes for the ``resume_ours`` solver cases.

Run with the project's Python (it imports caffe_compat), before
``generate.py solver`` (which has real Caffe resume from these files):

    .venv/bin/python tests/golden/write_ours_snapshots.py

For each case with ``resume_ours=k`` it trains k steps from the case's
initial values and inputs, snapshots, and copies ``snap_iter_k.*`` into
``tests/golden/data/solver/ours/<case>/``. ``tests/test_solver_golden.py``
checks that the current code still writes the same files.
"""

import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def write_snapshot(case, directory):
    """Train ``case`` for ``resume_ours`` steps in ``directory``; return the files written."""
    import h5py

    import caffe_compat as caffe

    from golden.cases import solver as sc

    def h5(path, arrays):
        with h5py.File(path, "w") as f:
            for name, value in arrays.items():
                f.create_dataset(name, data=value)

    old = os.getcwd()
    os.chdir(directory)
    try:
        sc.write_files(case, directory, h5)
        solver = caffe.get_solver("solver.prototxt")
        for layer, blobs in solver.net.params.items():
            for i, blob in enumerate(blobs):
                blob.data[...] = sc.init_param(case, layer, i, blob.data.shape)
        for step in range(case["resume_ours"]):
            for name, value in sc.step_inputs(case, step).items():
                solver.net.blobs[name].data[...] = value
            solver.step(1)
        solver.snapshot()
    finally:
        os.chdir(old)
    return sorted(os.path.join(directory, f) for f in os.listdir(directory) if "_iter_" in f)


def main():
    from golden.cases import solver as sc

    for case in sc.CASES:
        if not case["resume_ours"]:
            continue
        out = os.path.join(sc.OURS_DIR, case["name"])
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        with tempfile.TemporaryDirectory() as tmp:
            for path in write_snapshot(case, tmp):
                shutil.copy(path, out)
                print("wrote", os.path.relpath(os.path.join(out, os.path.basename(path)), HERE))


if __name__ == "__main__":
    main()
