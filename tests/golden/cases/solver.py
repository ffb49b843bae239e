"""Solver trajectories from a real Caffe (kind "solver").

Each case is a small net with Input layers (fed from Python before every
``solver.step(1)``, so no data layer is involved) and a solver file. The
generator builds the solver with real pycaffe in a temporary directory, sets
every parameter to deterministic values, and records the parameters after each
of ``steps`` single steps. ``tests/test_solver_golden.py`` replays the same on
caffe_compat.

Extra recordings:

Recorded per step (stacked along axis 0, one row per entry of ``steps``):
``w/<layer>/<i>`` the parameters after the step, ``input/<blob>`` the inputs
fed before it, ``loss`` the train loss of its forward, ``test/<blob>`` the
test-net outputs.

* ``snapshot_at=k``: real Caffe snapshots after step k; the files are stored
  (``file/<name>`` as bytes) so the test restores a Caffe-written solverstate
  and continues, and compares Caffe's saved history with ours.
* ``resume_ours=k``: real Caffe restores the solverstate + weights that
  caffe_compat wrote after k steps (committed under ``data/solver/ours/<case>/``
  by ``tests/golden/write_ours_snapshots.py``) and continues; the test checks
  that we continue from our own files the same way.
* ``test_inputs``: after each step, the first test net (sharing weights with
  the train net) is run on fixed inputs and its outputs are recorded.
* ``hdf5``: arrays written to an HDF5 file that an HDF5Data layer reads
  (``{H5LIST}`` in the prototxt is the list file).

Python 3.9 + numpy only.
"""

import os
import shutil
import tempfile
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OURS_DIR = os.path.join(os.path.dirname(HERE), "data", "solver", "ours")

MLP = """
name: "mlp"
layer { name: "input" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 4 dim: 5 } shape { dim: 4 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" %(p1)s
        inner_product_param { num_output: 6 } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" %(p2)s
        inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""

MLP_INPUTS = {"data": ("normal", (4, 5)), "label": ("labels", (4,), 3)}


def mlp(p1="", p2=""):
    return MLP % {"p1": p1, "p2": p2}


SHARED = """
name: "shared"
layer { name: "input" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 4 dim: 5 } shape { dim: 4 } } }
layer { name: "ipa" type: "InnerProduct" bottom: "data" top: "a"
        param { name: "w" } param { name: "b" } inner_product_param { num_output: 5 } }
layer { name: "relua" type: "ReLU" bottom: "a" top: "a" }
layer { name: "ipb" type: "InnerProduct" bottom: "a" top: "b"
        param { name: "w" } param { name: "b" } inner_product_param { num_output: 5 } }
layer { name: "ip2" type: "InnerProduct" bottom: "b" top: "ip2" inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""

CONV = """
name: "conv"
layer { name: "input" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 2 dim: 5 dim: 5 } shape { dim: 2 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 3 kernel_size: 3 } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param { pool: MAX kernel_size: 2 stride: 1 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip" inner_product_param { num_output: 4 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""

CONV_INPUTS = {"data": ("normal", (2, 2, 5, 5)), "label": ("labels", (2,), 4)}

WITH_TEST = """
name: "mlp_test"
layer { name: "input" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 4 dim: 5 } shape { dim: 4 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" inner_product_param { num_output: 6 } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "ip2" bottom: "label" top: "acc" include { phase: TEST } }
layer { name: "prob" type: "Softmax" bottom: "ip2" top: "prob" include { phase: TEST } }
"""

BN = """
name: "mlp_bn"
layer { name: "input" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 4 dim: 5 } shape { dim: 4 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" inner_product_param { num_output: 6 } }
layer { name: "bn" type: "BatchNorm" bottom: "ip1" top: "ip1" batch_norm_param { use_global_stats: true } }
layer { name: "scale" type: "Scale" bottom: "ip1" top: "ip1" scale_param { bias_term: true } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""

PY_LAYER_FILE = '''
import numpy as np
try:
    import caffe
except ImportError:
    import caffe_compat as caffe


class Mul(caffe.Layer):
    """y = x * w with one learnable scalar blob w."""

    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        self.blobs[0].data[...] = 2.0

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data * self.blobs[0].data[0]

    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[0] = (top[0].diff * bottom[0].data).sum()
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff * self.blobs[0].data[0]
'''

PY_LAYER = """
name: "mlp_python"
layer { name: "input" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 4 dim: 5 } shape { dim: 4 } } }
layer { name: "mul" type: "Python" bottom: "data" top: "m"
        python_param { module: "solver_golden_mul" layer: "Mul" } }
layer { name: "ip1" type: "InnerProduct" bottom: "m" top: "ip1" inner_product_param { num_output: 6 } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""

HDF5 = """
name: "mlp_hdf5"
layer { name: "data" type: "HDF5Data" top: "data" top: "label"
        hdf5_data_param { source: "{H5LIST}" batch_size: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" inner_product_param { num_output: 6 } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""


def solver_case(name, solver, net=None, inputs=None, steps=10, cls=None, snapshot_at=None,
                resume_ours=None, test_inputs=None, hdf5=None, tol=1e-4, param_scale=0.5, init=None,
                files=None, note=""):
    return {
        "kind": "solver",
        "name": name,
        "net": (net or mlp()).strip() + "\n",
        "solver": 'net: "net.prototxt"\nsnapshot_prefix: "snap"\n' + solver.strip() + "\n",
        "inputs": MLP_INPUTS if inputs is None else inputs,
        "steps": steps,
        "cls": cls,
        "snapshot_at": snapshot_at,
        "resume_ours": resume_ours,
        "test_inputs": test_inputs,
        "hdf5": hdf5,
        "tol": tol,
        "param_scale": param_scale,
        "init": init or {},
        "files": files or {},
        "seed": zlib.crc32(name.encode()),
        "note": note,
    }


CASES = [
    # ---------------------------------------------------------- lr policies (SGD)
    solver_case("sgd_fixed", 'base_lr: 0.1 lr_policy: "fixed" momentum: 0.9 weight_decay: 0.001'),
    solver_case("sgd_step", 'base_lr: 0.2 lr_policy: "step" stepsize: 3 gamma: 0.5 momentum: 0.9'),
    solver_case("sgd_exp", 'base_lr: 0.2 lr_policy: "exp" gamma: 0.8 momentum: 0.5'),
    solver_case("sgd_inv", 'base_lr: 0.2 lr_policy: "inv" gamma: 0.1 power: 0.75 momentum: 0.9 '
                           "weight_decay: 0.0005"),
    solver_case("sgd_multistep", 'base_lr: 0.2 lr_policy: "multistep" gamma: 0.3 stepvalue: 2 '
                                 "stepvalue: 5 stepvalue: 7 momentum: 0.9", snapshot_at=6,
                note="current_step is 2 in the solverstate written after 6 steps"),
    solver_case("sgd_poly", 'base_lr: 0.2 lr_policy: "poly" power: 2 max_iter: 12 momentum: 0.9'),
    solver_case("sgd_sigmoid", 'base_lr: 0.2 lr_policy: "sigmoid" gamma: 0.5 stepsize: 5 '
                               "momentum: 0.9"),
    # ---------------------------------------------------------- solver types
    solver_case("nesterov_step", 'type: "Nesterov" base_lr: 0.1 lr_policy: "step" stepsize: 4 '
                                 "gamma: 0.5 momentum: 0.95 weight_decay: 0.001"),
    solver_case("adagrad_fixed", 'type: "AdaGrad" base_lr: 0.1 lr_policy: "fixed" delta: 1e-6 '
                                 "weight_decay: 0.001"),
    solver_case("rmsprop_inv", 'type: "RMSProp" base_lr: 0.01 lr_policy: "inv" gamma: 0.1 '
                               "power: 0.75 rms_decay: 0.95 delta: 1e-6 weight_decay: 0.001"),
    solver_case("adadelta_fixed", 'type: "AdaDelta" base_lr: 1.0 lr_policy: "fixed" momentum: 0.95 '
                                  "delta: 1e-6 weight_decay: 0.001"),
    solver_case("adam_multistep", 'type: "Adam" base_lr: 0.01 lr_policy: "multistep" gamma: 0.5 '
                                  "stepvalue: 3 stepvalue: 6 momentum: 0.9 momentum2: 0.999 "
                                  "weight_decay: 0.001", snapshot_at=5,
                note="Adam keeps 2 history blobs per parameter; t = iter + 1 after a restore"),
    solver_case("deprecated_solver_type_adam", 'solver_type: ADAM base_lr: 0.01 lr_policy: "fixed" '
                                               "momentum: 0.9"),
    solver_case("sgdsolver_class_ignores_type", 'type: "Adam" base_lr: 0.1 lr_policy: "fixed" '
                                                "momentum: 0.9", cls="SGDSolver",
                note="pycaffe's SGDSolver(path) runs SGD whatever the file's type"),
    solver_case("long_sgd_conv", 'base_lr: 0.05 lr_policy: "multistep" gamma: 0.5 stepvalue: 10 '
                                 "stepvalue: 25 momentum: 0.9 weight_decay: 0.001",
                net=CONV, inputs=CONV_INPUTS, steps=40,
                note="40 steps across two rate changes: no drift builds up"),
    solver_case("nesterov_conv", 'type: "Nesterov" base_lr: 0.05 lr_policy: "fixed" momentum: 0.9 '
                                 "weight_decay: 0.001", net=CONV, inputs=CONV_INPUTS),
    # ---------------------------------------------------------- gradient processing
    solver_case("iter_size_clip", 'base_lr: 0.5 lr_policy: "fixed" momentum: 0.9 iter_size: 3 '
                                  "clip_gradients: 0.5 weight_decay: 0.01",
                note="clip acts on the accumulated (3x) gradient, before the / iter_size"),
    solver_case("clip_gradients", 'base_lr: 0.5 lr_policy: "fixed" momentum: 0.5 '
                                  "clip_gradients: 0.3"),
    solver_case("l1_regularization", 'base_lr: 0.1 lr_policy: "fixed" momentum: 0.9 '
                                     'weight_decay: 0.05 regularization_type: "L1"'),
    solver_case("lr_decay_mult", 'base_lr: 0.1 lr_policy: "fixed" momentum: 0.9 weight_decay: 0.01',
                net=mlp("param { lr_mult: 2 decay_mult: 0 } param { lr_mult: 0 }",
                        "param { lr_mult: 0.5 decay_mult: 3 } param { lr_mult: 1 decay_mult: 0 }")),
    solver_case("adagrad_frozen_layer", 'type: "AdaGrad" base_lr: 0.1 lr_policy: "fixed" '
                                        "weight_decay: 0.01",
                net=mlp("param { lr_mult: 0 } param { lr_mult: 0 }"), snapshot_at=4,
                note="lr_mult 0 blobs never move, but their history (decay^2 w^2) is saved"),
    solver_case("shared_weights", 'base_lr: 0.1 lr_policy: "fixed" momentum: 0.9 weight_decay: 0.001',
                net=SHARED, note="a parameter shared by name is updated once, with both gradients"),
    # ---------------------------------------------------------- snapshots and resume
    solver_case("rmsprop_hdf5_snapshot", 'type: "RMSProp" base_lr: 0.01 lr_policy: "step" stepsize: 3 '
                                         "gamma: 0.5 rms_decay: 0.9 snapshot_format: HDF5",
                snapshot_at=4),
    solver_case("resume_ours_sgd", 'base_lr: 0.2 lr_policy: "multistep" gamma: 0.5 stepvalue: 2 '
                                   "stepvalue: 6 momentum: 0.9 weight_decay: 0.001", resume_ours=4,
                note="real Caffe resumes from our .solverstate + .caffemodel"),
    solver_case("resume_ours_adam_hdf5", 'type: "Adam" base_lr: 0.01 lr_policy: "fixed" momentum: 0.9 '
                                         "snapshot_format: HDF5", resume_ours=4,
                note="real Caffe resumes from our .solverstate.h5 + .caffemodel.h5"),
    # ---------------------------------------------------------- test nets
    solver_case("test_net_shares_weights", 'base_lr: 0.2 lr_policy: "fixed" momentum: 0.9 '
                                           "test_iter: 1 test_interval: 1000",
                net=WITH_TEST, test_inputs={"data": ("normal", (4, 5)), "label": ("labels", (4,), 3)},
                note="Caffe shares the train net's weights with a test net at its first test "
                     "(here the initial one, at iteration 0); from then on the test net sees "
                     "every update"),
    solver_case("adagrad_batchnorm_statistics", 'type: "AdaGrad" base_lr: 0.1 lr_policy: "fixed" '
                                                "weight_decay: 0.01", net=BN, snapshot_at=3,
                init={"bn": ["normal", "positive", "positive"]},
                note="BatchNorm statistics (lr_mult forced to 0) never change, yet have history "
                     "entries, grown by (decay * value)^2 as Caffe computes them"),
    solver_case("python_layer_blob", 'base_lr: 0.1 lr_policy: "fixed" momentum: 0.9 weight_decay: 0.01',
                net=PY_LAYER, files={"solver_golden_mul.py": PY_LAYER_FILE},
                note="a Python layer's blob (its diff set in backward) is learned like any other"),
    # ---------------------------------------------------------- data that changes per forward
    solver_case("iter_size_hdf5", 'base_lr: 0.2 lr_policy: "fixed" momentum: 0.9 iter_size: 2 '
                                  "clip_gradients: 1.0", net=HDF5, inputs={},
                hdf5={"data": ("normal", (12, 5)), "label": ("labels", (12,), 3)},
                note="iter_size 2 over an HDF5Data layer: each sub-iteration sees a new batch"),
]


# ---------------------------------------------------------------- values
def _rng(case, *parts):
    key = "/".join(str(p) for p in (case["name"],) + parts)
    return np.random.RandomState(zlib.crc32(key.encode()) % (2 ** 32))


def make_array(case, spec, *parts):
    rng = _rng(case, *parts)
    if spec[0] == "normal":
        return rng.randn(*spec[1]).astype(np.float32)
    if spec[0] == "labels":
        return rng.randint(0, spec[2], size=spec[1]).astype(np.float32)
    raise ValueError(spec)


def init_param(case, layer, i, shape):
    """Normal values (x param_scale); ``init={layer: ["positive", ...]}`` gives
    values in [0.5, 1.5) instead (variances, BatchNorm's scale factor)."""
    kinds = case.get("init", {}).get(layer, [])
    rng = _rng(case, "param", layer, i)
    if i < len(kinds) and kinds[i] == "positive":
        return rng.uniform(0.5, 1.5, size=shape).astype(np.float32)
    return (rng.randn(*shape) * case["param_scale"]).astype(np.float32)


def step_inputs(case, step):
    specs = sorted(case["inputs"].items())
    return {name: make_array(case, spec, "input", step, name) for name, spec in specs}


def test_net_inputs(case, step):
    specs = case["test_inputs"] or {}
    return {name: make_array(case, spec, "test", step, name) for name, spec in sorted(specs.items())}


def hdf5_arrays(case):
    return {name: make_array(case, spec, "h5", name) for name, spec in sorted((case["hdf5"] or {}).items())}


def write_files(case, directory, hdf5_writer=None):
    """net.prototxt, solver.prototxt (and the HDF5 data + list) in ``directory``."""
    net = case["net"]
    if case["hdf5"]:
        h5 = os.path.join(directory, "train.h5")
        hdf5_writer(h5, hdf5_arrays(case))
        with open(os.path.join(directory, "train.txt"), "w") as f:
            f.write(h5 + "\n")
        net = net.replace("{H5LIST}", os.path.join(directory, "train.txt"))
    with open(os.path.join(directory, "net.prototxt"), "w") as f:
        f.write(net)
    for name, text in case.get("files", {}).items():
        with open(os.path.join(directory, name), "w") as f:
            f.write(text)
    with open(os.path.join(directory, "solver.prototxt"), "w") as f:
        f.write(case["solver"])


def ours_files(case):
    """The committed snapshot files caffe_compat wrote for a resume_ours case."""
    d = os.path.join(OURS_DIR, case["name"])
    return sorted(os.path.join(d, f) for f in os.listdir(d)) if os.path.isdir(d) else []


# ---------------------------------------------------------------- generator
def _h5_writer(path, arrays):
    import h5py

    with h5py.File(path, "w") as f:
        for name, value in arrays.items():
            f.create_dataset(name, data=value)


def generate(case, caffe, rng):
    import sys

    tmp = tempfile.mkdtemp(prefix="solver_golden_")
    old = os.getcwd()
    os.chdir(tmp)
    sys.path.insert(0, tmp)  # Python layer modules of the case
    try:
        return _run(case, caffe, tmp)
    finally:
        sys.path.remove(tmp)
        os.chdir(old)
        shutil.rmtree(tmp, ignore_errors=True)


def _run(case, caffe, tmp):
    write_files(case, tmp, _h5_writer)
    if case["cls"]:
        solver = getattr(caffe, case["cls"])("solver.prototxt")
    else:
        solver = caffe.get_solver("solver.prototxt")
    arrays = {}
    first = 0
    if case["resume_ours"]:
        files = ours_files(case)
        if not files:
            raise RuntimeError("run tests/golden/write_ours_snapshots.py first (no files for %s)"
                               % case["name"])
        for path in files:
            shutil.copy(path, tmp)
        state = [os.path.basename(p) for p in files if ".solverstate" in p][0]
        solver.restore(state)
        first = case["resume_ours"]
        assert solver.iter == first, (solver.iter, first)
    else:
        for layer, blobs in solver.net.params.items():
            for i, blob in enumerate(blobs):
                blob.data[...] = init_param(case, layer, i, blob.data.shape)
                arrays["init/%s/%d" % (layer, i)] = blob.data.copy()
    series = {}  # key -> list over the recorded steps; stacked into one array per key

    def record(key, value):
        series.setdefault(key, []).append(np.array(value, dtype=np.float32))

    for step in range(first, case["steps"]):
        for name, value in step_inputs(case, step).items():
            solver.net.blobs[name].data[...] = value
            record("input/" + name, value)
        solver.step(1)
        for layer, blobs in solver.net.params.items():
            for i, blob in enumerate(blobs):
                record("w/%s/%d" % (layer, i), blob.data)
        record("loss", solver.net.blobs["loss"].data)
        if case["test_inputs"]:
            net = solver.test_nets[0]
            for name, value in test_net_inputs(case, step).items():
                net.blobs[name].data[...] = value
            for name, value in net.forward().items():
                record("test/" + name, value)
        if case["snapshot_at"] == step + 1:
            solver.snapshot()
            for fname in sorted(os.listdir(tmp)):
                if "_iter_" in fname:
                    with open(os.path.join(tmp, fname), "rb") as f:
                        arrays["file/" + fname] = np.frombuffer(f.read(), dtype=np.uint8)
    arrays["steps"] = np.arange(first, case["steps"])
    for key, values in series.items():
        arrays[key] = np.stack(values)
    if case["hdf5"]:
        for name, value in hdf5_arrays(case).items():
            arrays["h5/" + name] = value
    meta = {k: case[k] for k in ("kind", "name", "net", "solver", "steps", "cls", "snapshot_at",
                                 "resume_ours", "tol", "note")}
    meta["inputs"] = sorted(case["inputs"])
    meta["test"] = bool(case["test_inputs"])
    meta["hdf5"] = bool(case["hdf5"])
    return meta, arrays
