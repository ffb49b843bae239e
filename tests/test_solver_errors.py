"""Bad solver definitions and snapshots: SolverError naming the file and the field.

Where Caffe aborts (CHECK failures in Solver::Init, InitTrainNet,
InitTestNets, the solver constructors, GetLearningRate, Restore) we raise
SolverError (a ValueError) with the expected and received values.
"""

from __future__ import annotations

import numpy as np
import pytest

import caffe_compat as caffe
from caffe_compat.errors import CaffeCompatError, ProtoSyntaxError, SolverError
from caffe_compat.proto import caffe_pb2

NET = """name: "n"
layer { name: "input" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""

OK = 'net: "net.prototxt" base_lr: 0.1 lr_policy: "fixed" '

# (id, solver text, solver class or None for get_solver, words the message must contain)
BAD_SOLVERS = [
    ("no-net", 'base_lr: 0.1 lr_policy: "fixed"', None, ["no train net", "net, net_param"]),
    ("two-train-nets", OK + 'train_net: "net.prototxt"', None, ["more than one train net", "net, train_net"]),
    ("missing-net-file", 'net: "nope.prototxt" base_lr: 0.1 lr_policy: "fixed"', None,
     ['net: no such file "nope.prototxt"']),
    ("missing-test-net-file", OK.replace('net:', 'train_net:') + 'test_net: "nope.prototxt" test_iter: 1 '
     "test_interval: 1", None, ['test_net[0]: no such file "nope.prototxt"']),
    ("unknown-type", OK + 'type: "Momentum"', None, ['unknown solver type "Momentum"', "Adam"]),
    ("unknown-lr-policy", 'net: "net.prototxt" base_lr: 0.1 lr_policy: "cosine"', None,
     ['lr_policy "cosine"', "fixed, step, exp, inv, multistep, poly, sigmoid"]),
    ("no-lr-policy", 'net: "net.prototxt" base_lr: 0.1', None, ["lr_policy (not set)"]),
    ("step-without-stepsize", 'net: "net.prototxt" base_lr: 0.1 lr_policy: "step" gamma: 0.1', None,
     ['"step" needs stepsize > 0', "stepsize: 0"]),
    ("negative-gamma", 'net: "net.prototxt" base_lr: 0.1 lr_policy: "exp" gamma: -0.5', None,
     ["gamma >= 0", "-0.5"]),
    ("sigmoid-without-stepsize", 'net: "net.prototxt" base_lr: 0.1 lr_policy: "sigmoid" gamma: 0.1',
     None, ["stepsize > 0"]),
    ("poly-without-max-iter", 'net: "net.prototxt" base_lr: 0.1 lr_policy: "poly" power: 1', None,
     ["max_iter > 0"]),
    ("adagrad-momentum", OK + 'type: "AdaGrad" momentum: 0.9', None,
     ["momentum cannot be used with AdaGrad", "0.9"]),
    ("adagrad-class-momentum", OK + "momentum: 0.9", "AdaGradSolver",
     ["momentum cannot be used with AdaGrad"]),
    ("rmsprop-momentum", OK + 'type: "RMSProp" momentum: 0.5', None,
     ["momentum cannot be used with RMSProp"]),
    ("rmsprop-decay-range", OK + 'type: "RMSProp" rms_decay: 1.5', None,
     ["rms_decay", "between 0 and 1", "1.5"]),
    ("average-loss-zero", OK + "average_loss: 0", None, ["average_loss must be >= 1", "got 0"]),
    ("iter-size-zero", OK + "iter_size: 0", None, ["iter_size must be >= 1"]),
    ("regularization", OK + 'weight_decay: 0.1 regularization_type: "L3"', None,
     ['unknown regularization_type "L3"', "L2 or L1"]),
    ("test-iter-missing", OK.replace("net:", "train_net:") + 'test_net: "net.prototxt"', None,
     ["test_iter must be given once per test net", "0 test_iter", "1 test_net"]),
    ("test-interval-zero", OK + "test_iter: 5", None, ["test_interval must be > 0", "got 0"]),
    ("test-state-count", OK + "test_iter: 1 test_interval: 1 test_state { stage: 'a' } "
     "test_state { stage: 'b' }", None, ["test_state must be unspecified or given once per test net",
                                         "2 test_state for 1 test net"]),
    ("snapshot-dir-missing", OK + 'snapshot: 10 snapshot_prefix: "no/such/dir/snap"', None,
     ["cannot write to snapshot prefix 'no/such/dir/snap'", "exists and is writeable"]),
    ("type-and-solver-type", OK + 'type: "SGD" solver_type: ADAM', None, ["solver_type", "cannot both"]),
]


@pytest.fixture
def tmp_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text(NET)
    return tmp_path


@pytest.mark.parametrize("text, cls, words", [c[1:] for c in BAD_SOLVERS], ids=[c[0] for c in BAD_SOLVERS])
def test_bad_solver_file(tmp_files, text, cls, words):
    (tmp_files / "bad_solver.prototxt").write_text(text + "\n")
    make = getattr(caffe, cls) if cls else caffe.get_solver
    with pytest.raises(SolverError) as info:
        make("bad_solver.prototxt")
    message = str(info.value)
    assert "bad_solver.prototxt" in message
    for word in words:
        assert word in message, message
    assert isinstance(info.value, ValueError)


def test_missing_solver_file(tmp_files):
    with pytest.raises(SolverError, match="no_such_solver.prototxt: no such file"):
        caffe.get_solver("no_such_solver.prototxt")


def test_syntax_error_points_at_line_and_column(tmp_files):
    (tmp_files / "s.prototxt").write_text('net: "net.prototxt"\nbase_lr: 0.1\nlr_polcy: "fixed"\n')
    with pytest.raises(CaffeCompatError) as info:
        caffe.get_solver("s.prototxt")
    assert "s.prototxt:3:" in str(info.value) and "lr_polcy" in str(info.value)
    assert isinstance(info.value.__cause__, ProtoSyntaxError) or isinstance(info.value, ProtoSyntaxError)


def test_wrong_argument_type():
    with pytest.raises(TypeError, match="expected a solver prototxt path or a SolverParameter"):
        caffe.get_solver(42)


# ------------------------------------------------------------ restore
@pytest.fixture
def solver(tmp_files):
    (tmp_files / "s.prototxt").write_text(OK + 'snapshot_prefix: "snap"\n')
    return caffe.get_solver("s.prototxt")


def test_restore_with_a_history_of_another_solver_type(solver, tmp_files):
    solver.snapshot()
    (tmp_files / "adam.prototxt").write_text(OK + 'type: "Adam"\n')
    adam = caffe.get_solver("adam.prototxt")
    with pytest.raises(SolverError, match=r"incorrect length of history blobs: the file has 2, "
                                          r"this Adam solver needs 4 \(2 per learnable parameter blob\)"):
        adam.restore("snap_iter_0.solverstate")


def test_restore_history_shape_mismatch(solver, tmp_files):
    state = caffe_pb2.SolverState(iter=3)
    for shape in ((2, 4), (2,)):
        blob = state.history.add()
        blob.shape.dim.extend(shape)
        blob.data.extend(np.zeros(shape).ravel().tolist())
    (tmp_files / "bad.solverstate").write_bytes(state.SerializeToString())
    with pytest.raises(SolverError, match=r"history blob 0 has shape \[2, 4\], the solver's parameter "
                                          r"has \[2, 3\]"):
        solver.restore("bad.solverstate")
    assert solver.iter == 0  # nothing was changed


def test_restore_legacy_4d_history_shapes(solver, tmp_files):
    state = caffe_pb2.SolverState(iter=3, current_step=1)
    for shape in ((1, 1, 2, 3), (1, 1, 1, 2)):
        blob = state.history.add(num=shape[0], channels=shape[1], height=shape[2], width=shape[3])
        blob.data.extend(np.arange(np.prod(shape), dtype=np.float32).tolist())
    (tmp_files / "legacy.solverstate").write_bytes(state.SerializeToString())
    solver.restore("legacy.solverstate")
    assert solver.iter == 3
    np.testing.assert_array_equal(solver._history[0].numpy(), np.arange(6).reshape(2, 3))


def test_restore_missing_learned_net(solver, tmp_files):
    state = caffe_pb2.SolverState(iter=1, learned_net="gone.caffemodel")
    for shape in ((2, 3), (2,)):
        blob = state.history.add()
        blob.shape.dim.extend(shape)
        blob.data.extend(np.zeros(shape).ravel().tolist())
    (tmp_files / "x.solverstate").write_bytes(state.SerializeToString())
    with pytest.raises(SolverError, match='learned_net "gone.caffemodel" does not exist'):
        solver.restore("x.solverstate")


def test_restore_learned_net_beside_the_state(solver, tmp_files, monkeypatch):
    solver.net.params["ip"][1].data[...] = 7
    solver.snapshot()
    sub = tmp_files / "elsewhere"
    sub.mkdir()
    monkeypatch.chdir(sub)
    fresh = caffe.get_solver(str(tmp_files / "s.prototxt"))
    fresh.restore(str(tmp_files / "snap_iter_0.solverstate"))
    assert (fresh.net.params["ip"][1].data == 7).all()


@pytest.mark.parametrize("content, words", [
    (b"", "solver state file is empty"),
    (b"\xff\xff\xff\xff", "cannot parse"),
], ids=["empty", "garbage"])
def test_restore_corrupt_state(solver, tmp_files, content, words):
    (tmp_files / "bad.solverstate").write_bytes(content)
    with pytest.raises(SolverError, match=words):
        solver.restore("bad.solverstate")


def test_restore_hdf5_that_is_not_a_state(solver, tmp_files):
    import h5py

    with h5py.File(tmp_files / "w.solverstate.h5", "w") as f:
        f.create_dataset("data", data=np.zeros(3))
    with pytest.raises(SolverError, match='not a Caffe solver state: no "iter"'):
        solver.restore("w.solverstate.h5")
