"""NetParameter transformations Caffe applies before building a net.

* :func:`filter_net` keeps the layers whose include/exclude rules the
  ``NetState`` (phase, level, stages) meets (``Net::FilterNet``);
* :func:`insert_splits` gives every blob consumed more than once a ``Split``
  layer, with Caffe's exact layer and blob names (``insert_splits.cpp``);
* :func:`check_net_param` warns (strict mode: raises) about what Caffe takes
  silently but is almost surely a mistake — two layers of one name (Caffe
  keeps the last in ``net.params`` and gives it the weights ``copy_from``
  finds) — and about layer types and fields upstream Caffe lacks (the file
  will not load there).
"""

from __future__ import annotations

from .errors import ExtensionWarning, NetError, SuspiciousInputWarning, warn_or_raise
from .proto import caffe_pb2
from .proto.extensions import find_extensions

__all__ = ["filter_net", "state_meets_rule", "insert_splits", "split_layer_name", "split_blob_name",
           "check_net_param"]


def state_meets_rule(state: caffe_pb2.NetState, rule: caffe_pb2.NetStateRule) -> bool:
    """Whether ``state`` satisfies one NetStateRule."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    if any(s not in stages for s in rule.stage):
        return False
    if any(s in stages for s in rule.not_stage):
        return False
    return True


def filter_net(param: caffe_pb2.NetParameter, source: str = "<net>") -> caffe_pb2.NetParameter:
    """A copy of ``param`` holding only the layers ``param.state`` includes."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    del out.layer[:]
    for layer in param.layer:
        if len(layer.include) and len(layer.exclude):
            raise NetError(
                f'{source}: layer "{layer.name}" gives both include and exclude rules; '
                "specify one or the other"
            )
        # No include rule: included unless an exclude rule matches.
        included = len(layer.include) == 0
        if included:
            included = not any(state_meets_rule(param.state, r) for r in layer.exclude)
        else:
            included = any(state_meets_rule(param.state, r) for r in layer.include)
        if included:
            out.layer.add().CopyFrom(layer)
    return out


def split_layer_name(layer_name: str, blob_name: str, blob_idx: int) -> str:
    return f"{blob_name}_{layer_name}_{blob_idx}_split"


def split_blob_name(layer_name: str, blob_name: str, blob_idx: int, split_idx: int) -> str:
    return f"{blob_name}_{layer_name}_{blob_idx}_split_{split_idx}"


def _split_layer(layer_name: str, blob_name: str, blob_idx: int, count: int,
                 loss_weight: float) -> caffe_pb2.LayerParameter:
    split = caffe_pb2.LayerParameter(
        name=split_layer_name(layer_name, blob_name, blob_idx), type="Split"
    )
    split.bottom.append(blob_name)
    for k in range(count):
        split.top.append(split_blob_name(layer_name, blob_name, blob_idx, k))
        if loss_weight:
            split.loss_weight.append(loss_weight if k == 0 else 0.0)
    return split


def insert_splits(param: caffe_pb2.NetParameter, source: str = "<net>") -> caffe_pb2.NetParameter:
    """Caffe's ``InsertSplits``: one Split layer per multiply-consumed top.

    A top that carries an explicit non-zero loss weight counts as one more
    consumer; its Split then carries the loss weight on its first output.
    """
    last_top: dict[str, tuple[int, int]] = {}
    source_of: dict[tuple[int, int], tuple[int, int]] = {}
    uses: dict[tuple[int, int], int] = {}
    loss_weight: dict[tuple[int, int], float] = {}
    layer_names = {-1: "input"}
    for i, name in enumerate(param.input):
        last_top[name] = (-1, i)
    for i, layer in enumerate(param.layer):
        layer_names[i] = layer.name
        for j, blob in enumerate(layer.bottom):
            if blob not in last_top:
                raise NetError(
                    f'{source}: {layer.type} layer "{layer.name}": unknown bottom blob "{blob}" '
                    f"(bottom index {j}); no earlier layer produces it"
                )
            top_idx = last_top[blob]
            source_of[(i, j)] = top_idx
            uses[top_idx] = uses.get(top_idx, 0) + 1
        for j, blob in enumerate(layer.top):
            last_top[blob] = (i, j)
        for j in range(min(len(layer.loss_weight), len(layer.top))):
            top_idx = last_top[layer.top[j]]
            loss_weight[top_idx] = layer.loss_weight[j]
            if layer.loss_weight[j]:
                uses[top_idx] = uses.get(top_idx, 0) + 1

    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    del out.layer[:]
    next_split: dict[tuple[int, int], int] = {}
    for i, name in enumerate(param.input):
        count = uses.get((-1, i), 0)
        if count > 1:
            out.layer.append(_split_layer(layer_names[-1], name, i, count, 0.0))
    for i, layer in enumerate(param.layer):
        copy = out.layer.add()
        copy.CopyFrom(layer)
        for j, blob in enumerate(copy.bottom):
            top_idx = source_of[(i, j)]
            if uses.get(top_idx, 0) > 1:
                k = next_split.get(top_idx, 0)
                next_split[top_idx] = k + 1
                copy.bottom[j] = split_blob_name(layer_names[top_idx[0]], blob, top_idx[1], k)
        for j, blob in enumerate(copy.top):
            top_idx = (i, j)
            count = uses.get(top_idx, 0)
            if count > 1:
                weight = loss_weight.get(top_idx, 0.0)
                out.layer.append(_split_layer(layer.name, blob, j, count, weight))
                if weight:
                    # The loss moves onto the Split's first output.
                    copy.ClearField("loss_weight")
                    next_split[top_idx] = next_split.get(top_idx, 0) + 1
    return out


def check_net_param(param: caffe_pb2.NetParameter, source: str = "<net>") -> None:
    """Warn about duplicate layer names and extensions in a filtered net (strict mode: NetError)."""
    seen: dict[str, int] = {}
    for i, layer in enumerate(param.layer):
        first = seen.setdefault(layer.name, i)
        if first != i:
            other = param.layer[first]
            warn_or_raise(
                f'{source}: two layers are named "{layer.name}" ({other.type} layer {first} and '
                f"{layer.type} layer {i}); Caffe keeps only the last one in net.params and "
                "net.layer_dict and gives only it the weights copy_from finds by that name",
                SuspiciousInputWarning, NetError, stacklevel=5)
    found = find_extensions(param)
    if found:
        warn_or_raise(
            f"{source}: uses what upstream BVLC Caffe does not have, so this file will not load in "
            f"real Caffe: {'; '.join(found)}", ExtensionWarning, NetError, stacklevel=5)
