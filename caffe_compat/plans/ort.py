"""The net's forward as one ONNX Runtime session (``caffe.accelerate(net, onnxruntime=True)``).

The net is exported to ONNX (:func:`caffe_compat.to_torch`, then torch's exporter)
for its current input shapes and weights, and a full TEST forward without grad runs
that model in ONNX Runtime's CPU kernels: Conv+BatchNorm+Scale folded, Conv+Add+ReLU
fused, one blocked layout kept from layer to layer, buffers planned once. Only the
output blobs (and those ``net.forward(blobs=[...])`` asks for, the loss tops and the
data layers' tops) get values; every other blob is released, and reading it raises
:class:`~caffe_compat.errors.BlobReleasedError` saying so.

Exporting takes seconds (GoogLeNet ~5 s, ResNet-50 ~9 s on a 2-core VM), so the
model is kept on disk, named by a digest of the net definition, its input shapes,
outputs, weights and the versions that made it: later runs of the same model and
weights load it (a session takes ~0.1-0.4 s). Where: ``cache_dir``, else
``$CAFFE_COMPAT_CACHE``, else ``$XDG_CACHE_HOME/caffe_compat`` (``~/.cache/caffe_compat``);
``CAFFE_COMPAT_CACHE=off`` keeps nothing on disk.

A new session is made when the input shapes or the asked outputs change, and when a
parameter is written (through torch, or through a numpy array: while a script holds a
parameter's array, that parameter is compared with a snapshot before each forward).
Anything else runs the inference plan's interpreter: partial forwards, a forward that a
backward may follow, CUDA, per-layer hooks.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..blob import param_serial, param_written, settle_handouts, _handed_out
from ..errors import UnsupportedError
from .. import threads
from .inference import InferencePlan

if TYPE_CHECKING:
    from ..net import Net
    from .accelerated import Acceleration

__all__ = ["OnnxRuntimePlan", "cache_dir", "available"]

_log = logging.getLogger("caffe_compat")
OPSET = 18
_INSTALL = "pip install 'caffe-compat[onnx]' (onnx, onnxscript and onnxruntime)"


def available() -> str | None:
    """None when ONNX Runtime and torch's ONNX exporter are installed, else what is missing
    (looked up, not imported: onnxscript alone adds ~75 MB, and only an export needs it)."""
    from importlib.util import find_spec

    missing = [mod for mod in ("onnxruntime", "onnx", "onnxscript") if find_spec(mod) is None]
    return ", ".join(missing) or None


def cache_dir(explicit: str | os.PathLike[str] | None = None) -> str | None:
    """Where exported models are kept (None: nowhere)."""
    if explicit is not None:
        return os.fspath(explicit)
    env = os.environ.get("CAFFE_COMPAT_CACHE")
    if env is not None:
        return None if env.lower() in ("", "0", "off", "none", "false") else env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "caffe_compat")


class _Session:
    """One ONNX Runtime session: its inputs (name, blob id), outputs (names, blob ids) and
    the blobs a forward through it leaves without values."""

    __slots__ = ("sess", "inputs", "outputs", "out_ids", "released")

    def __init__(self, sess: Any, inputs: list[tuple[str, int]], outputs: list[str], out_ids: list[int],
                 released: list[int]) -> None:
        self.sess, self.inputs, self.outputs, self.out_ids = sess, inputs, outputs, out_ids
        self.released = released


class OnnxRuntimePlan(InferencePlan):
    """:class:`InferencePlan` whose full TEST forward is one ONNX Runtime session."""

    name = "onnxruntime"

    def __init__(self, config: "Acceleration") -> None:
        super().__init__()
        self._sessions: dict[tuple[Any, ...], _Session] = {}
        self._weights: tuple[Any, ...] | None = None  # the parameter state the sessions were made for
        # params a live numpy array may write: (a number for this value, a copy of it)
        self._snapshots: dict[int, tuple[int, torch.Tensor]] = {}
        self._snap_count = 0
        self._layout: tuple[list[Any], list[Any], list[torch.Tensor]] | None = None  # see _layout
        self.config: "Acceleration" = config
        self._why = ("not computed: this net's forward runs in ONNX Runtime "
                     "(caffe.accelerate(net, onnxruntime=True)), which gives the output blobs only; "
                     "ask for this blob with net.forward(blobs=[...]), or call caffe.accelerate(net) "
                     "to run layer by layer")

    def check(self, net: "Net") -> None:
        """Raise when ``net`` holds a layer the session cannot run (a Python layer outside
        the tail of losses, whose numpy code torch's exporter cannot trace)."""
        self._layout = _layout(net)
        tail = {n.index for n in self._layout[1]}
        python = [f'"{n.name}"' for n in net._nodes if n.type == "Python" and n.index not in tail]
        if python:
            raise UnsupportedError(
                f"accelerate(onnxruntime=True): {net._source}: Python layer{'s' if len(python) > 1 else ''} "
                f"{', '.join(python)} cannot be exported to ONNX (their forward is numpy code); "
                "such a net runs layer by layer"
            )

    # ------------------------------------------------------------------ passes
    def forward_range(self, net: "Net", start: int, end: int, want_loss: bool,
                      keep: bool) -> torch.Tensor | None:
        if (start != 0 or end != len(net._nodes) - 1 or net.device.type != "cpu"
                or (net._any_backward and torch.is_grad_enabled())
                or net._hooks["before_forward"] or net._hooks["after_forward"]):
            return super().forward_range(net, start, end, want_loss, keep)
        if self._layout is None:
            self._layout = _layout(net)
        data_nodes, tail, params = self._layout
        with torch.no_grad():
            for node in data_nodes:  # inputs and data layers run outside the session
                net._run_layers(node.index, node.index, False, False, False)
        session = self._session(net, data_nodes, tail, params)
        blobs = net._blob_list
        feed = {}
        for name, bid in session.inputs:
            t = blobs[bid].tensor.detach()
            feed[name] = np.ascontiguousarray(t.numpy(), dtype=np.float32)
        outs = session.sess.run(session.outputs, feed)
        for bid, arr in zip(session.out_ids, outs):
            blobs[bid]._t = torch.from_numpy(arr)
        why = self._why
        for bid in session.released:
            blobs[bid].release(why)
        if net._graph_alive or any(r is not None for r in net._records):
            net._records[:] = [None] * len(net._records)  # an earlier interpreted pass's tensors
        net._graph_alive = False
        loss: torch.Tensor | None = None
        with torch.no_grad():
            for node in tail:  # the losses and accuracies, on the session's outputs
                term = net._run_layers(node.index, node.index, want_loss, False, False)
                if term is not None:
                    loss = term if loss is None else loss + term
        if _handed_out:
            settle_handouts(read_ptrs=set())
        return loss

    # ---------------------------------------------------------------- sessions
    def _session(self, net: "Net", data_nodes: list[Any], tail: list[Any],
                 params: list[torch.Tensor]) -> _Session:
        state = self._param_state(params)
        if state != self._weights:
            self._sessions.clear()
            self._weights = state
        blobs = net._blob_list
        shapes = tuple((b, tuple(blobs[b].shape)) for n in data_nodes for b in n.top_ids)
        asked = tuple(sorted(net._asked)) if net._asked else ()
        session = self._sessions.get((shapes, asked))
        if session is None:
            names = net._blob_names
            later = {b for n in tail for b in n.top_ids}  # what the tail computes
            skip = {names[b] for b in later} | {names[b] for b, _ in shapes}
            wanted = [names[b] for b in net._output_ids if b not in later]
            wanted += [names[b] for n in tail for b in n.bottom_ids]
            outputs = list(dict.fromkeys(n for n in [*wanted, *asked] if n not in skip))
            session = self._sessions[(shapes, asked)] = self._make(net, outputs, shapes, tail)
        return session

    def _param_state(self, params: list[torch.Tensor]) -> tuple[Any, ...]:
        """What identifies the parameters' current values without reading them (and, for a
        parameter a live numpy array may have written, a comparison with its snapshot)."""
        serial = param_serial()
        state: list[Any] = [(id(p), p.data_ptr(), p._version) for p in params]
        if serial < 0 or self._snapshots:
            for p in params:
                w = param_written(p)
                if w is None:
                    old = self._snapshots.get(id(p))
                    if old is None or old[1].shape != p.shape or not torch.equal(old[1], p.detach()):
                        self._snap_count += 1
                        old = self._snapshots[id(p)] = (self._snap_count, p.detach().clone())
                    state.append(("snapshot", old[0]))
                else:
                    self._snapshots.pop(id(p), None)
                    state.append(w)
        else:
            state.append(serial)
        return tuple(state)

    def _digest(self, net: "Net", outputs: list[str], shapes: tuple[Any, ...]) -> str:
        from .. import __version__

        h = hashlib.sha256()
        h.update(f"caffe_compat {__version__} torch {torch.__version__} opset {OPSET}\n".encode())
        h.update(net._param.SerializeToString(deterministic=True))
        h.update(repr((net.phase, [(net._blob_names[b], s) for b, s in shapes], outputs)).encode())
        for node in net._nodes:
            for p in node.layer.params:
                t = p.detach().contiguous().cpu()
                h.update(repr((node.name, tuple(t.shape), str(t.dtype))).encode())
                h.update(t.numpy().view(np.uint8).reshape(-1).data)
        return h.hexdigest()[:32]

    def _make(self, net: "Net", outputs: list[str], shapes: tuple[Any, ...], tail: list[Any]) -> _Session:
        import onnxruntime as ort

        t0 = time.perf_counter()
        folder = cache_dir(self.config.cache_dir)
        path = None
        model: bytes | str | None = None
        if folder is not None:
            path = os.path.join(folder, "onnx", self._digest(net, outputs, shapes) + ".onnx")
            if os.path.exists(path):
                model = path
        how = "loaded"
        if model is None:
            model = self._export(net, outputs, [n.index for n in tail])
            how = "exported"
            if path is not None:
                from ..atomic import write_bytes

                try:
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    write_bytes(path, model, "exported ONNX model")
                    how = f"exported to {path}"
                except OSError as exc:  # a read-only cache costs the next run an export
                    _log.warning("accelerate(onnxruntime): cannot keep the exported model: %s", exc)
        so = ort.SessionOptions()
        # The count when the machine is quiet: a session keeps its pool, and one made while
        # the load governor (threads.py) had torch on one thread would stay there.
        so.intra_op_num_threads = threads.ceiling()
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # ORT's memory pattern keeps a second arena block planned from the first run: GoogLeNet
        # b8 227 -> 139 MiB without it, at the same speed (2-core VM, batch 1 and 8)
        so.enable_mem_pattern = False
        sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        in_names = [i.name for i in sess.get_inputs()]
        ids = {net._blob_names[b]: b for b, _ in shapes}
        out_ids = [max(i for i, n in enumerate(net._blob_names) if n == name) for name in outputs]
        _log.info("accelerate(onnxruntime): %s: ONNX model %s in %.1f s (outputs %s)",
                  net.name or net._source, how, time.perf_counter() - t0, ", ".join(outputs))
        kept = set(ids.values()) | set(out_ids) | {b for n in tail for b in n.top_ids}
        released = [b for b in range(len(net._blob_list)) if b not in kept]
        return _Session(sess, [(n, ids[n]) for n in in_names], outputs, out_ids, released)

    @staticmethod
    def _export(net: "Net", outputs: list[str], leave_out: list[int]) -> bytes:
        from ..export import quiet_exporter, to_torch

        module = to_torch(net, outputs=outputs, leave_out=leave_out).eval()
        example = tuple(net.blob(name).tensor.detach() for name in module.input_names)
        try:
            with quiet_exporter():
                program = torch.onnx.export(module, example, None, dynamo=True, opset_version=OPSET,
                                            input_names=list(module.input_names),
                                            output_names=list(module.output_names), verbose=False)
            assert program is not None
            data: bytes = program.model_proto.SerializeToString()
        except Exception as exc:
            raise UnsupportedError(
                f"accelerate(onnxruntime=True): {net._source}: the net could not be exported to ONNX "
                f"({_cause(exc)}); Python layers and layers torch's exporter cannot trace run only "
                "layer by layer: call caffe.accelerate(net) to go back to that"
            ) from exc
        return data

    def __repr__(self) -> str:
        return "<OnnxRuntimePlan>"


def _layout(net: "Net") -> tuple[list[Any], list[Any], list[torch.Tensor]]:
    """The data layers (run before the session), the tail of losses and accuracies (run
    after it: their label checks read values, which an exported graph cannot) and every
    parameter of ``net``."""
    from ..export import _is_data_layer

    nodes = net._nodes
    data = [n for n in nodes if _is_data_layer(n.layer)]
    tail = [n for n in nodes if n.has_loss or n.layer.is_loss or n.layer.type == "Accuracy"]
    tail_tops = {b for n in tail for b in n.top_ids}
    tail_ids = {n.index for n in tail}
    if any(b in tail_tops for n in nodes if n.index not in tail_ids for b in n.bottom_ids):
        tail = []  # a layer reads a loss: the session computes it all
    return data, tail, [p for n in nodes for p in n.layer.params]


def _cause(exc: BaseException) -> str:
    """The innermost error behind the exporter's, on one line."""
    seen = exc
    while seen.__cause__ is not None and seen.__cause__ is not seen:
        seen = seen.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(seen)).strip()
    return f"{type(seen).__name__}: {text.splitlines()[0][:300] if text else ''}"
