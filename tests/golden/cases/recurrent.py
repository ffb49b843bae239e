"""Recurrent layers: RNN, LSTM, LSTMUnit.

Net cases run one forward and backward on a real Caffe with T >= 3 and cont
resets in the middle, with and without x_static and expose_hidden, in TRAIN
and TEST. Two other kinds (see :func:`generate`):

* ``sequence``: several forwards of one net, recording the outputs of each —
  without expose_hidden the final state of a forward is the next forward's
  initial state; the last pass also runs backward;
* ``init``: the parameter blobs as Caffe's fillers leave them (which filler
  reaches which blob, and the fan-in of each).
"""

import numpy as np

from ._spec import const, input_layer, net_case, randn

T, N, D, H = 4, 3, 2, 3

# cont[t, n]: 0 starts a new sequence in stream n at step t
CONT = [[0, 0, 0], [1, 1, 0], [0, 1, 1], [1, 0, 1]]
CONT_FRACTIONAL = [[0, 1, 0.5], [1, 0.25, 1], [0.5, 1, 0], [1, 0, 0.75]]


def _rec(type_, bottoms, tops, params="", name="rec"):
    b = " ".join('bottom: "%s"' % x for x in bottoms)
    t = " ".join('top: "%s"' % x for x in tops)
    return ('layer { name: "%s" type: "%s" %s %s recurrent_param { num_output: %d %s } }\n'
            % (name, type_, b, t, H, params))


def _net(name, blobs, layers, inputs, phase="TRAIN", force_backward=True, **kw):
    head = '\nname: "recurrent"%s\n' % (" force_backward: true" if force_backward else "")
    return net_case(name, input_layer(*blobs) + head + layers, phase=phase, inputs=inputs, **kw)


def _cont(values):
    return const(values)


X = ("x", (T, N, D))
C = ("cont", (T, N))
XS = ("xs", (N, 2, 2))
H0 = ("h0", (1, N, H))
C0 = ("c0", (1, N, H))
IN = {"x": randn(T, N, D), "cont": _cont(CONT)}
IN_S = dict(IN, xs=randn(N, 2, 2))

LSTM = [
    _net("lstm_basic", [X, C], _rec("LSTM", ["x", "cont"], ["h"]), IN,
         note="gates i, f, o, g; resets in the middle of each stream"),
    _net("lstm_continue_first_step", [X, C], _rec("LSTM", ["x", "cont"], ["h"]),
         {"x": randn(T, N, D), "cont": _cont([[1, 1, 0]] + CONT[1:])},
         note="cont 1 at t = 0 continues from the (zero) carried state"),
    _net("lstm_static", [X, C, XS], _rec("LSTM", ["x", "cont", "xs"], ["h"]), IN_S,
         note="x_static (N, 2, 2) flattened to 4 inputs, added to every step"),
    _net("lstm_expose_hidden", [X, C, H0, C0],
         _rec("LSTM", ["x", "cont", "h0", "c0"], ["h", "hT", "cT"], "expose_hidden: true"),
         dict(IN, cont=_cont([[1, 1, 0]] + CONT[1:])),
         note="h_0/c_0 get no gradient; the diffs of h_T/c_T are ignored"),
    _net("lstm_expose_static_test", [X, C, XS, H0, C0],
         _rec("LSTM", ["x", "cont", "xs", "h0", "c0"], ["h", "hT", "cT"], "expose_hidden: true"),
         dict(IN_S, cont=_cont([[1, 1, 1]] + CONT[1:])), phase="TEST"),
    _net("lstm_x_4d_test", [("x", (3, 2, 2, 2)), ("cont", (3, 2))],
         _rec("LSTM", ["x", "cont"], ["h"]), {"cont": _cont([[0, 0], [1, 0], [1, 1]])}, phase="TEST",
         note="every axis after the second is flattened: K = 4"),
    _net("lstm_fractional_cont", [X, C], _rec("LSTM", ["x", "cont"], ["h"]),
         {"x": randn(T, N, D), "cont": _cont(CONT_FRACTIONAL)},
         note="cont scales h and the forget gate; the forget gate's backward is f(1 - f)"),
    _net("lstm_no_force_backward", [X, C, ("target", (T, N, H))],
         'layer { name: "pre" type: "Power" bottom: "x" top: "x1" }\n'
         + _rec("LSTM", ["x1", "cont"], ["h"])
         + 'layer { name: "loss" type: "EuclideanLoss" bottom: "h" bottom: "target" top: "loss" }\n',
         IN, force_backward=False,
         note="parameter gradients from a loss; Caffe also writes a diff into x1 (its unrolled "
              "net backprops to x unconditionally), which is not recorded here"),
]

RNN = [
    _net("rnn_basic", [X, C], _rec("RNN", ["x", "cont"], ["o"]), IN),
    _net("rnn_static", [X, C, XS], _rec("RNN", ["x", "cont", "xs"], ["o"]), IN_S),
    _net("rnn_expose_hidden_test", [X, C, XS, H0],
         _rec("RNN", ["x", "cont", "xs", "h0"], ["o", "hT"], "expose_hidden: true"),
         dict(IN_S, cont=_cont([[1, 0, 1]] + CONT[1:])), phase="TEST"),
    _net("rnn_expose_hidden", [X, C, H0],
         _rec("RNN", ["x", "cont", "h0"], ["o", "hT"], "expose_hidden: true"),
         dict(IN, cont=_cont([[1, 1, 1]] + CONT[1:]))),
    _net("rnn_fractional_cont", [X, C], _rec("RNN", ["x", "cont"], ["o"]),
         {"x": randn(T, N, D), "cont": _cont(CONT_FRACTIONAL)}),
]

LSTM_UNIT = [
    _net("lstm_unit", [("c", (1, 4, 2)), ("g", (1, 4, 8)), ("cont", (1, 4))],
         'layer { name: "u" type: "LSTMUnit" bottom: "c" bottom: "g" bottom: "cont" '
         'top: "c1" top: "h1" }\n',
         {"g": randn(1, 4, 8, scale=2.0), "cont": _cont([[0, 1, 0.5, 1]])},
         note="cont 0 zeroes the forget gate; 0.5 scales it (backward f(1 - f))"),
    _net("lstm_unit_test", [("c", (1, 2, 3)), ("g", (1, 2, 12)), ("cont", (1, 2))],
         'layer { name: "u" type: "LSTMUnit" bottom: "c" bottom: "g" bottom: "cont" '
         'top: "c1" top: "h1" }\n',
         {"cont": _cont([[1, 1]])}, phase="TEST"),
]


def sequence_case(name, prototxt, passes, phase="TRAIN", note=""):
    """Several forwards of one net: ``passes`` is a list of {input: maker}."""
    case = net_case(name, prototxt, phase=phase, note=note)
    case.update(kind="sequence", passes=passes)
    return case


def init_case(name, prototxt, note=""):
    return {"kind": "init", "name": name, "prototxt": prototxt.strip() + "\n", "note": note, "seed": 5}


SEQUENCES = [
    sequence_case(
        "lstm_state_carried",
        input_layer(X, C) + '\nname: "recurrent" force_backward: true\n'
        + _rec("LSTM", ["x", "cont"], ["h"]),
        [{"x": randn(T, N, D), "cont": _cont([[0, 0, 0]] + CONT[1:])},
         {"x": randn(T, N, D), "cont": _cont([[1, 0, 1]] + CONT[1:])},
         {"x": randn(T, N, D), "cont": _cont([[1, 1, 1]] * T)}],
        note="without expose_hidden, h_T and c_T of a forward start the next one"),
    sequence_case(
        "rnn_state_carried_test",
        input_layer(X, C, XS) + '\nname: "recurrent" force_backward: true\n'
        + _rec("RNN", ["x", "cont", "xs"], ["o"]),
        [{"x": randn(T, N, D), "cont": _cont(CONT), "xs": randn(N, 2, 2)},
         {"x": randn(T, N, D), "cont": _cont([[1, 1, 0]] * T), "xs": randn(N, 2, 2)}],
        phase="TEST"),
    sequence_case(
        "lstm_expose_hidden_not_carried",
        input_layer(X, C, H0, C0) + '\nname: "recurrent" force_backward: true\n'
        + _rec("LSTM", ["x", "cont", "h0", "c0"], ["h", "hT", "cT"], "expose_hidden: true"),
        [{"x": randn(T, N, D), "cont": _cont([[1, 1, 1]] * T), "h0": randn(1, N, H), "c0": randn(1, N, H)},
         {"x": randn(T, N, D), "cont": _cont([[1, 1, 1]] * T), "h0": randn(1, N, H), "c0": randn(1, N, H)}],
        note="with expose_hidden the bottoms are the initial state every time"),
]

_FILLERS = ('weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0.25 }')
INIT = [
    init_case("lstm_fillers", input_layer(("x", (2, 3, 30)), ("cont", (2, 3)), ("xs", (3, 12)))
              + 'layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" bottom: "xs" top: "h" '
              'recurrent_param { num_output: 20 %s } }\n' % _FILLERS),
    init_case("rnn_fillers", input_layer(("x", (2, 3, 30)), ("cont", (2, 3)), ("xs", (3, 12)))
              + 'layer { name: "rnn" type: "RNN" bottom: "x" bottom: "cont" bottom: "xs" top: "o" '
              'recurrent_param { num_output: 40 %s } }\n' % _FILLERS),
    init_case("lstm_default_fillers", input_layer(("x", (2, 1, 2)), ("cont", (2, 1)))
              + 'layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h" '
              'recurrent_param { num_output: 2 } }\n', note="no fillers: constant 0"),
]

CASES = LSTM + RNN + LSTM_UNIT + SEQUENCES + INIT


def _build(case, caffe):
    import os
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(case["prototxt"])
        path = f.name
    try:
        return caffe.Net(path, caffe.TRAIN if case.get("phase", "TEST") == "TRAIN" else caffe.TEST)
    finally:
        os.unlink(path)


def generate(case, caffe, rng):
    """``sequence`` and ``init`` cases (net cases run in generate.py)."""
    meta = {"kind": case["kind"], "name": case["name"], "prototxt": case["prototxt"],
            "note": case["note"]}
    arrays = {}
    if case["kind"] == "init":
        caffe.set_random_seed(int(case["seed"]))
        net = _build(case, caffe)
        for lname, blobs in net.params.items():
            for i, blob in enumerate(blobs):
                v = blob.data.astype(np.float64)
                key = "%s/%d" % (lname, i)
                arrays["shape/" + key] = np.array(blob.data.shape, dtype=np.int64)
                arrays["stats/" + key] = np.array([v.mean(), v.std(), v.min(), v.max()])
        return meta, arrays
    assert case["kind"] == "sequence"
    meta.update(phase=case["phase"], tol=case["tol"], passes=len(case["passes"]))
    net = _build(case, caffe)
    for lname, blobs in net.params.items():
        for i, blob in enumerate(blobs):
            blob.data[...] = rng.randn(*blob.data.shape) * case["param_scale"]
            arrays["param/%s/%d" % (lname, i)] = blob.data.copy()
    for k, inputs in enumerate(case["passes"]):
        for name, make in sorted(inputs.items()):
            net.blobs[name].data[...] = make(rng)
            arrays["pass%d/input/%s" % (k, name)] = net.blobs[name].data.copy()
        net.forward()
        for name in net.outputs:
            arrays["pass%d/blob/%s" % (k, name)] = net.blobs[name].data.copy()
    for name in net.outputs:
        diff = rng.randn(*net.blobs[name].diff.shape).astype(np.float32)
        net.blobs[name].diff[...] = diff
        arrays["topdiff/%s" % name] = diff
    net.backward()
    for name in net.inputs:
        arrays["diff/%s" % name] = net.blobs[name].diff.copy()
    for lname, blobs in net.params.items():
        for i, blob in enumerate(blobs):
            arrays["pdiff/%s/%d" % (lname, i)] = blob.diff.copy()
    return meta, arrays
