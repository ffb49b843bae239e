"""Recurrent layers (RNN, LSTM, LSTMUnit) beyond the golden net fixtures
(``tests/golden/cases/recurrent.py``):

* ``sequence`` fixtures: several forwards of one net on real Caffe — the
  state carried from one forward to the next;
* ``init`` fixtures: which filler reaches which blob, blob shapes and order;
* float64 gradchecks (binary cont, where Caffe's backward is the derivative);
* invariants: cont semantics, Caffe's forget-gate backward for fractional
  cont, state reset, TRAIN = TEST, a .caffemodel round trip;
* errors: bad parameters, bottom/top counts and shapes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import caffe_compat as caffe
from caffe_compat.errors import LayerError, ShapeError
from caffe_compat.layers.recurrent.lstm_unit import lstm_cell
from caffe_compat.proto import caffe_pb2
from golden_harness import _layer_and_index, assert_close, fixtures, load
from layer_util import build_layer, gradcheck_layer, run_layer

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.tensor(np.random.RandomState(seed).randn(*shape))


def _rec(type_: str, bottoms: list[str], tops: list[str], params: str = "", name: str = "r") -> str:
    b = " ".join(f'bottom: "{x}"' for x in bottoms)
    t = " ".join(f'top: "{x}"' for x in tops)
    return f'layer {{ name: "{name}" type: "{type_}" {b} {t} recurrent_param {{ {params} }} }}\n'


def _net(layers: str, *inputs: tuple[str, tuple[int, ...]], phase: int = caffe.TRAIN) -> "caffe.Net":
    tops = " ".join(f'top: "{n}"' for n, _ in inputs)
    shapes = " ".join("shape { " + " ".join(f"dim: {d}" for d in s) + " }" for _, s in inputs)
    text = ("force_backward: true\n"
            f'layer {{ name: "in" type: "Input" {tops} input_param {{ {shapes} }} }}\n' + layers)
    return caffe.Net(text, phase)


# ===================================================================== sequence fixtures
SEQUENCES = fixtures("sequence", groups=("recurrent",))


@pytest.mark.parametrize("path", SEQUENCES, ids=[p.stem for p in SEQUENCES])
def test_sequence_matches_caffe(path):
    fx = load(path)
    net = caffe.Net(fx.meta["prototxt"], caffe.TRAIN if fx.meta["phase"] == "TRAIN" else caffe.TEST)
    tol = float(fx.meta["tol"])
    for key in fx.keys("param"):
        layer, i = _layer_and_index(key)
        net.params[layer][i].data[...] = fx.arrays[key]
    for k in range(fx.meta["passes"]):
        for key in fx.keys(f"pass{k}/input"):
            net.blobs[key.rsplit("/", 1)[1]].data[...] = fx.arrays[key]
        net.forward()
        for key in fx.keys(f"pass{k}/blob"):
            name = key.rsplit("/", 1)[1]
            assert_close(net.blobs[name].data, fx.arrays[key], tol, f"{fx.id} pass {k}: blob {name}")
    for key in fx.keys("topdiff"):
        net.blobs[key.split("/", 1)[1]].diff[...] = fx.arrays[key]
    net.backward()
    for key in fx.keys("diff"):
        name = key.split("/", 1)[1]
        assert_close(net.blobs[name].diff, fx.arrays[key], tol, f"{fx.id}: diff {name}")
    for key in fx.keys("pdiff"):
        layer, i = _layer_and_index(key)
        assert_close(net.params[layer][i].diff, fx.arrays[key], tol, f"{fx.id}: param diff {layer}[{i}]")


# ===================================================================== init fixtures
def _init_blobs() -> list:
    out = []
    for path in fixtures("init", groups=("recurrent",)):
        fx = load(path)
        for key in fx.keys("stats"):
            out.append(pytest.param(fx, key[len("stats/"):], id=f"{fx.path.stem}:{key[6:]}"))
    return out


@pytest.mark.parametrize("fx,key", _init_blobs())
def test_filler_matches_caffe(fx, key):
    net = caffe.Net(fx.meta["prototxt"], caffe.TEST)
    layer, i = key.rsplit("/", 1)
    ours = net.params[layer][int(i)].data.astype(np.float64)
    assert list(ours.shape) == list(fx.arrays[f"shape/{key}"])
    mean, std, lo, hi = fx.arrays[f"stats/{key}"]
    if std == 0:
        np.testing.assert_allclose(ours, np.full_like(ours, mean), rtol=1e-6)
        return
    # xavier: U(±sqrt(3 / fan_in)), fan_in = the blob's own input size
    span = hi - lo
    assert ours.min() >= lo - 0.02 * span and ours.max() <= hi + 0.02 * span
    assert ours.std() == pytest.approx(std, rel=0.08)


# ===================================================================== blobs
@pytest.mark.parametrize("type_,static,shapes", [
    ("LSTM", False, [(12, 4), (12,), (12, 3)]),
    ("LSTM", True, [(12, 4), (12,), (12, 6), (12, 3)]),
    ("RNN", True, [(3, 4), (3,), (3, 6), (3, 3), (3, 3), (3,)]),
    ("RNN", False, [(3, 4), (3,), (3, 3), (3, 3), (3,)]),
], ids=["lstm", "lstm_static", "rnn_static", "rnn"])
def test_blob_shapes_in_caffe_order(type_, static, shapes):
    # measured on real Caffe (the order of the unrolled net's parameter owners)
    bottoms = ["x", "cont"] + (["xs"] if static else [])
    net = _net(_rec(type_, bottoms, ["y"], "num_output: 3"), ("x", (2, 2, 4)), ("cont", (2, 2)),
               *([("xs", (2, 2, 3))] if static else []))
    assert [b.data.shape for b in net.params["r"]] == shapes


# ===================================================================== gradcheck
T, N, D, H = 3, 2, 3, 2
# cont 0 at t = 0: the carried state (which every gradcheck evaluation changes) is not read
CONT = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)

GRAD_CASES = [
    # (id, layer text, bottoms maker, bottoms to check)
    ("lstm_unit", 'type: "LSTMUnit"',
     lambda: [_randn(1, 3, 2), _randn(1, 3, 8, seed=1), torch.tensor([[0.0, 1.0, 1.0]])], [0, 1]),
    ("lstm", f'type: "LSTM" recurrent_param {{ num_output: {H} weight_filler {{ type: "gaussian" }} '
     'bias_filler { type: "gaussian" } }', lambda: [_randn(T, N, D), CONT], [0]),
    ("lstm_static_4d_x",
     f'type: "LSTM" recurrent_param {{ num_output: {H} weight_filler {{ type: "gaussian" }} }}',
     lambda: [_randn(T, N, 2, 2), CONT, _randn(N, 3, seed=2)], [0, 2]),
    ("lstm_expose_hidden", f'type: "LSTM" recurrent_param {{ num_output: {H} expose_hidden: true '
     'weight_filler { type: "gaussian" } }',
     lambda: [_randn(T, N, D), CONT, _randn(1, N, H, seed=3), _randn(1, N, H, seed=4)], [0]),
    ("rnn", f'type: "RNN" recurrent_param {{ num_output: {H} weight_filler {{ type: "gaussian" }} '
     'bias_filler { type: "gaussian" } }', lambda: [_randn(T, N, D), CONT], [0]),
    ("rnn_static_expose", f'type: "RNN" recurrent_param {{ num_output: {H} expose_hidden: true '
     'weight_filler { type: "gaussian" } }',
     lambda: [_randn(T, N, D), CONT, _randn(N, 2, seed=2), _randn(1, N, H, seed=3)], [0, 2]),
]


@pytest.mark.parametrize("text,make,check", [c[1:] for c in GRAD_CASES], ids=[c[0] for c in GRAD_CASES])
def test_gradcheck(text, make, check):
    xs = make()
    n_top = 2 if "LSTMUnit" in text else 1 + ("expose_hidden" in text) * (2 if "LSTM" in text else 1)
    layer = build_layer(text, [tuple(x.shape) for x in xs], n_top=n_top)
    assert gradcheck_layer(layer, xs, check=check)


# ===================================================================== LSTMUnit
def test_lstm_unit_forget_gate_backward_is_caffes_for_fractional_cont():
    c_prev, gates = _randn(1, 2, 3), _randn(1, 2, 12, seed=1).requires_grad_(True)
    cont = torch.tensor([[0.5, 1.0]], dtype=torch.float64)
    c, _ = lstm_cell(c_prev, gates, cont.unsqueeze(-1))
    c.backward(torch.ones_like(c))
    f = cont.unsqueeze(-1) * torch.sigmoid(gates.detach()[..., 3:6])
    # measured on real Caffe: dX_f = dc · c_prev · f (1 - f) with the scaled f
    torch.testing.assert_close(gates.grad[..., 3:6], c_prev * f * (1 - f))


def test_lstm_unit_cont_zero_drops_even_an_infinite_cell():
    c_prev = torch.tensor([[[1e30, -2.0]]])
    gates = torch.zeros(1, 1, 8)
    c, h = run_layer(build_layer('type: "LSTMUnit"', [(1, 1, 2), (1, 1, 8), (1, 1)], n_top=2),
                     c_prev, gates, torch.zeros(1, 1))
    assert c.tolist() == [[[0.0, 0.0]]] and h.tolist() == [[[0.0, 0.0]]]


# ===================================================================== cont and state
def _lstm_net(expose: bool = False, phase: int = caffe.TRAIN) -> "caffe.Net":
    params = (f'num_output: {H} weight_filler {{ type: "gaussian" std: 0.7 }} '
              'bias_filler { type: "gaussian" }')
    if expose:
        return _net(_rec("LSTM", ["x", "cont", "h0", "c0"], ["h", "hT", "cT"],
                         params + " expose_hidden: true"),
                    ("x", (T, N, D)), ("cont", (T, N)), ("h0", (1, N, H)), ("c0", (1, N, H)), phase=phase)
    return _net(_rec("LSTM", ["x", "cont"], ["h"], params), ("x", (T, N, D)), ("cont", (T, N)), phase=phase)


def test_cont_zero_restarts_the_sequence():
    net = _lstm_net()
    x = np.random.RandomState(0).randn(T, N, D)
    net.blobs["x"].data[...] = x
    net.blobs["cont"].data[...] = [[0, 0], [1, 1], [0, 1]]
    h = net.forward()["h"].copy()
    # stream 0 restarts at t = 2: its last output is that of a fresh one-step sequence
    net.blobs["x"].data[0] = x[2]
    net.blobs["cont"].data[...] = 0
    assert np.allclose(net.forward()["h"][0, 0], h[2, 0], atol=1e-6)


def test_state_is_carried_between_forwards_and_reset_forgets_it():
    net = _lstm_net()
    net.blobs["x"].data[...] = np.random.RandomState(0).randn(T, N, D)
    net.blobs["cont"].data[...] = 1
    first = net.forward()["h"].copy()
    second = net.forward()["h"].copy()
    assert not np.allclose(first, second)  # the second starts from the first's h_T, c_T
    net.layer_dict["r"].reset()
    np.testing.assert_allclose(net.forward()["h"], first, rtol=1e-6)


def test_expose_hidden_states_get_no_gradient_and_final_diffs_are_ignored():
    net = _lstm_net(expose=True)
    for name in ("x", "h0", "c0"):
        net.blobs[name].data[...] = np.random.RandomState(1).randn(*net.blobs[name].shape)
    net.blobs["cont"].data[...] = 1
    net.forward()
    net.blobs["h"].diff[...] = 0
    net.blobs["hT"].diff[...] = 1
    net.blobs["cT"].diff[...] = 1
    net.backward()
    # measured on real Caffe: nothing flows from h_T/c_T, and h_0/c_0 get no diff
    assert not net.blobs["x"].diff.any() and not net.blobs["h0"].diff.any()
    assert not any(b.diff.any() for b in net.params["r"])


def test_train_and_test_phases_compute_the_same():
    outs = []
    for phase in (caffe.TRAIN, caffe.TEST):
        caffe.set_random_seed(3)
        net = _lstm_net(phase=phase)
        net.blobs["x"].data[...] = np.random.RandomState(0).randn(T, N, D)
        net.blobs["cont"].data[...] = [[0, 0], [1, 1], [0, 1]]
        outs.append(net.forward()["h"].copy())
    np.testing.assert_array_equal(outs[0], outs[1])


def test_changing_the_number_of_streams_is_allowed():
    net = _lstm_net()
    net.forward()
    net.blobs["x"].reshape(T, 5, D)
    net.blobs["cont"].reshape(T, 5)
    net.reshape()
    assert net.forward()["h"].shape == (T, 5, H)  # measured on real Caffe


def test_caffemodel_round_trip(tmp_path):
    net = _lstm_net()
    net.blobs["x"].data[...] = np.random.RandomState(0).randn(T, N, D)
    net.blobs["cont"].data[...] = 1
    h = net.forward()["h"].copy()
    net.save(str(tmp_path / "lstm.caffemodel"))
    other = _lstm_net()
    other.copy_from(str(tmp_path / "lstm.caffemodel"))
    other.blobs["x"].data[...] = net.blobs["x"].data
    other.blobs["cont"].data[...] = 1
    np.testing.assert_array_equal(other.forward()["h"], h)


# ===================================================================== errors
X, C = ("x", (T, N, D)), ("cont", (T, N))
UNIT = 'layer { name: "l" type: "LSTMUnit" bottom: "c" bottom: "g" bottom: "k" top: "a" top: "b" }'
ERRORS = [
    # (id, layer text (name "l"), inputs, exception, message fragment)
    ("no_num_output", _rec("RNN", ["x", "cont"], ["y"], name="l"), [X, C], LayerError,
     "num_output must be > 0"),
    ("one_bottom", _rec("RNN", ["x"], ["y"], "num_output: 2", name="l"), [X], LayerError,
     "at least 2 bottom"),
    ("too_many_bottoms", _rec("RNN", ["x", "cont", "x", "cont"], ["y"], "num_output: 2", name="l"), [X, C],
     LayerError, "expected 2 or 3 bottoms"),
    ("expose_missing_states", _rec("LSTM", ["x", "cont"], ["y", "a", "b"],
                                   "num_output: 2 expose_hidden: true", name="l"),
     [X, C], LayerError, "expected 4 or 5 bottoms"),
    ("expose_missing_tops", _rec("RNN", ["x", "cont", "h"], ["y"], "num_output: 2 expose_hidden: true",
                                 name="l"), [X, C, ("h", (1, N, 2))], LayerError, "expected 2 top"),
    ("x_two_axes", _rec("RNN", ["x", "cont"], ["y"], "num_output: 2", name="l"), [("x", (T, N)), C],
     ShapeError, "at least 3 axes"),
    ("cont_shape", _rec("RNN", ["x", "cont"], ["y"], "num_output: 2", name="l"), [X, ("cont", (T, N, 1))],
     ShapeError, "cont \\(bottom 1\\) must be"),
    ("static_batch", _rec("LSTM", ["x", "cont", "s"], ["y"], "num_output: 2", name="l"),
     [X, C, ("s", (N + 1, 2))], ShapeError, "x_static"),
    ("state_shape", _rec("RNN", ["x", "cont", "h"], ["y", "z"], "num_output: 2 expose_hidden: true",
                         name="l"),
     [X, C, ("h", (1, N, 3))], ShapeError, "initial state"),
    ("unit_time_steps", UNIT,
     [("c", (2, N, 2)), ("g", (2, N, 8)), ("k", (2, N))], ShapeError, "first dimension of 1"),
    ("unit_gates", UNIT,
     [("c", (1, N, 2)), ("g", (1, N, 6)), ("k", (1, N))], ShapeError, "4 x 2"),
    ("unit_cont_axes", UNIT,
     [("c", (1, N, 2)), ("g", (1, N, 8)), ("k", (1, N, 1))], ShapeError, "bottom 2 must have 2 axes"),
]


@pytest.mark.parametrize("layer,inputs,exc,fragment", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_bad_layer_raises(layer, inputs, exc, fragment):
    with pytest.raises(exc, match=fragment) as info:
        _net(layer, *inputs).forward()
    assert 'layer "l"' in str(info.value)


def test_time_steps_are_fixed_at_setup():
    net = _lstm_net()
    net.blobs["x"].reshape(T + 1, N, D)
    net.blobs["cont"].reshape(T + 1, N)
    with pytest.raises(ShapeError, match=f'LSTM layer "r".*\\({T}, N, ...\\)'):  # Caffe aborts too
        net.reshape()
