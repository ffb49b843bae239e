"""Python layers (``type: "Python"``) mixed with built-in layers.

The layer classes are in ``_python_layers.py``; real pycaffe runs them when the
fixtures are made, caffe_compat's autograd bridge when they are replayed.
Every loss here gives ``loss_weight`` explicitly (Caffe's default for a
Python layer is 0; caffe_compat's default differs for loss-named layers).
"""

from ._spec import input_layer, net_case, randn

M = "golden.cases._python_layers"


def py(name, cls, bottoms, tops, param_str=None, extra=""):
    b = " ".join('bottom: "%s"' % x for x in bottoms)
    t = " ".join('top: "%s"' % x for x in tops)
    ps = ' param_str: "%s"' % param_str if param_str is not None else ""
    return ('layer { name: "%s" type: "Python" %s %s %s python_param { module: "%s" layer: "%s"%s } }\n'
            % (name, b, t, extra, M, cls, ps))


CASES = [
    net_case(
        "python_scale_between_torch_layers",
        input_layer(("data", (4, 3, 2)), ("label", (4,))) + """
name: "py" force_backward: true
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" inner_product_param { num_output: 6 } }
""" + py("scale", "Scale", ["ip1"], ["scaled"], "3") + """
layer { name: "relu" type: "ReLU" bottom: "scaled" top: "scaled" }
""" + py("cscale", "ChannelScale", ["scaled"], ["cs"]) + """
layer { name: "ip2" type: "InnerProduct" bottom: "cs" top: "ip2" inner_product_param { num_output: 5 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
""",
        inputs={"label": lambda rng: rng.randint(0, 5, size=(4,)).astype("float32")},
        params={"cscale": [lambda rng, shape: rng.uniform(0.5, 1.5, size=shape)]},
        note="numpy layers inside autograd: bottom diffs, a learnable Python blob's diff, torch params",
    ),
    net_case(
        "python_euclidean_losses",
        input_layer(("pred", (5, 3)), ("target", (5, 3))) + """
name: "py" force_backward: true
layer { name: "ip" type: "InnerProduct" bottom: "pred" top: "ip" inner_product_param { num_output: 3 } }
""" + py("loss_a", "EuclideanLoss", ["ip", "target"], ["loss_a"], extra="loss_weight: 1")
        + py("loss_b", "EuclideanLoss", ["pred", "target"], ["loss_b"], extra="loss_weight: 0.5"),
        note="two Python losses with explicit weights; gradients reach both bottoms (target too)",
    ),
    net_case(
        "python_two_tops_and_in_place",
        input_layer(("a", (3, 4)), ("b", (3, 4))) + """
name: "py" force_backward: true
""" + py("sp", "SumAndProduct", ["a", "b"], ["sum", "prod"])
        + py("neg", "NegateFirstRow", ["prod"], ["prod"]) + """
layer { name: "sig" type: "Sigmoid" bottom: "sum" top: "sig" }
""",
        note="several bottoms and tops; an in-place Python layer writing part of its blob",
    ),
    net_case(
        "python_data_layer_regression",
        """
name: "py"
""" + py("data", "RandomRegression", [], ["x", "y"], "7,6,4") + """
layer { name: "fc" type: "InnerProduct" bottom: "x" top: "fc" inner_product_param { num_output: 1 } }
""" + py("loss", "EuclideanLoss", ["fc", "y"], ["loss"], extra="loss_weight: 1"),
        note="a Python data layer (no bottoms) feeding torch layers; parameter diffs only",
    ),
    net_case(
        "python_phase_test",
        input_layer(("data", (2, 3))) + """
name: "py" force_backward: true
""" + py("gate", "PhaseGate", ["data"], ["gated"]) + """
layer { name: "ip" type: "InnerProduct" bottom: "gated" top: "ip" inner_product_param { num_output: 2 } }
""",
        phase="TEST",
        inputs={"data": randn(2, 3)},
        note="self.phase is TEST when the net is built for TEST",
    ),
]
