"""Bring old net and solver definitions up to the current format, as Caffe does.

Mirrors ``UpgradeNetAsNeeded`` / ``UpgradeSolverAsNeeded`` of Caffe's
``upgrade_proto.cpp``, in the same order:

1. V0 layer definitions (``layers { layer { type: "conv" ... } }``) → V1;
2. V1 data-layer transform fields (``scale``, ``mean_file``, ...) →
   ``transform_param``;
3. V1 ``layers { type: CONVOLUTION ... }`` → ``layer { type: "Convolution" }``
   (``blobs_lr``/``weight_decay`` → ``param { lr_mult decay_mult }``);
4. ``input:`` with ``input_dim``/``input_shape`` → an ``Input`` layer named
   ``input`` placed first;
5. BatchNorm layers that still list three ``param`` specs get their
   multipliers zeroed.

Each step only runs when the file needs it; :func:`upgrade_net` reports which
ran so callers can log it.
"""

from __future__ import annotations

import logging

from ..errors import ProtoError, SolverError
from . import caffe_pb2

__all__ = [
    "upgrade_net",
    "upgrade_solver",
    "net_needs_upgrade",
    "upgrade_net_input",
    "upgrade_batch_norm",
]

_log = logging.getLogger("caffe_compat")


# ----------------------------------------------------------------- V0 / V1
def net_needs_v0_upgrade(net: caffe_pb2.NetParameter) -> bool:
    return any(layer.HasField("layer") for layer in net.layers)


def net_needs_v1_upgrade(net: caffe_pb2.NetParameter) -> bool:
    return len(net.layers) > 0


def upgrade_v0_net(net: caffe_pb2.NetParameter, source: str,
                   problems: list[str] | None = None) -> caffe_pb2.NetParameter:
    from . import legacy

    return legacy.upgrade_v0_net(net, source, problems)


def upgrade_v1_net(net: caffe_pb2.NetParameter, source: str,
                   problems: list[str] | None = None) -> caffe_pb2.NetParameter:
    from . import legacy

    return legacy.upgrade_v1_net(net, source, problems)


def net_needs_data_upgrade(net: caffe_pb2.NetParameter) -> bool:
    from . import legacy

    return legacy.net_needs_data_upgrade(net)


def upgrade_data_transformation(net: caffe_pb2.NetParameter) -> None:
    from . import legacy

    legacy.upgrade_data_transformation(net)


# ------------------------------------------------------------------- input
def net_needs_input_upgrade(net: caffe_pb2.NetParameter) -> bool:
    return len(net.input) > 0


def upgrade_net_input(net: caffe_pb2.NetParameter, source: str = "<net>") -> None:
    """Turn the deprecated ``input``/``input_dim``/``input_shape`` fields into
    an ``Input`` layer named ``input`` at the front of the net."""
    has_shape = len(net.input_shape) > 0
    has_dim = len(net.input_dim) > 0
    if has_shape and has_dim:
        raise ProtoError(
            f"{source}: give either input_shape or the deprecated input_dim, not both"
        )
    if has_dim and len(net.input_dim) != 4 * len(net.input):
        raise ProtoError(
            f"{source}: {len(net.input)} input(s) need {4 * len(net.input)} input_dim "
            f"values (4 per input), got {len(net.input_dim)}"
        )
    if has_shape and len(net.input_shape) != len(net.input):
        raise ProtoError(
            f"{source}: exactly one input_shape per input expected: "
            f"{len(net.input)} input(s), {len(net.input_shape)} input_shape(s)"
        )
    if has_shape or has_dim:
        layer = caffe_pb2.LayerParameter(name="input", type="Input")
        for i, name in enumerate(net.input):
            layer.top.append(name)
            shape = layer.input_param.shape.add()
            if has_shape:
                shape.CopyFrom(net.input_shape[i])
            else:
                shape.dim.extend(net.input_dim[4 * i: 4 * i + 4])
        layers = [layer] + list(net.layer)
        del net.layer[:]
        net.layer.extend(layers)
    # An input with no shape at all is a legacy caffemodel: dropping it is enough.
    net.ClearField("input")
    net.ClearField("input_shape")
    net.ClearField("input_dim")


# --------------------------------------------------------------- batchnorm
def net_needs_batch_norm_upgrade(net: caffe_pb2.NetParameter) -> bool:
    return any(layer.type == "BatchNorm" and len(layer.param) == 3 for layer in net.layer)


def upgrade_batch_norm(net: caffe_pb2.NetParameter) -> None:
    """Old BatchNorm definitions listed three ``param { lr_mult: 0 }`` specs;
    the statistics must never be learned, so force both multipliers to 0."""
    for layer in net.layer:
        if layer.type == "BatchNorm" and len(layer.param) == 3:
            for spec in layer.param:
                spec.lr_mult = 0.0
                spec.decay_mult = 0.0


# --------------------------------------------------------------------- net
def net_needs_upgrade(net: caffe_pb2.NetParameter) -> bool:
    return (
        net_needs_v0_upgrade(net)
        or net_needs_v1_upgrade(net)
        or net_needs_input_upgrade(net)
        or net_needs_batch_norm_upgrade(net)
        or (len(net.layers) > 0 and net_needs_data_upgrade(net))
    )


def upgrade_net(net: caffe_pb2.NetParameter, source: str = "<net>",
                problems: list[str] | None = None) -> list[str]:
    """Upgrade ``net`` in place; return the names of the steps that ran.

    Problems Caffe only logs (a V0 field the layer type does not take) are
    appended to ``problems`` when given; the upgrade_* tools report them."""
    steps: list[str] = []
    if net_needs_v0_upgrade(net):
        upgraded = upgrade_v0_net(net, source, problems)
        net.CopyFrom(upgraded)
        steps.append("V0 layer definitions")
    if len(net.layers) > 0 and net_needs_data_upgrade(net):
        upgrade_data_transformation(net)
        steps.append("data transformation parameters")
    if net_needs_v1_upgrade(net):
        upgraded = upgrade_v1_net(net, source, problems)
        net.CopyFrom(upgraded)
        steps.append("V1 layer definitions")
    if net_needs_input_upgrade(net):
        upgrade_net_input(net, source)
        steps.append("input fields")
    if net_needs_batch_norm_upgrade(net):
        upgrade_batch_norm(net)
        steps.append("BatchNorm param specs")
    for step in steps:
        _log.info("%s: upgraded %s to the current format", source, step)
    return steps


# ------------------------------------------------------------------ solver
_SOLVER_TYPE_NAMES = {
    caffe_pb2.SolverParameter.SGD: "SGD",
    caffe_pb2.SolverParameter.NESTEROV: "Nesterov",
    caffe_pb2.SolverParameter.ADAGRAD: "AdaGrad",
    caffe_pb2.SolverParameter.RMSPROP: "RMSProp",
    caffe_pb2.SolverParameter.ADADELTA: "AdaDelta",
    caffe_pb2.SolverParameter.ADAM: "Adam",
}


def upgrade_solver(solver: caffe_pb2.SolverParameter, source: str = "<solver>") -> list[str]:
    """Replace the deprecated ``solver_type`` enum by the ``type`` string."""
    steps: list[str] = []
    if solver.HasField("solver_type"):
        if solver.HasField("type"):
            raise SolverError(
                f"{source}: the deprecated solver_type "
                f"({caffe_pb2.SolverParameter.SolverType.Name(solver.solver_type)}) "
                f'and type ("{solver.type}") cannot both be given'
            )
        solver.type = _SOLVER_TYPE_NAMES[solver.solver_type]
        solver.ClearField("solver_type")
        steps.append("solver_type")
        _log.info("%s: upgraded solver_type to type: %s", source, solver.type)
    return steps
