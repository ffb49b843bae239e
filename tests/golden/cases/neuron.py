"""Neuron layers: element-wise functions of one bottom (ReLU, PReLU, ELU, Sigmoid,
TanH, AbsVal, BNLL, Power, Exp, Log, Threshold, Dropout).

Each case is a tiny net with ``force_backward: true``, run forward and
backward by a real Caffe. Inputs stay away from kinks unless the case is
about the kink. The ``*_inplace`` cases pin what Caffe's backward does when
the top overwrites the bottom (it reads the output as the input; for Power
and Log the top diff is also overwritten before use).
"""

import numpy as np

from ._spec import away_from, const, input_layer, net_case, randn, uniform

SHAPE = (2, 3, 2, 3)


def _layer(type_, params="", bottom="x", top="y", name="l"):
    return 'layer { name: "%s" type: "%s" bottom: "%s" top: "%s" %s }\n' % (name, type_, bottom, top,
                                                                            params)


def _case(name, type_, params="", shape=SHAPE, inputs=None, inplace=False, phase="TRAIN",
          grad=True, tol=1e-4, note="", extra=""):
    text = input_layer(("x", shape)) + '\nname: "neuron" force_backward: true\n'
    text += _layer(type_, params, top="x" if inplace else "y") + extra
    return net_case(name, text, phase=phase, inputs={"x": inputs} if inputs else None, grad=grad,
                    tol=tol, note=note)


def _with_points(*shape, points=(), scale=1.0, low=None, high=None):
    """Normal (or uniform in [low, high]) values with ``points`` written at the start."""
    def make(rng):
        if low is not None:
            x = rng.uniform(low, high, size=shape)
        else:
            x = rng.randn(*shape) * scale
        flat = x.reshape(-1)
        flat[:len(points)] = points
        return x.astype(np.float32)
    return make


KINK0 = away_from(*SHAPE, points=(0.0,), margin=0.05)

RELU = [
    _case("relu_plain", "ReLU", inputs=KINK0),
    _case("relu_leaky", "ReLU", "relu_param { negative_slope: 0.1 }", inputs=KINK0),
    _case("relu_at_zero", "ReLU", "relu_param { negative_slope: 0.3 }",
          inputs=_with_points(*SHAPE, points=(0.0, -0.0, 1.0, -1.0)),
          note="the gradient at exactly 0 is negative_slope"),
    _case("relu_leaky_inplace", "ReLU", "relu_param { negative_slope: 0.2 }", inputs=KINK0,
          inplace=True),
    _case("relu_negative_slope_inplace", "ReLU", "relu_param { negative_slope: -0.5 }",
          inputs=KINK0, inplace=True,
          note="in place the backward tests the output's sign: negative inputs get gradient 1"),
]

PRELU = [
    _case("prelu_per_channel", "PReLU", inputs=KINK0, note="slopes (C,), set by the case"),
    _case("prelu_at_zero", "PReLU", inputs=_with_points(*SHAPE, points=(0.0,)),
          note="a 0 input counts as negative: its gradient is the slope"),
    _case("prelu_channel_shared", "PReLU", "prelu_param { channel_shared: true }", inputs=KINK0,
          note="one slope in a 0-axis blob"),
    _case("prelu_2d", "PReLU", shape=(4, 5), inputs=away_from(4, 5)),
    _case("prelu_inplace", "PReLU", inputs=KINK0, inplace=True,
          note="Caffe keeps a copy of the bottom for in-place backward"),
    _case("prelu_filler", "PReLU", 'prelu_param { filler { type: "constant" value: -0.7 } }',
          shape=(2, 2, 3), inputs=away_from(2, 2, 3)),
]

ELU = [
    _case("elu_default", "ELU", inputs=_with_points(*SHAPE, points=(0.0,))),
    _case("elu_alpha", "ELU", "elu_param { alpha: 0.4 }", inputs=randn(*SHAPE, scale=2.0)),
    _case("elu_alpha_inplace", "ELU", "elu_param { alpha: 2.5 }", inputs=randn(*SHAPE, scale=2.0),
          inplace=True),
]

SIGMOID_TANH = [
    _case("sigmoid", "Sigmoid", inputs=randn(*SHAPE, scale=3.0)),
    _case("sigmoid_large", "Sigmoid", shape=(8,),
          inputs=const([-100.0, -30.0, -10.0, 0.0, 10.0, 30.0, 100.0, 1e-3])),
    _case("sigmoid_inplace", "Sigmoid", inputs=randn(*SHAPE, scale=3.0), inplace=True),
    _case("tanh", "TanH", inputs=randn(*SHAPE, scale=2.0)),
    _case("tanh_inplace", "TanH", inputs=randn(*SHAPE, scale=2.0), inplace=True),
]

ABSVAL_BNLL = [
    _case("absval", "AbsVal", inputs=_with_points(*SHAPE, points=(0.0,)),
          note="sign(0) = 0 in the gradient"),
    _case("bnll", "BNLL", inputs=randn(*SHAPE, scale=3.0)),
    _case("bnll_extremes", "BNLL", shape=(8,),
          inputs=const([-80.0, -20.0, -1.0, 0.0, 1.0, 20.0, 49.0, 80.0]),
          note="the split form never overflows; exp(min(x, 50)) in the gradient"),
    _case("bnll_inplace", "BNLL", inputs=randn(*SHAPE, scale=3.0), inplace=True,
          note="in place the gradient is sigmoid(y), not sigmoid(x)"),
]

POWER = [
    _case("power_default", "Power", inputs=randn(*SHAPE), note="power 1, scale 1, shift 0: y = x"),
    _case("power_square", "Power", "power_param { power: 2 scale: 0.5 shift: -0.3 }",
          inputs=randn(*SHAPE)),
    _case("power_cube_no_shift", "Power", "power_param { power: 3 scale: 1.5 }",
          inputs=_with_points(*SHAPE, points=(0.0,)),
          note="shift 0: Caffe's gradient power*y/x is NaN at x = 0"),
    _case("power_fraction", "Power", "power_param { power: 0.5 scale: 2 shift: 1 }",
          inputs=uniform(*SHAPE, low=-0.45, high=2.0)),
    _case("power_general_zero_base", "Power", "power_param { power: 3 scale: 0.5 shift: 0.25 }",
          inputs=_with_points(*SHAPE, points=(-0.5, 0.0)),
          note="base shift + scale*x = 0 at x = -0.5: gradient NaN in Caffe"),
    _case("power_negative", "Power", "power_param { power: -1.5 scale: 1 shift: 3 }",
          inputs=uniform(*SHAPE, low=-1.0, high=2.0)),
    _case("power_scale_only", "Power", "power_param { scale: -2.5 shift: 0.5 }",
          inputs=randn(*SHAPE)),
    _case("power_zero_power", "Power", "power_param { power: 0 scale: 3 shift: 2 }",
          inputs=randn(*SHAPE), note="power 0: y = 1, gradient 0"),
    _case("power_zero_scale", "Power", "power_param { power: 2 scale: 0 shift: 1.5 }",
          inputs=randn(*SHAPE), note="scale 0: y = shift^power, gradient 0"),
    _case("power_inplace", "Power", "power_param { power: 3 scale: 0.5 shift: 0.25 }",
          inputs=uniform(*SHAPE, low=0.5, high=2.0), inplace=True,
          note="in place: the local gradient at the output, squared (the top diff is lost)"),
    _case("power_square_inplace", "Power", "power_param { power: 2 scale: 2 shift: 0.5 }",
          inputs=randn(*SHAPE), inplace=True),
    _case("power_linear_inplace", "Power", "power_param { scale: 0.00390625 }",
          inputs=randn(*SHAPE), inplace=True, note="the usual in-place data scaling"),
    _case("power_cube_no_shift_inplace", "Power", "power_param { power: 3 scale: 0.5 }",
          inputs=uniform(*SHAPE, low=0.5, high=2.0), inplace=True),
]

EXP_LOG = [
    _case("exp_default", "Exp", inputs=randn(*SHAPE)),
    _case("exp_base_scale_shift", "Exp", "exp_param { base: 2 scale: 0.5 shift: 1 }",
          inputs=randn(*SHAPE, scale=2.0)),
    _case("exp_e_shift", "Exp", "exp_param { scale: -1.5 shift: 0.7 }", inputs=randn(*SHAPE)),
    _case("exp_base_lt1_inplace", "Exp", "exp_param { base: 0.3 shift: -1 }", inputs=randn(*SHAPE),
          inplace=True),
    _case("log_default", "Log", inputs=uniform(*SHAPE, low=0.1, high=3.0)),
    _case("log_base_scale_shift", "Log", "log_param { base: 10 scale: 2 shift: 5 }",
          inputs=uniform(*SHAPE, low=-2.0, high=3.0)),
    _case("log_e_shift", "Log", "log_param { shift: 1 }", inputs=uniform(*SHAPE, low=-0.5, high=3.0)),
    _case("log_inplace", "Log", "log_param { scale: 2 shift: 5 }",
          inputs=uniform(*SHAPE, low=-2.0, high=3.0), inplace=True,
          note="in place: the local gradient at the output, squared (the top diff is lost)"),
    _case("log_base2_inplace", "Log", "log_param { base: 2 scale: 0.5 shift: 3 }",
          inputs=uniform(*SHAPE, low=-2.0, high=3.0), inplace=True),
]

THRESHOLD_DROPOUT = [
    _case("threshold_default", "Threshold", inputs=_with_points(*SHAPE, points=(0.0, 1e-6, -1e-6)),
          grad=False, note="1 where x > 0 (strictly); Caffe has no backward"),
    _case("threshold_value_inplace", "Threshold", "threshold_param { threshold: 0.4 }",
          inputs=_with_points(*SHAPE, points=(0.4,)), grad=False, inplace=True),
    _case("dropout_test_identity", "Dropout", "dropout_param { dropout_ratio: 0.3 }",
          inputs=randn(*SHAPE), phase="TEST", note="TEST phase: identity, gradient passes through"),
    _case("dropout_test_inplace", "Dropout", inputs=randn(*SHAPE), phase="TEST", inplace=True),
    _case("dropout_layer_phase_test", "Dropout",
          "dropout_param { dropout_ratio: 0.9 } phase: TEST", inputs=randn(*SHAPE), phase="TRAIN",
          note="the layer's own phase field overrides the net's"),
]

CHAINS = [
    net_case(
        "neuron_chain_ip",
        input_layer(("x", (3, 4))) + """
name: "neuron" force_backward: true
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "h" inner_product_param { num_output: 5 } }
layer { name: "prelu" type: "PReLU" bottom: "h" top: "h" }
layer { name: "ip2" type: "InnerProduct" bottom: "h" top: "z" inner_product_param { num_output: 4 } }
layer { name: "elu" type: "ELU" bottom: "z" top: "e" }
layer { name: "tanh" type: "TanH" bottom: "z" top: "t" }
layer { name: "pow" type: "Power" bottom: "e" top: "p" power_param { power: 2 shift: 1 } }
""",
        note="neuron layers between learnable layers: parameter gradients, a split blob",
    ),
]

CASES = RELU + PRELU + ELU + SIGMOID_TANH + ABSVAL_BNLL + POWER + EXP_LOG + THRESHOLD_DROPOUT + CHAINS
