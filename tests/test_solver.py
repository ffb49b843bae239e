"""The pycaffe solver API (modelled on pycaffe's test_solver.py) and solver behaviour.

Numbers against real Caffe are in test_solver_golden.py; here: the API
surface, the training loop's bookkeeping (iter, tests, callbacks, actions,
snapshots, resume), log lines, and Caffe's arithmetic on hand-checkable cases.
"""

from __future__ import annotations

import gc
import logging
import re
from pathlib import Path

import numpy as np
import pytest

import caffe_compat as caffe
from caffe_compat.proto import caffe_pb2
from caffe_compat.solver import SolverAction, learning_rate
from caffe_compat.solver import snapshot as snap

NET = """
name: "testnet"
layer { name: "input" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 5 dim: 2 dim: 3 dim: 4 } shape { dim: 5 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 11 kernel_size: 2 pad: 3
          weight_filler { type: "gaussian" std: 1 } bias_filler { type: "constant" value: 2 } }
        param { decay_mult: 1 } param { decay_mult: 0 } }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip_blob"
        inner_product_param { num_output: 13
          weight_filler { type: "gaussian" std: 2.5 } bias_filler { type: "constant" value: -3 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip_blob" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "ip_blob" bottom: "label" top: "acc"
        include { phase: TEST } }
"""

SOLVER = """net: "net.prototxt"
test_iter: 10 test_interval: 10 base_lr: 0.01 momentum: 0.9
weight_decay: 0.0005 lr_policy: 'inv' gamma: 0.0001 power: 0.75
display: 100 max_iter: 100 snapshot_after_train: false
snapshot_prefix: "model"
"""


@pytest.fixture(autouse=True)
def _records_reach_caplog():
    """The CLI turns propagation off for its own handler; caplog needs it."""
    lg = logging.getLogger("caffe_compat")
    saved = lg.propagate
    lg.propagate = True
    yield
    lg.propagate = saved


@pytest.fixture
def files(tmp_path, monkeypatch):
    """A net and a solver file in a fresh current directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text(NET)

    def write(text: str = SOLVER, name: str = "solver.prototxt") -> str:
        (tmp_path / name).write_text(text)
        return name

    write()
    return write


def _feed(net, seed=0):
    rng = np.random.RandomState(seed)
    net.blobs["data"].data[...] = rng.randn(*net.blobs["data"].data.shape)
    net.blobs["label"].data[...] = rng.randint(13, size=net.blobs["label"].data.shape)


@pytest.fixture
def solver(files):
    s = caffe.SGDSolver("solver.prototxt")
    _feed(s.net, 0)
    _feed(s.test_nets[0], 1)
    return s


# ------------------------------------------------------------ pycaffe's test_solver.py
def test_solve(files):
    files(SOLVER.replace("max_iter: 100", "max_iter: 25").replace("test_iter: 10", "test_iter: 2"))
    solver = caffe.SGDSolver("solver.prototxt")
    _feed(solver.net)
    assert solver.iter == 0
    solver.solve(None)
    assert solver.iter == 25


def test_apply_update(solver):
    net = solver.net
    data = net.layers[1].blobs[0].data
    data[...] = 0
    net.layers[1].blobs[0].diff[...] = 1
    solver.apply_update()
    # the rate at iteration 0 is base_lr; weight decay of zero weights adds nothing
    np.testing.assert_allclose(data, -0.01, atol=1e-7)
    assert solver.iter == 0  # apply_update does not count an iteration


def test_net_memory(solver):
    """Nets stay usable after the solver is gone."""
    nets = [solver.net] + list(solver.test_nets)
    assert len(nets) == 2
    del solver
    gc.collect()
    total = 0.0
    for net in nets:
        for ps in net.params.values():
            for p in ps:
                total += p.data.sum() + p.diff.sum()
        for bl in net.blobs.values():
            total += bl.data.sum() + bl.diff.sum()
        net.forward()
    assert np.isfinite(total)


def test_snapshot(solver, tmp_path):
    solver.snapshot()
    for fn in ["model_iter_0.caffemodel", "model_iter_0.solverstate"]:
        assert (tmp_path / fn).is_file()


# ------------------------------------------------------------ construction
@pytest.mark.parametrize("type_name, cls", [
    ("SGD", "SGDSolver"), ("Nesterov", "NesterovSolver"), ("AdaGrad", "AdaGradSolver"),
    ("RMSProp", "RMSPropSolver"), ("AdaDelta", "AdaDeltaSolver"), ("Adam", "AdamSolver"),
])
def test_get_solver_and_solver_pick_the_type_from_the_file(files, type_name, cls):
    text = SOLVER.replace("momentum: 0.9", "momentum: 0") + f'type: "{type_name}"\n'
    files(text)
    for make in (caffe.get_solver, caffe.Solver):
        s = make("solver.prototxt")
        assert type(s).__name__ == cls
        assert isinstance(s, caffe.Solver)
        assert s.param.type == type_name


def test_deprecated_solver_type_enum(files):
    files(SOLVER + "solver_type: NESTEROV\n")
    assert isinstance(caffe.get_solver("solver.prototxt"), caffe.NesterovSolver)


def test_forced_class_ignores_file_type_with_warning(files, caplog):
    files(SOLVER + 'type: "Nesterov"\n')
    with caplog.at_level(logging.WARNING, logger="caffe_compat"):
        s = caffe.AdamSolver("solver.prototxt")
    assert isinstance(s, caffe.AdamSolver)
    assert "AdamSolver was asked for" in caplog.text


def test_tutorial_usage(files):
    """The seed tutorial: caffe.Solver(path), step(1), read the loss blob."""
    solver = caffe.Solver("solver.prototxt")
    _feed(solver.net)
    solver.step(1)
    loss = solver.net.blobs["loss"].data
    assert loss.shape == () or loss.size == 1
    assert np.isfinite(loss.item())


def test_solver_from_a_solver_parameter(files):
    param = caffe_pb2.SolverParameter(net="net.prototxt", base_lr=0.1, lr_policy="fixed")
    s = caffe.get_solver(param)
    assert isinstance(s, caffe.SGDSolver) and s.test_nets == []


def test_param_is_a_copy_with_every_field(solver):
    p = solver.param
    assert p.base_lr == pytest.approx(0.01) and p.max_iter == 100 and p.lr_policy == "inv"
    p.base_lr = 5
    assert solver.param.base_lr == pytest.approx(0.01)


def test_random_seed_makes_fillers_reproducible(files):
    files(SOLVER + "random_seed: 7\n")
    a = caffe.get_solver("solver.prototxt").net.params["conv"][0].data.copy()
    b = caffe.get_solver("solver.prototxt").net.params["conv"][0].data.copy()
    np.testing.assert_array_equal(a, b)


def test_snapshot_prefix_defaults_like_caffe(files, tmp_path):
    files(SOLVER.replace('snapshot_prefix: "model"', ""), "my_solver.prototxt")
    assert caffe.get_solver("my_solver.prototxt").param.snapshot_prefix == "my_solver"
    (tmp_path / "snaps").mkdir()
    files(SOLVER.replace('"model"', '"snaps"'), "s2.prototxt")
    assert caffe.get_solver("s2.prototxt").param.snapshot_prefix == "snaps/s2"


def test_relative_net_path_found_beside_the_solver_file(files, tmp_path, monkeypatch, caplog):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "net.prototxt").write_text(NET)
    (sub / "solver.prototxt").write_text(SOLVER)
    monkeypatch.chdir(tmp_path / "sub")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    with caplog.at_level(logging.INFO, logger="caffe_compat"):
        s = caffe.get_solver(str(sub / "solver.prototxt"))
    assert s.net.name == "testnet"
    assert "relative to the solver file" in caplog.text


def test_weights_field_loads_into_train_and_test_nets(solver, files):
    solver.net.params["ip"][1].data[...] = 42
    solver.net.save("init.caffemodel")
    files(SOLVER + 'weights: "init.caffemodel"\n')
    s = caffe.get_solver("solver.prototxt")
    assert (s.net.params["ip"][1].data == 42).all()
    assert (s.test_nets[0].params["ip"][1].data == 42).all()


# ------------------------------------------------------------ nets
def test_test_nets_share_the_train_weights(solver):
    _feed(solver.net)
    solver.step(2)
    for name, blobs in solver.test_nets[0].params.items():
        for a, b in zip(blobs, solver.net.params[name]):
            assert a.tensor is b.tensor
    solver.net.params["ip"][0].data[...] = 0.5
    assert (solver.test_nets[0].params["ip"][0].data == 0.5).all()


def test_share_weights_with_another_net(solver, tmp_path):
    other = caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST)
    solver.share_weights(other)
    solver.step(1)
    np.testing.assert_array_equal(other.params["ip"][0].data, solver.net.params["ip"][0].data)


def test_train_state_and_test_state(files):
    net = NET + 'layer { name: "extra" type: "ReLU" bottom: "ip_blob" top: "extra" ' \
                'include { stage: "deploy" } }\n'
    Path("net.prototxt").write_text(net)
    files(SOLVER + 'train_state { stage: "deploy" }\ntest_state { level: 2 }\n')
    s = caffe.get_solver("solver.prototxt")
    assert "extra" in s.net.blobs
    assert "extra" not in s.test_nets[0].blobs
    assert s.test_nets[0].phase == caffe.TEST and s.net.phase == caffe.TRAIN


def test_generic_net_gives_one_test_net_per_test_iter(files):
    files(SOLVER.replace("test_iter: 10", "test_iter: 3 test_iter: 4"))
    assert len(caffe.get_solver("solver.prototxt").test_nets) == 2


def test_net_param_and_test_net_param_inline(files):
    from caffe_compat.proto.files import parse_text

    netp = parse_text(NET, caffe_pb2.NetParameter())
    param = caffe_pb2.SolverParameter(base_lr=0.1, lr_policy="fixed", test_interval=5)
    param.train_net_param.CopyFrom(netp)
    param.test_net_param.add().CopyFrom(netp)
    param.test_iter.append(2)
    s = caffe.get_solver(param)
    assert len(s.test_nets) == 1 and s.test_nets[0].phase == caffe.TEST


# ------------------------------------------------------------ the loop
def test_callbacks_run_in_caffes_order(solver):
    events = []
    w = solver.net.params["ip"][0]

    def on_start():
        events.append(("start", solver.iter))

    def on_ready():
        # gradients are there, the update has not happened yet
        events.append(("ready", solver.iter, float(np.abs(w.diff).sum()) > 0, w.data.copy()))

    solver.add_callback(on_start, on_ready)
    before = w.data.copy()
    solver.step(2)
    assert [e[:2] for e in events] == [("start", 0), ("ready", 0), ("start", 1), ("ready", 1)]
    assert events[1][2] and np.array_equal(events[1][3], before)


def test_apply_update_leaves_the_update_in_the_diff(solver):
    """As in Caffe, after an update the diff holds the step that was subtracted."""
    solver.step(1)
    w = solver.net.params["ip"][0]
    before = w.data.copy()
    _feed(solver.net, 3)
    solver.net.clear_param_diffs()
    solver.net._forward_backward()
    solver.apply_update()
    np.testing.assert_allclose(before - w.diff, w.data, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("answers, stopped_at, snapshots", [
    (["none", "stop"], 2, []),
    ([SolverAction.SNAPSHOT, SolverAction.NONE, SolverAction.STOP], 3, ["model_iter_1.caffemodel"]),
    ([None, 2, 1], 3, ["model_iter_2.caffemodel"]),
], ids=["stop", "snapshot-then-stop", "caffe-enum-values"])
def test_action_function(solver, tmp_path, answers, stopped_at, snapshots):
    queue = list(answers)
    solver.set_action_function(lambda: queue.pop(0) if queue else "none")
    solver._test_nets = []  # only the iterations poll the action function here
    solver.solve()
    assert solver.iter == stopped_at
    for name in snapshots:
        assert (tmp_path / name).exists()


def test_stop_during_testing_interrupts_the_test(solver, caplog):
    polls = []

    def action():
        polls.append(solver.iter)
        return "stop" if len(polls) == 3 else "none"

    solver.set_action_function(action)
    with caplog.at_level(logging.INFO, logger="caffe_compat"):
        solver.solve()
    assert "Test interrupted." in caplog.text
    assert "Optimization stopped early." in caplog.text
    assert solver.iter == 0


def test_solve_snapshots_at_intervals_and_after_training(files, tmp_path):
    files(SOLVER.replace("snapshot_after_train: false", "snapshot: 4")
          .replace("max_iter: 100", "max_iter: 10").replace("test_iter: 10", "test_iter: 1"))
    s = caffe.get_solver("solver.prototxt")
    _feed(s.net)
    s.solve()
    names = sorted(p.name for p in tmp_path.glob("model_iter_*"))
    assert names == ["model_iter_10.caffemodel", "model_iter_10.solverstate",
                     "model_iter_4.caffemodel", "model_iter_4.solverstate",
                     "model_iter_8.caffemodel", "model_iter_8.solverstate"]


def test_hdf5_snapshot_and_restore(files, tmp_path):
    files(SOLVER + "snapshot_format: HDF5\n" + 'type: "Adam"\n')
    s = caffe.get_solver("solver.prototxt")
    _feed(s.net)
    s.step(3)
    assert s.snapshot() == "model_iter_3.caffemodel.h5"
    state = snap.read_state(tmp_path / "model_iter_3.solverstate.h5")
    assert (state.iter, state.learned_net) == (3, "model_iter_3.caffemodel.h5")
    assert len(state.history) == 2 * len(s.net.learnable_params)
    fresh = caffe.get_solver("solver.prototxt")
    fresh.restore("model_iter_3.solverstate.h5")
    assert fresh.iter == 3
    np.testing.assert_array_equal(fresh.net.params["ip"][0].data, s.net.params["ip"][0].data)


RESUME = [(t, "BINARYPROTO") for t in ("SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam")] \
    + [("SGD", "HDF5"), ("Adam", "HDF5")]


@pytest.mark.parametrize("solver_type, fmt", RESUME, ids=[f"{t}-{f}" for t, f in RESUME])
def test_resumed_run_equals_uninterrupted(files, solver_type, fmt):
    text = (SOLVER.replace("momentum: 0.9", "momentum: 0" if solver_type in ("AdaGrad", "RMSProp")
                           else "momentum: 0.9")
            .replace("lr_policy: 'inv'", "lr_policy: 'multistep' stepvalue: 2 stepvalue: 4")
            + f'type: "{solver_type}"\nsnapshot_format: {fmt}\nrandom_seed: 3\n')
    files(text)

    def run(resume_at=None):
        s = caffe.get_solver("solver.prototxt")
        if resume_at is not None:
            s.restore(f"model_iter_{resume_at}.solverstate" + (".h5" if fmt == "HDF5" else ""))
        for it in range(s.iter, 6):
            _feed(s.net, it)
            s.step(1)
            if resume_at is None and it + 1 == 3:
                s.snapshot()
        return [b.data.copy() for b in s.net.learnable_params], s._current_step

    whole, step_a = run()
    resumed, step_b = run(resume_at=3)
    assert step_a == step_b == 2
    for a, b in zip(whole, resumed):
        np.testing.assert_array_equal(a, b)


def test_lr_mult_zero_blobs_never_change_and_keep_history(files):
    text = NET.replace("param { decay_mult: 1 } param { decay_mult: 0 }",
                       "param { lr_mult: 0 } param { lr_mult: 0 }")
    Path("net.prototxt").write_text(text)
    files(SOLVER.replace("momentum: 0.9", "momentum: 0") + 'type: "AdaGrad"\n')
    s = caffe.get_solver("solver.prototxt")
    _feed(s.net)
    frozen = [b.data.copy() for b in s.net.params["conv"]]
    # a non-zero restored history must not move them either
    for h in s._history[:2]:
        h.fill_(3.0)
    s.step(3)
    for b, before in zip(s.net.params["conv"], frozen):
        np.testing.assert_array_equal(b.data, before)
    assert len(s._history) == len(s.net.learnable_params) == 4
    # AdaGrad history of the frozen weights grows by (decay * w)^2, as in Caffe
    wd = np.float32(0.0005)
    expected = 3.0 + 3 * (wd * frozen[0]) ** 2
    np.testing.assert_allclose(s._history[0].numpy(), expected, rtol=1e-5)


# ------------------------------------------------------------ arithmetic
def _one_param_solver(files, text, value=1.0, grad=0.5):
    net = """name: "p"
layer { name: "input" type: "Input" top: "x" input_param { shape { dim: 1 dim: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
        inner_product_param { num_output: 1 bias_term: false } }
"""
    Path("one.prototxt").write_text(net)
    files('net: "one.prototxt"\n' + text, "one_solver.prototxt")
    s = caffe.get_solver("one_solver.prototxt")
    w = s.net.params["ip"][0]
    w.data[...] = value

    def step(g=grad):
        w.diff[...] = g
        s.apply_update()
        s._iter += 1
        return float(w.data.ravel()[0])

    return s, step


@pytest.mark.parametrize("text, expected", [
    ('base_lr: 0.1 lr_policy: "fixed" momentum: 0.9', [0.95, 0.855, 0.7195]),
    ('base_lr: 0.1 lr_policy: "fixed" momentum: 0.9 weight_decay: 0.1',
     [1 - 0.1 * 0.6, None, None]),
    ('base_lr: 0.1 lr_policy: "fixed" weight_decay: 0.1 regularization_type: "L1"',
     [0.94, 0.88, 0.82]),
    ('type: "Nesterov" base_lr: 0.1 lr_policy: "fixed" momentum: 0.9', [1 - 1.9 * 0.05, None, None]),
    ('type: "AdaGrad" base_lr: 0.1 lr_policy: "fixed"', [0.9, 0.9 - 0.1 * 0.5 / np.sqrt(0.5), None]),
    ('type: "RMSProp" base_lr: 0.1 lr_policy: "fixed" rms_decay: 0.9',
     [1 - 0.1 * 0.5 / np.sqrt(0.1 * 0.25), None, None]),
    ('type: "Adam" base_lr: 0.1 lr_policy: "fixed" momentum: 0.9 momentum2: 0.999',
     [0.9, 0.8, 0.7]),
    ('base_lr: 0.1 lr_policy: "fixed" clip_gradients: 0.1', [0.99, 0.98, 0.97]),
], ids=["sgd-momentum", "l2-decay", "l1-decay", "nesterov", "adagrad", "rmsprop", "adam", "clip"])
def test_update_rules_by_hand(files, text, expected):
    s, step = _one_param_solver(files, text)
    for want in expected:
        got = step()
        if want is not None:
            assert got == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_adadelta_by_hand(files):
    s, step = _one_param_solver(files, 'type: "AdaDelta" base_lr: 1 lr_policy: "fixed" '
                                       "momentum: 0.9 delta: 1e-6")
    eg = 0.1 * 0.25
    upd = 0.5 * np.sqrt((0 + 1e-6) / (eg + 1e-6))
    assert step() == pytest.approx(1 - upd, rel=1e-5)


def test_iter_size_accumulates_then_normalizes(files):
    """iter_size 2 over two batches == iter_size 1 on the averaged gradient."""
    text = 'base_lr: 0.1 lr_policy: "fixed" iter_size: 2\n'
    files('net: "net.prototxt"\n' + text, "s_iter.prototxt")
    s = caffe.get_solver("s_iter.prototxt")
    init = {k: [b.data.copy() for b in v] for k, v in s.net.params.items()}
    batches = iter([0, 1])
    s.net.before_forward(lambda i: _feed(s.net, next(batches)) if i == 0 else None)
    s.step(1)
    ref = caffe.get_solver(caffe_pb2.SolverParameter(net="net.prototxt", base_lr=0.1, lr_policy="fixed"))
    for k, v in ref.net.params.items():
        for b, x in zip(v, init[k]):
            b.data[...] = x
    grads = []
    for seed in (0, 1):
        _feed(ref.net, seed)
        ref.net.clear_param_diffs()
        ref.net._forward_backward()
        grads.append([b.diff.copy() for b in ref.net.learnable_params])
    for b, g0, g1 in zip(ref.net.learnable_params, *grads):
        b.diff[...] = (g0 + g1) / 2
    ref.apply_update()
    for a, b in zip(s.net.learnable_params, ref.net.learnable_params):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-5, atol=1e-6)


LR_CASES = [
    ("fixed", {}, [(0, 0.1), (100, 0.1)]),
    ("step", {"stepsize": 10, "gamma": 0.5}, [(0, 0.1), (9, 0.1), (10, 0.05), (25, 0.025)]),
    ("exp", {"gamma": 0.9}, [(0, 0.1), (2, 0.081)]),
    ("inv", {"gamma": 0.1, "power": 0.5}, [(0, 0.1), (10, 0.1 / np.sqrt(2))]),
    ("poly", {"power": 2, "max_iter": 10}, [(0, 0.1), (5, 0.025), (10, 0.0)]),
    ("sigmoid", {"gamma": 1, "stepsize": 5}, [(5, 0.05), (0, 0.1 / (1 + np.exp(5)))]),
]


@pytest.mark.parametrize("policy, fields, points", LR_CASES, ids=[c[0] for c in LR_CASES])
def test_lr_policies(policy, fields, points):
    param = caffe_pb2.SolverParameter(base_lr=0.1, lr_policy=policy, **fields)
    for it, want in points:
        assert learning_rate(param, it, 0)[0] == pytest.approx(want, rel=1e-6, abs=1e-9)


def test_multistep_advances_one_step_per_call():
    param = caffe_pb2.SolverParameter(base_lr=1, lr_policy="multistep", gamma=0.1)
    param.stepvalue.extend([2, 3, 4])
    assert learning_rate(param, 10, 0) == (pytest.approx(0.1), 1)  # only one step per call
    assert learning_rate(param, 10, 1) == (pytest.approx(0.01), 2)
    assert learning_rate(param, 1, 0) == (1.0, 0)


def test_lr_property_is_caffes_get_learning_rate(files):
    files(SOLVER.replace("lr_policy: 'inv' gamma: 0.0001", "lr_policy: 'multistep' gamma: 0.5 stepvalue: 1"))
    s = caffe.get_solver("solver.prototxt")
    assert s.lr == pytest.approx(0.01)
    _feed(s.net)
    s.step(1)
    assert s.lr == pytest.approx(0.005)
    assert s._current_step == 1


def test_rate_is_float32():
    param = caffe_pb2.SolverParameter(base_lr=0.1, lr_policy="fixed")
    assert learning_rate(param, 0, 0)[0] == float(np.float32(0.1))


# ------------------------------------------------------------ log lines
PARSE_LOG = {  # the regular expressions of Caffe's tools/extra/parse_log.py
    "iteration": re.compile(r"Iteration (\d+)"),
    "train": re.compile(r"Train net output #(\d+): (\S+) = ([\.\deE+-]+)"),
    "test": re.compile(r"Test net output #(\d+): (\S+) = ([\.\deE+-]+)"),
    "lr": re.compile(r"lr = ([-+]?[0-9]*\.?[0-9]+([eE]?[-+]?[0-9]+)?)"),
}


def test_log_lines_in_caffes_wording(files, caplog):
    files(SOLVER.replace("display: 100", "display: 5").replace("max_iter: 100", "max_iter: 10")
          + "test_compute_loss: true\n")
    s = caffe.get_solver("solver.prototxt")
    _feed(s.net)
    with caplog.at_level(logging.INFO, logger="caffe_compat"):
        s.solve()
    lines = caplog.messages
    text = "\n".join(lines)
    assert f"Solving {s.net.name}" in lines and "Learning Rate Policy: inv" in lines
    assert re.search(r"^Iteration 5 \([\d.e+-]+ iter/s, [\d.e+-]+s/5 iters\), loss = [\d.e+-]+$", text, re.M)
    assert re.search(r"^    Train net output #0: loss = [\d.e+-]+ \(\* 1 = [\d.e+-]+ loss\)$", text, re.M)
    assert re.search(r"^Iteration 5, lr = 0\.00999", text, re.M)
    assert "Iteration 10, Testing net (#0)" in lines
    assert re.search(r"^    Test net output #0: acc = [\d.e+-]+$", text, re.M)
    assert re.search(r"^    Test net output #1: loss = [\d.e+-]+ \(\* 1 = [\d.e+-]+ loss\)$", text, re.M)
    assert re.search(r"^Test loss: ", text, re.M)
    assert re.search(r"^Iteration 10, loss = ", text, re.M)
    assert lines[-1] == "Optimization Done."
    assert sum(bool(PARSE_LOG["train"].search(m)) for m in lines) == 2
    assert sum(bool(PARSE_LOG["test"].search(m)) for m in lines) == 4  # at 0 and at 10
    assert sum(bool(PARSE_LOG["lr"].search(m)) for m in lines) == 2


def test_smoothed_loss_averages_the_last_average_loss_iterations(files, caplog):
    files(SOLVER.replace("display: 100", "display: 1 average_loss: 3")
          .replace("test_iter: 10 test_interval: 10", ""))
    s = caffe.get_solver("solver.prototxt")
    losses = []
    s.add_callback(lambda: None, lambda: losses.append(float(s.net.blobs["loss"].data)))
    seeds = iter(range(100))
    s.net.before_forward(lambda i: _feed(s.net, next(seeds)) if i == 0 else None)
    with caplog.at_level(logging.INFO, logger="caffe_compat"):
        s.step(5)
    shown = [float(m.rsplit("= ", 1)[1]) for m in caplog.messages if re.match(r"Iteration \d+ \(", m)]
    want = [np.mean(losses[max(0, i - 2):i + 1]) for i in range(5)]
    np.testing.assert_allclose(shown, want, rtol=1e-4)


def test_test_averages_outputs_over_test_iter_batches(solver, caplog):
    net = solver.test_nets[0]
    seeds = iter(range(100))
    outs = []
    net.before_forward(lambda i: _feed(net, next(seeds)) if i == 0 else None)
    last = len(net.layers) - 1
    net.after_forward(lambda i: outs.append(float(net.blobs["acc"].data)) if i == last else None)
    means = solver.test(0)
    assert len(outs) == 10
    assert means[0] == pytest.approx(np.mean(outs), rel=1e-6)


def test_clip_gradients_logs_the_scaling(files, caplog):
    files(SOLVER + "clip_gradients: 0.001\n")
    s = caffe.get_solver("solver.prototxt")
    _feed(s.net)
    with caplog.at_level(logging.INFO, logger="caffe_compat"):
        s.step(1)
    assert re.search(r"Gradient clipping: scaling down gradients \(L2 norm [\d.e+-]+ > 0\.001\) "
                     r"by scale factor [\d.e+-]+", caplog.text)


# ------------------------------------------------------------ snapshot files
def test_solverstate_readable_as_caffe_proto(solver, tmp_path):
    _feed(solver.net)
    solver.step(2)
    solver.snapshot()
    state = caffe_pb2.SolverState()
    state.ParseFromString((tmp_path / "model_iter_2.solverstate").read_bytes())
    assert state.iter == 2 and state.learned_net == "model_iter_2.caffemodel"
    assert len(state.history) == len(solver.net.learnable_params)
    assert list(state.history[0].shape.dim) == list(solver.net.params["conv"][0].data.shape)
    np.testing.assert_array_equal(np.asarray(state.history[0].data),
                                  solver._history[0].numpy().ravel())


def test_snapshot_is_atomic(solver, tmp_path, monkeypatch):
    from caffe_compat.proto import files as pfiles

    def fail(*args):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(pfiles.os, "replace", fail)
    with pytest.raises(OSError, match="simulated"):
        solver.snapshot()
    assert [p.name for p in tmp_path.iterdir() if "iter" in p.name] == []
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_snapshot_diff_writes_the_diffs(files, tmp_path):
    files(SOLVER + "snapshot_diff: true\n")
    s = caffe.get_solver("solver.prototxt")
    _feed(s.net)
    s.step(1)
    s.snapshot()
    netp = caffe_pb2.NetParameter()
    netp.ParseFromString((tmp_path / "model_iter_1.caffemodel").read_bytes())
    ip = next(lp for lp in netp.layer if lp.name == "ip")
    np.testing.assert_allclose(np.asarray(ip.blobs[0].diff), s.net.params["ip"][0].diff.ravel())


@pytest.mark.cuda
def test_step_on_gpu_matches_cpu(files):
    files(SOLVER + 'type: "Adam"\nrandom_seed: 5\n')
    results = []
    for gpu in (False, True):
        (caffe.set_mode_gpu if gpu else caffe.set_mode_cpu)()
        s = caffe.get_solver("solver.prototxt")
        for it in range(3):
            _feed(s.net, it)
            s.step(1)
        results.append([b.data.copy() for b in s.net.learnable_params])
    caffe.set_mode_cpu()
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_progress_bar_when_enabled(solver, capsys):
    solver.progress = True
    solver.step(3)
    err = capsys.readouterr().err
    assert "/100" in err and "iter" in err  # tqdm's bar, on stderr
    assert solver.iter == 3


DEBUG_NET = """name: "tiny2"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 4 dim: 3 } shape { dim: 4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 } }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip" top: "ip2" inner_product_param { num_output: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""

# What real Caffe logged for the second of two steps (same values, same seed).
CAFFE_DEBUG_LINES = """\
    [Forward] Layer data, top blob data data: 0.953521
    [Forward] Layer data, top blob label data: 0
    [Forward] Layer ip, top blob ip data: 1.96469
    [Forward] Layer ip, param blob 0 data: 0.76165
    [Forward] Layer ip, param blob 1 data: 0.748209
    [Forward] Layer relu, top blob ip data: 1.31823
    [Forward] Layer ip2, top blob ip2 data: 2.84626
    [Forward] Layer ip2, param blob 0 data: 1.13292
    [Forward] Layer ip2, param blob 1 data: 0.263889
    [Forward] Layer loss, top blob loss data: 0.598032
    [Backward] Layer loss, bottom blob ip2 diff: 0.0636137
    [Backward] Layer ip2, bottom blob ip diff: 0.141306
    [Backward] Layer ip2, param blob 0 diff: 0.546123
    [Backward] Layer ip2, param blob 1 diff: 0.254455
    [Backward] Layer relu, bottom blob ip diff: 0.13785
    [Backward] Layer ip, param blob 0 diff: 0.848013
    [Backward] Layer ip, param blob 1 diff: 0.551399
    [Backward] All net params (data, diff): L1 norm = (16.4248, 13.072); L2 norm = (4.80827, 3.36329)
""".splitlines()


def test_debug_info_lines_match_caffe(files, caplog):
    Path("net2.prototxt").write_text(DEBUG_NET)
    files('net: "net2.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\ndisplay: 1\ndebug_info: true\n'
          "weight_decay: 0.1\n", "dbg.prototxt")
    s = caffe.get_solver("dbg.prototxt")
    rng = np.random.RandomState(0)
    s.net.blobs["data"].data[...] = rng.randn(4, 3)
    for blobs in s.net.params.values():
        for b in blobs:
            b.data[...] = rng.randn(*b.data.shape)
    with caplog.at_level(logging.INFO, logger="caffe_compat"):
        s.step(2)
    ours = [r for r in caplog.records if "[Forward]" in r.getMessage() or "[Backward]" in r.getMessage()]
    assert len(ours) == 2 * len(CAFFE_DEBUG_LINES)
    assert ours[-1].levelno == logging.ERROR  # as Caffe logs the totals
    number = re.compile(r"[-\d.e+]+(?=[,);]|$)")
    for got, want in zip([r.getMessage() for r in ours[len(CAFFE_DEBUG_LINES):]], CAFFE_DEBUG_LINES):
        assert number.sub("#", got) == number.sub("#", want)
        np.testing.assert_allclose([float(x) for x in number.findall(got)],
                                   [float(x) for x in number.findall(want)], rtol=2e-5, atol=1e-7)
    # the pass with debug output trains like the normal one
    files('net: "net2.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\ndisplay: 1\nweight_decay: 0.1\n',
          "plain.prototxt")
    plain = caffe.get_solver("plain.prototxt")
    rng = np.random.RandomState(0)
    plain.net.blobs["data"].data[...] = rng.randn(4, 3)
    for blobs in plain.net.params.values():
        for b in blobs:
            b.data[...] = rng.randn(*b.data.shape)
    plain.step(2)
    for a, b in zip(s.net.learnable_params, plain.net.learnable_params):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-6, atol=1e-7)
