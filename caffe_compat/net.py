"""Net: Caffe's network as an interpreter over torch layer modules.

Building follows ``Net::Init``: read and upgrade the NetParameter, filter it
by the NetState, insert Split layers, create each layer from the registry,
wire bottoms and tops (in-place when a top repeats the bottom at its index),
record loss weights and parameter specs, work out which layers need backward,
and collect the outputs.

Passes run through the net's execution plan (:mod:`caffe_compat.plans`): the
eager interpreter it is built with, or the one :func:`caffe_compat.accelerate`
chose. The net checks ranges, flushes host writes and moves blobs to its device,
then hands the pass to the plan; it never branches on accelerations.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from . import mode
from .blob import Blob, ParamBlob, as_shape, flush_host_writes
from .errors import (
    BlobNotFoundError,
    CaffeCompatError,
    LayerError,
    NetError,
    ShapeError,
    UnknownLayerTypeError,
    layer_where,
)
from .layers.base import Layer, LayerContext
from .layers.registry import get_layer_class
from .plans import EagerPlan, ExecutionPlan, default_plan, seed_grad  # noqa: F401  (seed_grad: old home)
from .netparam import check_net_param, filter_net, insert_splits
from .proto import caffe_pb2
from .proto.files import parse_text, read_text
from .proto.upgrade import upgrade_net
from .sizes import FLOAT_BYTES, MemoryBudget
from .threads import span as threads_span

__all__ = ["Net", "load_net_param", "TRAIN", "TEST"]

TRAIN = caffe_pb2.TRAIN
TEST = caffe_pb2.TEST

_log = logging.getLogger("caffe_compat")

LayerCallback = Callable[[int], None]
# What a forward leaves per layer for backward: its bottom and top tensors.
_Record = tuple[list[torch.Tensor], Sequence[torch.Tensor]]


def load_net_param(model: Any, source: str | None = None) -> tuple[caffe_pb2.NetParameter, str]:
    """A NetParameter (upgraded to the current format) and a name for messages.

    ``model`` is a path to a .prototxt, a NetParameter, or prototxt text.
    """
    if isinstance(model, caffe_pb2.NetParameter):
        param = caffe_pb2.NetParameter()
        param.CopyFrom(model)
        src = source or f"<NetParameter {param.name!r}>"
    elif isinstance(model, (str, os.PathLike)) and not _looks_like_text(model):
        src = str(model)
        param = read_text(model, caffe_pb2.NetParameter())
    elif isinstance(model, str):
        src = source or "<prototxt string>"
        param = parse_text(model, caffe_pb2.NetParameter(), src)
    else:
        raise TypeError(f"Net: expected a prototxt path or a NetParameter, got {type(model).__name__}")
    upgrade_net(param, src)
    return param, src


def _looks_like_text(model: Any) -> bool:
    return isinstance(model, str) and ("\n" in model or "{" in model) and not os.path.exists(model)


class _Node:
    """One layer of the built net, with its wiring."""

    __slots__ = (
        "index", "layer", "name", "type", "bottom_ids", "top_ids", "need_backward",
        "bottom_need_backward", "detach", "loss_weights", "param_ids", "is_input", "has_loss",
        "affine",
    )

    def __init__(self, index: int, layer: Layer, name: str, type_: str) -> None:
        self.index = index
        self.layer = layer
        self.name = name
        self.type = type_
        self.bottom_ids: list[int] = []
        self.top_ids: list[int] = []
        self.need_backward = False
        self.bottom_need_backward: list[bool] = []
        self.detach: tuple[int, ...] = ()
        self.loss_weights: list[float] = []
        self.param_ids: list[int] = []
        self.is_input = layer.is_input
        self.has_loss = False
        #: a BatchNorm's in-place Scale that follows it, computed by the same batch-norm kernel
        #: when a pass runs both (see _pair_affine)
        self.affine: Layer | None = None


class Net:
    """A Caffe network (pycaffe's ``caffe.Net``).

    ``Net(model, phase, level=0, stages=None, weights=None)``, or the
    deprecated ``Net(model, weights, phase)`` that most legacy scripts use.
    """

    def __init__(self, model: Any, *args: Any, **kwargs: Any) -> None:
        phase, level, stages, weights = _parse_net_args(args, kwargs)
        param, source = load_net_param(model)
        if phase is not None:
            param.state.phase = phase  # type: ignore[assignment]  # protobuf enum ints
        if level is not None:
            param.state.level = level
        if stages is not None:
            del param.state.stage[:]
            param.state.stage.extend(stages)
        self._source = source
        self._build(param)
        if weights is not None:
            self.copy_from(weights)

    # ================================================================ building
    def _build(self, in_param: caffe_pb2.NetParameter) -> None:
        self.phase: int = in_param.state.phase
        self._device = mode.current_device()
        filtered = filter_net(in_param, self._source)
        check_net_param(filtered, self._source)  # duplicate names, extensions: warn (strict: raise)
        param = insert_splits(filtered, self._source)
        if len(param.input):
            raise NetError(f"{self._source}: input fields left after upgrade")  # pragma: no cover
        self._param = param
        self.name = param.name
        self._force_backward = param.force_backward
        self._debug_info = param.debug_info

        self._blob_list: list[Blob] = []
        self._blob_names: list[str] = []
        self._nodes: list[_Node] = []
        self._input_ids: list[int] = []
        name_to_id: dict[str, int] = {}
        available: set[str] = set()
        blob_need_backward: list[bool] = []
        ctx_base = dict(
            phase=self.phase, device=torch.device("cpu"), source=self._source,
            source_dir=Path(self._source).resolve().parent if os.path.exists(self._source) else None,
            net=weakref.proxy(self), force_backward=self._force_backward,
            memory=MemoryBudget(self._source),  # parameters are added as they are made
        )
        # Parameter bookkeeping (Caffe's params_, param_owners_, learnable_params_...).
        self._param_blobs: list[ParamBlob] = []
        self._param_owner: list[int] = []
        self._param_layer: list[tuple[int, int]] = []
        self._param_display: list[str] = []
        self._learnable: list[ParamBlob] = []
        self._learnable_index: list[int] = []
        self._lr_mult: list[float] = []
        self._decay_mult: list[float] = []
        self._has_lr: list[bool] = []
        self._has_decay: list[bool] = []
        self._param_name_index: dict[str, int] = {}

        for li, lp in enumerate(param.layer):
            if not lp.HasField("phase"):
                lp.phase = self.phase
            where = f"{self._source}: {layer_where(lp.type, lp.name)}"
            try:
                cls = get_layer_class(lp.type, lp.name)
            except UnknownLayerTypeError as exc:
                raise UnknownLayerTypeError(f"{self._source}: {exc}") from None
            if len(lp.propagate_down) and len(lp.propagate_down) != len(lp.bottom):
                raise NetError(
                    f"{where}: propagate_down must be given 0 or {len(lp.bottom)} times "
                    f"(once per bottom), got {len(lp.propagate_down)}"
                )
            # ---- bottoms
            bottom_ids: list[int] = []
            bottom_nb: list[bool] = []
            need_backward = False
            for j, bname in enumerate(lp.bottom):
                if bname not in available:
                    raise NetError(
                        f'{where}: unknown bottom blob "{bname}" (bottom index {j}); '
                        + ("it was consumed by an earlier layer" if bname in name_to_id
                           else "no earlier layer produces it")
                    )
                bid = name_to_id[bname]
                available.discard(bname)
                bottom_ids.append(bid)
                pd = lp.propagate_down[j] if len(lp.propagate_down) else True
                bottom_nb.append(blob_need_backward[bid] and pd)
                need_backward |= blob_need_backward[bid]
            # ---- tops
            top_ids: list[int] = []
            n_top = len(lp.top)
            for j, tname in enumerate(lp.top):
                if j < len(lp.bottom) and lp.bottom[j] == tname:
                    top_ids.append(name_to_id[tname])  # in-place
                elif tname in name_to_id:
                    raise NetError(
                        f'{where}: top blob "{tname}" is produced by multiple sources '
                        "(an earlier layer already produces it, and this layer does not "
                        "compute it in place: in-place needs the same name as bottom "
                        f"index {j})"
                    )
                else:
                    top_ids.append(self._new_blob(tname, name_to_id, blob_need_backward))
                available.add(tname)
            self._check_counts(cls, where, len(bottom_ids), n_top)
            if cls.auto_top_blobs:
                needed = max(cls.min_top or 0, cls.exact_num_top or 0)
                while len(top_ids) < needed:
                    top_ids.append(self._new_blob("(automatic)", None, blob_need_backward))
            # ---- the layer itself
            bottom_shapes = [self._blob_list[b].shape for b in bottom_ids]
            ctx = LayerContext(**ctx_base)
            try:
                layer = cls(lp, bottom_shapes, ctx)
                top_shapes = layer.top_shapes(bottom_shapes)
            except CaffeCompatError as exc:
                raise type(exc)(f"{self._source}: {exc}") from exc
            except Exception as exc:
                raise LayerError(
                    f"{where}: setup failed for bottoms "
                    f"{[list(s) for s in bottom_shapes]}: {type(exc).__name__}: {exc}"
                ) from exc
            if len(top_shapes) != len(top_ids):
                raise LayerError(
                    f"{where}: produces {len(top_shapes)} top(s) but {len(top_ids)} are declared"
                )
            for bid, shape in zip(top_ids, top_shapes):
                blob = self._blob_list[bid]
                blob._t = None
                blob._shape = as_shape(shape, f'{where}: top blob "{self._blob_names[bid]}"')  # <= INT_MAX
            node = _Node(li, layer, lp.name, lp.type)
            node.bottom_ids, node.top_ids = bottom_ids, top_ids
            node.bottom_need_backward = bottom_nb
            node.loss_weights = self._loss_weights(cls, lp, len(top_ids), where)
            node.has_loss = any(node.loss_weights)
            # ---- parameters
            n_params = len(layer.params)
            if len(lp.param) > n_params:
                raise NetError(
                    f"{where}: {len(lp.param)} param specs given but the layer has "
                    f"{n_params} parameter blob(s)"
                )
            for pi in range(n_params):
                spec = lp.param[pi] if pi < len(lp.param) else caffe_pb2.ParamSpec()
                learnable = isinstance(layer.params[pi], torch.nn.Parameter)
                need_backward |= learnable and spec.lr_mult > 0
            for pi in range(n_params):
                self._append_param(node, pi, where)
            node.need_backward = need_backward
            if need_backward:
                for bid in top_ids:
                    blob_need_backward[bid] = True
            if layer.is_input:
                self._input_ids.extend(top_ids)
            self._nodes.append(node)

        self._check_memory(ctx_base["memory"])  # before any background thread starts
        self._finish_backward_flags(blob_need_backward)
        self._output_ids = [name_to_id[n] for n in sorted(available)]
        self._blob_need_backward = blob_need_backward
        self._set_param_grad_flags()
        self._init_loss_diffs()
        self.to(self._device)
        self._index_names()
        self._records: list[_Record | None] = [None] * len(self._nodes)
        self._graph_alive = False
        self._asked: Iterable[str] | None = None  # net.forward's blobs=, while it runs
        self._plan: ExecutionPlan = default_plan(self)  # how passes run; caffe.accelerate picks another
        self._hooks: dict[str, list[LayerCallback]] = {
            "before_forward": [], "after_forward": [], "before_backward": [], "after_backward": [],
        }
        for node in self._nodes:
            node.layer.start_background()  # the net passed every check: data layers' prefetch threads

    def _check_memory(self, budget: MemoryBudget) -> None:
        """What Caffe holds in host memory once set up: every parameter (already in
        ``budget``), every prefetch buffer and, on the CPU, every blob (:mod:`.sizes`)."""
        for node in self._nodes:
            prefetch = getattr(node.layer, "prefetch_bytes", 0)
            if prefetch:
                budget.add(f"{layer_where(node.type, node.name)} prefetch buffers", int(prefetch))
        if self._device.type == "cpu":
            for name, blob in zip(self._blob_names, self._blob_list):
                budget.add(f'blob "{name}"', FLOAT_BYTES * blob.count)

    def _new_blob(self, name: str, name_to_id: dict[str, int] | None,
                  need: list[bool]) -> int:
        bid = len(self._blob_list)
        self._blob_list.append(Blob((), "cpu"))
        if name_to_id is not None:
            self._blob_list[-1]._name = name
        self._blob_names.append(name)
        need.append(False)
        if name_to_id is not None:
            name_to_id[name] = bid
        return bid

    @staticmethod
    def _check_counts(cls: type[Layer], where: str, nb: int, nt: int) -> None:
        def check(kind: str, n: int, exact: int | None, lo: int | None, hi: int | None) -> None:
            if exact is not None and n != exact:
                raise LayerError(f"{where}: expected {exact} {kind} blob(s), got {n}")
            if lo is not None and n < lo:
                raise LayerError(f"{where}: expected at least {lo} {kind} blob(s), got {n}")
            if hi is not None and n > hi:
                raise LayerError(f"{where}: expected at most {hi} {kind} blob(s), got {n}")

        check("bottom", nb, cls.exact_num_bottom, cls.min_bottom, cls.max_bottom)
        if not (cls.auto_top_blobs and nt < max(cls.min_top or 0, cls.exact_num_top or 0)):
            check("top", nt, cls.exact_num_top, cls.min_top, cls.max_top)
        if cls.equal_num_bottom_top and nb != nt:
            raise LayerError(
                f"{where}: expected as many top blobs as bottom blobs, got {nb} bottom(s) "
                f"and {nt} top(s)"
            )

    @staticmethod
    def _loss_weights(cls: type[Layer], lp: caffe_pb2.LayerParameter, n_top: int,
                      where: str) -> list[float]:
        weights = list(lp.loss_weight)
        if not weights and cls.is_loss:
            weights = [1.0]
        if weights and len(weights) != n_top:
            raise LayerError(
                f"{where}: loss_weight must be unspecified or given once per top blob: "
                f"{len(weights)} weight(s) for {n_top} top(s)"
                + (" (a loss layer's default weight covers top 0 only; give one "
                   "loss_weight per top)" if not lp.loss_weight else "")
            )
        return weights or [0.0] * n_top

    def _append_param(self, node: _Node, pi: int, where: str) -> None:
        lp = node.layer.layer_param
        layer = node.layer
        spec = lp.param[pi] if pi < len(lp.param) else caffe_pb2.ParamSpec()
        pname = spec.name
        net_pid = len(self._param_blobs)
        self._param_blobs.append(layer.blobs[pi])
        self._param_layer.append((node.index, pi))
        self._param_display.append(pname or str(pi))
        node.param_ids.append(net_pid)
        learnable = isinstance(layer.params[pi], torch.nn.Parameter)
        if not pname or pname not in self._param_name_index:
            self._param_owner.append(-1)
            if pname:
                self._param_name_index[pname] = net_pid
            self._learnable_index.append(len(self._learnable))
            self._learnable.append(layer.blobs[pi])
            self._has_lr.append(spec.HasField("lr_mult") or not learnable)
            self._has_decay.append(spec.HasField("decay_mult"))
            self._lr_mult.append(spec.lr_mult if learnable else 0.0)
            self._decay_mult.append(spec.decay_mult)
            return
        owner_pid = self._param_name_index[pname]
        self._param_owner.append(owner_pid)
        owner_li, owner_pi = self._param_layer[owner_pid]
        owner = self._nodes[owner_li].layer if owner_li < len(self._nodes) else layer
        mine, theirs = tuple(layer.params[pi].shape), tuple(owner.params[owner_pi].shape)
        if spec.share_mode == caffe_pb2.ParamSpec.PERMISSIVE:
            if int(np.prod(mine)) != int(np.prod(theirs)):
                raise NetError(
                    f"{where}: shared parameter '{pname}' must have the same count as its "
                    f"owner's: {list(mine)} vs {list(theirs)}"
                )
        elif mine != theirs:
            raise NetError(
                f"{where}: shared parameter '{pname}' has shape {list(mine)} but its owner "
                f'layer "{self._nodes[owner_li].name}" has {list(theirs)} '
                "(use share_mode: PERMISSIVE to only require equal counts)"
            )
        if mine != theirs:
            with torch.no_grad():
                owner_t = owner.params[owner_pi]
                layer.params[pi] = owner_t.view(mine)  # same storage, this layer's shape
        else:
            layer.share_param(pi, owner, owner_pi)
        self._param_blobs[net_pid] = owner.blobs[owner_pi]
        li = self._learnable_index[owner_pid]
        self._learnable_index.append(li)
        if spec.HasField("lr_mult"):
            if self._has_lr[li] and spec.lr_mult != self._lr_mult[li]:
                raise NetError(f"{where}: shared param '{pname}' has mismatched lr_mult "
                               f"({spec.lr_mult} here, {self._lr_mult[li]} before)")
            self._has_lr[li], self._lr_mult[li] = True, spec.lr_mult
        if spec.HasField("decay_mult"):
            if self._has_decay[li] and spec.decay_mult != self._decay_mult[li]:
                raise NetError(f"{where}: shared param '{pname}' has mismatched decay_mult "
                               f"({spec.decay_mult} here, {self._decay_mult[li]} before)")
            self._has_decay[li], self._decay_mult[li] = True, spec.decay_mult

    def _finish_backward_flags(self, blob_need_backward: list[bool]) -> None:
        """Caffe's second pass: skip backward where nothing reaches a loss."""
        under_loss: set[int] = set()
        skip_backp: set[int] = set()
        for node in reversed(self._nodes):
            contributes = False
            skip_down = True
            for k, bid in enumerate(node.top_ids):
                if node.loss_weights[k] or bid in under_loss:
                    contributes = True
                if bid not in skip_backp:
                    skip_down = False
                if contributes and not skip_down:
                    break
            if node.need_backward and skip_down:
                node.need_backward = False
                node.bottom_need_backward = [False] * len(node.bottom_ids)
            if not contributes:
                node.need_backward = False
            for k, bid in enumerate(node.bottom_ids):
                if contributes:
                    under_loss.add(bid)
                else:
                    node.bottom_need_backward[k] = False
                if not node.bottom_need_backward[k]:
                    skip_backp.add(bid)
        if self._force_backward:
            for node in self._nodes:
                node.need_backward = True
                for k, bid in enumerate(node.bottom_ids):
                    allowed = k not in node.layer.no_force_backward
                    node.bottom_need_backward[k] = node.bottom_need_backward[k] or allowed
                    blob_need_backward[bid] = blob_need_backward[bid] or node.bottom_need_backward[k]
        for node in self._nodes:
            node.detach = tuple(k for k, nb in enumerate(node.bottom_need_backward) if not nb)
        self._pair_affine()

    def _pair_affine(self) -> None:
        """Mark each BatchNorm followed by a Scale in place on its top (ResNet's pairs): a pass
        that runs both computes them as one affine batch norm, forward and backward (torch's
        kernel takes the Scale's weight and bias; ResNet-50 b8 fwd+bwd ~15 % faster than the
        two layers' elementwise passes). The blob ends up with the same values, as it is in place."""
        from .layers.common.batch_norm import BatchNorm
        from .layers.common.scale import Scale

        nodes = self._nodes
        for node, nxt in zip(nodes, nodes[1:]):
            bn, sc = node.layer, nxt.layer
            if (type(bn) is BatchNorm and type(sc) is Scale and len(node.top_ids) == 1
                    and nxt.bottom_ids == node.top_ids and nxt.top_ids == node.top_ids
                    and not node.has_loss and not nxt.has_loss and not nxt.detach
                    and node.need_backward == nxt.need_backward and sc.axis == 1
                    and len(sc.params) == (2 if sc.bias_term else 1)
                    and tuple(sc.params[0].shape) == (bn.channels,)):
                node.affine = sc

    def _set_param_grad_flags(self) -> None:
        for li, blob in enumerate(self._learnable):
            t = blob.tensor
            if isinstance(t, torch.nn.Parameter):
                t.requires_grad_(self._force_backward or self._lr_mult[li] > 0)

    def _init_loss_diffs(self) -> None:
        # Caffe's SetLossWeights: a loss top's diff holds its loss weight.
        for node in self._nodes:
            for k, bid in enumerate(node.top_ids):
                w = node.loss_weights[k]
                if w:
                    blob = self._blob_list[bid]
                    blob._diff = torch.full(blob.shape, w, dtype=torch.float32)

    def _index_names(self) -> None:
        self._layer_names = [n.name for n in self._nodes]
        self._layer_index: dict[str, int] = {}
        for i, n in enumerate(self._nodes):
            self._layer_index.setdefault(n.name, i)
        self._blob_index = {name: i for i, name in enumerate(self._blob_names)}
        self._blobs_dict = OrderedDict(zip(self._blob_names, self._blob_list))
        self._params_dict: OrderedDict[str, list[ParamBlob]] | None = None
        self._loss_tops = [
            (n.index, k, w) for n in self._nodes for k, w in enumerate(n.loss_weights) if w
        ]
        self._any_backward = any(n.need_backward for n in self._nodes)
        self._blob_writers: list[list[int]] = [[] for _ in self._blob_list]
        for n in self._nodes:
            for bid in n.top_ids:
                self._blob_writers[bid].append(n.index)

    # ============================================================ pycaffe API
    @property
    def layers(self) -> list[Layer]:
        # Python layers show the user's object, as in pycaffe.
        return [getattr(n.layer, "python_object", n.layer) for n in self._nodes]

    @property
    def blobs(self) -> "OrderedDict[str, Blob]":
        return self._blobs_dict

    @property
    def _blobs(self) -> list[Blob]:
        return self._blob_list

    @property
    def layer_dict(self) -> "OrderedDict[str, Layer]":
        return OrderedDict((n.name, getattr(n.layer, "python_object", n.layer)) for n in self._nodes)

    @property
    def params(self) -> "OrderedDict[str, list[ParamBlob]]":
        if self._params_dict is None:
            self._params_dict = OrderedDict(
                (n.name, n.layer.blobs) for n in self._nodes if n.layer.blobs
            )
        return self._params_dict

    @property
    def blob_loss_weights(self) -> "OrderedDict[str, float]":
        weights = [0.0] * len(self._blob_list)
        for node in self._nodes:
            for k, bid in enumerate(node.top_ids):
                weights[bid] = node.loss_weights[k]
        return OrderedDict(zip(self._blob_names, weights))

    @property
    def top_names(self) -> "OrderedDict[str, list[str]]":
        return OrderedDict((n.name, [self._blob_names[b] for b in n.top_ids]) for n in self._nodes)

    @property
    def bottom_names(self) -> "OrderedDict[str, list[str]]":
        return OrderedDict((n.name, [self._blob_names[b] for b in n.bottom_ids]) for n in self._nodes)

    @property
    def inputs(self) -> list[str]:
        return [self._blob_names[i] for i in self._input_ids]

    @property
    def outputs(self) -> list[str]:
        return [self._blob_names[i] for i in self._output_ids]

    @property
    def _inputs(self) -> list[int]:
        return list(self._input_ids)

    @property
    def _outputs(self) -> list[int]:
        return list(self._output_ids)

    @property
    def _blob_loss_weights(self) -> list[float]:
        return list(self.blob_loss_weights.values())

    @property
    def _param_names(self) -> list[str]:
        return list(self._param_display)

    @property
    def learnable_params(self) -> list[ParamBlob]:
        """Caffe's ``learnable_params()``: one blob per owned parameter."""
        return list(self._learnable)

    @property
    def params_lr(self) -> list[float]:
        return list(self._lr_mult)

    @property
    def params_weight_decay(self) -> list[float]:
        return list(self._decay_mult)

    @property
    def device(self) -> torch.device:
        return self._device

    def layer_index(self, name: str) -> int:
        try:
            return self._layer_index[name]
        except KeyError:
            raise BlobNotFoundError(
                f'{self._source}: no layer named "{name}"; layers: {", ".join(self._layer_names)}'
            ) from None

    def blob(self, name: str) -> Blob:
        i = self._blob_index.get(name)
        if i is None:
            raise BlobNotFoundError(f'{self._source}: no blob named "{name}"')
        return self._blob_list[i]

    # ------------------------------------------------------------------ hooks
    def before_forward(self, callback: LayerCallback) -> None:
        self._hooks["before_forward"].append(callback)

    def after_forward(self, callback: LayerCallback) -> None:
        self._hooks["after_forward"].append(callback)

    def before_backward(self, callback: LayerCallback) -> None:
        self._hooks["before_backward"].append(callback)

    def after_backward(self, callback: LayerCallback) -> None:
        self._hooks["after_backward"].append(callback)

    @property
    def _accel(self) -> Any:
        """The opt-in settings of the net's plan (None for the eager interpreter)."""
        return self._plan.config

    # ================================================================ forward
    def forward(self, blobs: Iterable[str] | None = None, start: str | None = None,
                end: str | None = None, **kwargs: np.ndarray) -> dict[str, np.ndarray]:
        """Run the net (or the layers from ``start`` to ``end``); return outputs.

        Keyword arguments copy arrays into input blobs first. The returned
        dict maps the net outputs (or ``end``'s tops) and any names in
        ``blobs`` to their data arrays.
        """
        if blobs is not None:
            blobs = tuple(blobs)  # read twice (an iterator would be spent by the first)
        start_i = self.layer_index(start) if start is not None else 0
        end_i = self.layer_index(end) if end is not None else len(self._nodes) - 1
        if end is not None:
            outputs = set(self.top_names[end]) | set(blobs or ())
        else:
            outputs = set(self.outputs) | set(blobs or ())
        if kwargs:
            self._set_inputs(kwargs)
        self._asked = blobs  # what the caller reads besides the outputs (a plan may need to know)
        try:
            self._forward_range(start_i, end_i)
        finally:
            self._asked = None
        return {name: self.blob(name).data for name in outputs}

    def _set_inputs(self, arrays: Mapping[str, Any]) -> None:
        inputs = set(self.inputs)
        for name, value in arrays.items():
            if name not in inputs:
                raise BlobNotFoundError(
                    f'{self._source}: "{name}" is not an input blob of this net; '
                    f"inputs: {', '.join(self.inputs) or '(none)'}"
                )
            blob = self.blob(name)
            arr = np.asarray(value, dtype=np.float32)
            if arr.shape != blob.shape:
                if arr.size == blob.count and arr.ndim and blob.shape and arr.shape[0] == blob.shape[0]:
                    arr = arr.reshape(blob.shape)
                else:
                    raise ShapeError(
                        f'input blob "{name}": expected an array of shape {list(blob.shape)}, '
                        f"got {list(arr.shape)} (reshape the blob with "
                        f"net.blobs['{name}'].reshape(...) and net.reshape() first)"
                    )
            blob.data[...] = arr

    def _forward_range(self, start: int, end: int, want_loss: bool = False,
                       keep: bool = True) -> torch.Tensor | None:
        if not 0 <= start < len(self._nodes) or not 0 <= end < len(self._nodes):
            raise NetError(f"forward: layer range {start}..{end} outside 0..{len(self._nodes) - 1}")
        flush_host_writes()
        self._sync_device()
        with threads_span():
            return self._plan.forward_range(self, start, end, want_loss, keep)

    def _run_layers(self, start: int, end: int, want_loss: bool, grad_on: bool,
                    keep: bool = True) -> torch.Tensor | None:
        """The eager interpreter over layers ``start``..``end`` (data layers of a compiled plan)."""
        return EagerPlan.run_layers(self, start, end, want_loss, grad_on, keep)

    # =============================================================== backward
    def backward(self, diffs: Iterable[str] | None = None, start: str | None = None,
                 end: str | None = None, **kwargs: np.ndarray) -> dict[str, np.ndarray]:
        """Backpropagate (from ``start`` down to ``end``); return input diffs.

        Keyword arguments set the diffs of output blobs first. The returned dict
        maps the net inputs (or ``end``'s bottoms) and the names in ``diffs``
        to their diff arrays.
        """
        start_i = self.layer_index(start) if start is not None else len(self._nodes) - 1
        end_i = self.layer_index(end) if end is not None else 0
        if end is not None:
            outputs = set(self.bottom_names[end]) | set(diffs or ())
        else:
            outputs = set(self.inputs) | set(diffs or ())
        if kwargs:
            outs = set(self.outputs)
            for name, value in kwargs.items():
                if name not in outs:
                    raise BlobNotFoundError(
                        f'backward: "{name}" is not an output blob; outputs: {", ".join(self.outputs)}'
                    )
                blob = self.blob(name)
                arr = np.asarray(value, dtype=np.float32)
                if arr.shape != blob.shape:
                    raise ShapeError(
                        f'backward: diff for "{name}" has shape {list(arr.shape)}, '
                        f"blob has {list(blob.shape)}"
                    )
                blob.diff[...] = arr
        self._backward_range(start_i, end_i, retain_graph=True)
        return {name: self.blob(name).diff for name in outputs}

    def _backward_range(self, start: int, end: int, retain_graph: bool = True) -> None:
        if not 0 <= end <= start < len(self._nodes):
            raise NetError(f"backward: layer range {start}..{end} invalid for {len(self._nodes)} layers")
        if not self._any_backward:
            return  # no layer reaches a loss and nothing forces backward: Caffe does nothing
        with threads_span():
            self._plan.backward_range(self, start, end, retain_graph)

    def _forward_backward(self) -> torch.Tensor | None:
        """One training pass for the solver: forward, then backward from the
        loss tops into the parameter gradients only (no blob diffs kept)."""
        with threads_span():
            return self._plan.forward_backward(self)

    # ============================================================ whole-net ops
    def reshape(self) -> None:
        """Propagate input shapes through every layer (Caffe's ``Net::Reshape``)."""
        blobs = self._blob_list
        for node in self._nodes:
            if node.is_input:
                continue
            shapes = [blobs[b].shape for b in node.bottom_ids]
            try:
                tops = node.layer.top_shapes(shapes)
            except CaffeCompatError:
                raise
            except Exception as exc:
                raise ShapeError(
                    f"{layer_where(node.type, node.name)}: cannot reshape for bottoms "
                    f"{[list(s) for s in shapes]}: {exc}"
                ) from exc
            for bid, shape in zip(node.top_ids, tops):
                blob = blobs[bid]
                if blob.shape != tuple(shape):
                    # Caffe's top->Reshape: the buffer kept if it fits; INT_MAX checked first
                    blob._resize(as_shape(shape, f'{layer_where(node.type, node.name)}: top blob '
                                                 f'"{self._blob_names[bid]}"'))

    def clear_param_diffs(self) -> None:
        """Zero every parameter gradient (Caffe's ``ClearParamDiffs``)."""
        grads = [b.diff_tensor for b in self._learnable]
        if grads:
            torch._foreach_zero_(grads)

    def share_with(self, other: "Net") -> None:
        """Use ``other``'s parameter tensors for layers of the same name."""
        for onode in other._nodes:
            i = self._layer_index.get(onode.name)
            if i is None:
                continue
            mine = self._nodes[i].layer
            if len(mine.params) != len(onode.layer.params):
                raise NetError(
                    f'share_with: layer "{onode.name}" has {len(mine.params)} blobs here, '
                    f"{len(onode.layer.params)} in the other net"
                )
            for pi in range(len(mine.params)):
                a, b = mine.params[pi].shape, onode.layer.params[pi].shape
                if a != b:
                    raise ShapeError(
                        f'share_with: layer "{onode.name}" blob {pi}: shape {list(a)} here, '
                        f"{list(b)} in the other net"
                    )
                mine.share_param(pi, onode.layer, pi)
        self._refresh_learnable()

    def _refresh_learnable(self) -> None:
        self._params_dict = None
        for net_pid, (li, pi) in enumerate(self._param_layer):
            blob = self._nodes[li].layer.blobs[pi]
            self._param_blobs[net_pid] = blob
            if self._param_owner[net_pid] == -1:
                self._learnable[self._learnable_index[net_pid]] = blob

    # ----------------------------------------------------------------- device
    def _sync_device(self) -> None:
        dev = mode.current_device()
        if dev != self._device:
            self.to(dev)

    def to(self, device: torch.device | str) -> "Net":
        """Move parameters and blobs to ``device`` (tensors keep their identity)."""
        device = torch.device(device)
        self._device = device
        seen: set[int] = set()
        for node in self._nodes:
            layer = node.layer
            for t in list(layer.parameters()) + list(layer.buffers()) + list(layer.params):
                if id(t) in seen or t.device == device or t._is_view():
                    continue
                seen.add(id(t))
                with torch.no_grad():
                    t.data = t.data.to(device)
                    if t.grad is not None:
                        t.grad = t.grad.to(device)
            layer.ctx.device = device
        for blob in self._blob_list:
            blob.to(device)
        for blob in self._param_blobs:
            blob._device = device
        return self

    # ---------------------------------------------------------------- weights
    def copy_from(self, path: str | os.PathLike[str]) -> None:
        """Load weights by layer name (binary .caffemodel or HDF5, by content)."""
        from .weights import copy_weights_from

        copy_weights_from(self, path)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the weights as a binary .caffemodel that real Caffe reads."""
        from .weights import save_caffemodel

        save_caffemodel(self, path)

    def save_hdf5(self, path: str | os.PathLike[str]) -> None:
        from .weights import save_hdf5

        save_hdf5(self, path)

    def load_hdf5(self, path: str | os.PathLike[str]) -> None:
        from .weights import load_hdf5

        load_hdf5(self, path)

    def to_module(self, outputs: Iterable[str] | None = None, drop_losses: bool = False):
        """This net as a plain ``torch.fx.GraphModule`` (see :func:`caffe_compat.to_torch`)."""
        from .export import to_torch

        return to_torch(self, outputs=outputs, drop_losses=drop_losses)

    def to_proto(self, write_diff: bool = False) -> caffe_pb2.NetParameter:
        """The net as a NetParameter with its blobs (Caffe's ``Net::ToProto``)."""
        from .weights import net_to_proto

        return net_to_proto(self, write_diff)

    def __repr__(self) -> str:
        phase = "TRAIN" if self.phase == TRAIN else "TEST"
        return f"<caffe_compat.Net {self.name!r}: {len(self._nodes)} layers, phase {phase}>"


def _parse_net_args(args: tuple[Any, ...], kwargs: dict[str, Any]
                    ) -> tuple[int | None, int | None, list[str] | None, Any]:
    """Accept both pycaffe signatures.

    ``(phase, level=0, stages=None, weights=None)`` and the deprecated
    ``(weights, phase)``.
    """
    phase = kwargs.pop("phase", None)
    level = kwargs.pop("level", None)
    stages = kwargs.pop("stages", None)
    weights = kwargs.pop("weights", None)
    if kwargs:
        raise TypeError(f"Net: unexpected keyword argument(s) {', '.join(kwargs)}")
    rest = list(args)
    if rest and isinstance(rest[0], (str, os.PathLike)):
        if weights is not None:
            raise TypeError("Net: weights given twice")
        weights = rest.pop(0)
    if rest:
        if phase is not None:
            raise TypeError("Net: phase given twice")
        phase = rest.pop(0)
    if rest:
        level = rest.pop(0)
    if rest:
        stages = rest.pop(0)
    if rest:
        raise TypeError("Net: too many positional arguments")
    if phase is not None:
        phase = int(phase)
        if phase not in (TRAIN, TEST):
            raise ValueError(f"Net: phase must be caffe.TRAIN (0) or caffe.TEST (1), got {phase}")
    if stages is not None:
        stages = [str(s) for s in stages]
    return phase, (int(level) if level is not None else None), stages, weights
