"""Caffe's solvers (solver.cpp, sgd_solver.cpp, solvers/*.cpp) and pycaffe's solver API.

``Solver`` builds the train net and the test nets from a SolverParameter
(test nets share the train net's parameter tensors, as after Caffe's
``ShareTrainedLayersWith``), then ``step(n)`` runs Caffe's loop:

    clear diffs → test (at iter % test_interval == 0) → on_start callbacks →
    forward/backward × iter_size → smoothed loss, display → on_gradients_ready
    callbacks → apply_update → iter += 1 → snapshot / stop on request

``apply_update`` is ``SGDSolver::ApplyUpdate``: the rate from the lr policy,
then :mod:`.updates` (clip, normalize, regularize, the type's update rule), then
``data −= diff`` for every learnable parameter whose lr_mult is not 0. The
subclasses differ only in their update rule. ``Solver(path)`` (and
:func:`get_solver`) pick the class from the file's ``type``, as
``SolverRegistry::CreateSolver`` does; ``SGDSolver(path)`` etc. use their own
rule whatever the file says, as in pycaffe.

Differences from Caffe: parameters with lr_mult 0 are never written (Caffe
subtracts their update, which is 0 unless a restored history is non-zero);
their history is still computed and saved as Caffe does. ``solver.param``
returns a copy of the whole SolverParameter (pycaffe exposes four fields).
Test nets share the train net's parameters from the start (Caffe shares them
at the first test; before it a test net has its own filler values).
"""

from __future__ import annotations

import collections
import enum
import logging
import time
from typing import Any, Callable, ClassVar, Type

import numpy as np
import torch

from .. import mode
from ..errors import SolverError
from ..net import Net, load_net_param
from ..proto import caffe_pb2
from . import snapshot as snap
from .debug_info import debug_forward, debug_forward_backward
from .lr_policy import learning_rate
from .params import SolverSpec, check_solver_param, load_solver_param, resolve_net_path
from .updates import RULES, UpdateRule, clip_gradients, f32, normalize, regularize

__all__ = [
    "Solver", "SGDSolver", "NesterovSolver", "AdaGradSolver", "RMSPropSolver",
    "AdaDeltaSolver", "AdamSolver", "get_solver", "SolverAction", "solver_class",
]

_log = logging.getLogger("caffe_compat")


class SolverAction(enum.Enum):
    """What an action function (e.g. a signal handler) asks the solver to do."""

    NONE = "none"
    STOP = "stop"
    SNAPSHOT = "snapshot"


def _fmt(x: float) -> str:
    """A number as C++'s ostream prints a float (6 significant digits)."""
    return f"{float(np.float32(x)):g}"


class Solver:
    """Base of the six solvers; ``Solver(path)`` makes the one the file names."""

    type: ClassVar[str] = ""
    _rule_class: ClassVar[Type[UpdateRule]]

    def __new__(cls, solver: Any = None, *args: Any, **kwargs: Any) -> "Solver":
        if cls is Solver:
            spec = load_solver_param(solver, kwargs.get("source"))
            obj = object.__new__(solver_class(spec.param.type, spec.source))
            obj._preloaded = spec  # type: ignore[attr-defined]
            return obj
        return object.__new__(cls)

    def __init__(self, solver: Any, source: str | None = None) -> None:
        spec: SolverSpec = self.__dict__.pop("_preloaded", None) or load_solver_param(solver, source)
        if type(self).type and spec.param.type != type(self).type and spec.param.HasField("type"):
            _log.warning('%s: type "%s" in the file, but %s was asked for; using %s (as pycaffe does)',
                         spec.source, spec.param.type, type(self).__name__, type(self).type)
        spec.param.type = type(self).type or spec.param.type
        check_solver_param(spec)
        self._check_type_params(spec)
        self._spec = spec
        self._param = spec.param
        self._root = mode.solver_rank() == 0
        _log.info("Initializing solver from parameters: \n%s", self._param)
        if self._param.random_seed >= 0:
            mode.set_random_seed(self._param.random_seed + mode.solver_rank())
        self._net = self._init_train_net()
        self._test_nets = self._init_test_nets()
        for w in self._param.weights:
            self._load_weights(w)
        _log.info("Solver scaffolding done.")
        self._iter = 0
        self._current_step = 0
        self._rule = self._rule_class(self._param)
        self._history = self._new_history()
        self._callbacks: list[tuple[Callable[[], Any] | None, Callable[[], Any] | None]] = []
        # Called after each of the iter_size forward/backward passes: Caffe's
        # NCCL reduces there with layer_wise_reduce (see caffe_compat.parallel).
        self._pass_hooks: list[Callable[[], Any]] = []
        self._action_fn: Callable[[], Any] | None = None
        self._early_exit = False
        self._losses: collections.deque[torch.Tensor] = collections.deque(maxlen=self._param.average_loss)
        self._mean_scores: list[list[float]] = [[] for _ in self._test_nets]
        self._iterations_last = 0
        self._timer = time.perf_counter()
        self.progress = False

    # ------------------------------------------------------------ checks
    @classmethod
    def _check_type_params(cls, spec: SolverSpec) -> None:
        """Caffe's per-type constructor checks (none for most types)."""

    # ------------------------------------------------------------ nets
    def _init_train_net(self) -> Net:
        p, spec = self._param, self._spec
        path = None
        if p.HasField("train_net_param"):
            _log.info("Creating training net specified in train_net_param.")
            net_param = p.train_net_param
        elif p.HasField("net_param"):
            _log.info("Creating training net specified in net_param.")
            net_param = p.net_param
        else:
            field = "train_net" if p.HasField("train_net") else "net"
            path = resolve_net_path(getattr(p, field), field, spec)
            _log.info("Creating training net from %s file: %s", field, path)
            net_param, _ = load_net_param(path)
        # NetState: solver defaults < the net's own state < train_state.
        state = caffe_pb2.NetState(phase=caffe_pb2.TRAIN)
        state.MergeFrom(net_param.state)
        state.MergeFrom(p.train_state)
        return self._make_net(net_param, path, state)

    @staticmethod
    def _make_net(net_param: caffe_pb2.NetParameter, path: str | None,
                  state: caffe_pb2.NetState) -> Net:
        if path is not None:  # build from the file, so messages and layers know it
            return Net(path, state.phase, level=state.level, stages=list(state.stage))
        param = caffe_pb2.NetParameter()
        param.CopyFrom(net_param)
        param.state.CopyFrom(state)
        return Net(param)

    def _init_test_nets(self) -> list[Net]:
        p, spec = self._param, self._spec
        sources: list[tuple[str, Any, str | None]] = []
        for tp in p.test_net_param:
            sources.append(("test_net_param", tp, None))
        for i, name in enumerate(p.test_net):
            test_path = resolve_net_path(name, f"test_net[{i}]", spec)
            sources.append((f"test_net file: {test_path}", None, test_path))
        remaining = len(p.test_iter) - len(sources)
        for _ in range(max(0, remaining)):
            if p.HasField("net_param"):
                sources.append(("net_param", p.net_param, None))
            elif p.HasField("net"):
                net_path = resolve_net_path(p.net, "net", spec)
                sources.append((f"net file: {net_path}", None, net_path))
        nets = []
        for i, (what, net_param, path) in enumerate(sources):
            if net_param is None:
                assert path is not None
                net_param, _ = load_net_param(path)
            state = caffe_pb2.NetState(phase=caffe_pb2.TEST)
            state.MergeFrom(net_param.state)
            if len(p.test_state):
                state.MergeFrom(p.test_state[i])
            _log.info("Creating test net (#%d) specified by %s", i, what)
            net = self._make_net(net_param, path, state)
            net.share_with(self._net)
            nets.append(net)
        return nets

    def _load_weights(self, model_list: str) -> None:
        for name in model_list.split(","):
            _log.info("Finetuning from %s", name)
            self._net.copy_from(name)
            for net in self._test_nets:
                net.copy_from(name)

    # ------------------------------------------------------------ history
    def _new_history(self) -> list[torch.Tensor]:
        params = [b.tensor for b in self._net.learnable_params]
        return [torch.zeros_like(t, dtype=torch.float32).detach()
                for _ in range(self._rule.n_history) for t in params]

    # ------------------------------------------------------------ pycaffe API
    @property
    def net(self) -> Net:
        return self._net

    @property
    def test_nets(self) -> list[Net]:
        return list(self._test_nets)

    @property
    def iter(self) -> int:
        return self._iter

    @property
    def param(self) -> caffe_pb2.SolverParameter:
        """A copy of the SolverParameter the solver runs with."""
        out = caffe_pb2.SolverParameter()
        out.CopyFrom(self._param)
        return out

    @property
    def lr(self) -> float:
        """The current rate (pycaffe calls GetLearningRate: multistep may advance)."""
        rate, self._current_step = learning_rate(self._param, self._iter, self._current_step)
        return rate

    @property
    def smoothed_loss(self) -> float:
        """The loss averaged over the last ``average_loss`` iterations of this step()."""
        if not self._losses:
            return 0.0
        return f32(float(torch.stack(list(self._losses)).float().mean()))

    def add_callback(self, on_start: Any, on_gradients_ready: Any = None) -> None:
        """Call ``on_start()`` before each iteration's forward/backward and
        ``on_gradients_ready()`` before each update. An object with both
        methods may be passed alone (as Caffe's Solver::Callback)."""
        if on_gradients_ready is None and hasattr(on_start, "on_gradients_ready"):
            on_start, on_gradients_ready = on_start.on_start, on_start.on_gradients_ready
        self._callbacks.append((on_start, on_gradients_ready))

    def set_action_function(self, fn: Callable[[], Any] | None) -> None:
        """``fn()`` is polled after each iteration and test batch; it returns a
        :class:`SolverAction` (or "none", "stop", "snapshot")."""
        self._action_fn = fn

    def share_weights(self, net: Net) -> None:
        """Make ``net`` use this solver's train-net parameters (pycaffe's share_weights)."""
        net.share_with(self._net)

    # ------------------------------------------------------------ training
    def step(self, iters: int) -> None:
        """Run ``iters`` iterations (Caffe's ``Solver::Step``)."""
        iters = int(iters)
        stop_iter = self._iter + iters
        self._losses = collections.deque(maxlen=self._param.average_loss)
        self._timer = time.perf_counter()
        self._iterations_last = self._iter
        p = self._param
        bar = self._progress_bar()
        try:
            while self._iter < stop_iter:
                self._net.clear_param_diffs()
                if p.test_interval and self._iter % p.test_interval == 0 \
                        and (self._iter > 0 or p.test_initialization):
                    if self._root:
                        self.test_all()
                    if self._early_exit:
                        break
                for on_start, _ in self._callbacks:
                    if on_start is not None:
                        on_start()
                display = bool(p.display) and self._iter % p.display == 0
                debug = display and p.debug_info and self._root
                loss: torch.Tensor | None = None
                for _ in range(p.iter_size):
                    out = debug_forward_backward(self._net) if debug else self._net._forward_backward()
                    for hook in self._pass_hooks:
                        hook()
                    out = out if out is not None else torch.zeros(())
                    loss = out if loss is None else loss + out
                assert loss is not None
                if p.iter_size != 1:
                    loss = loss / p.iter_size
                self._losses.append(loss.detach())
                if display:
                    self._display()
                for _, on_ready in self._callbacks:
                    if on_ready is not None:
                        on_ready()
                self.apply_update()
                self._iter += 1
                if bar is not None:
                    bar.update(1)
                request = self._requested_action()
                if (p.snapshot and self._iter % p.snapshot == 0 and self._root) \
                        or request is SolverAction.SNAPSHOT:
                    self.snapshot()
                if request is SolverAction.STOP:
                    self._early_exit = True
                    break
        finally:
            if bar is not None:
                bar.close()

    def _progress_bar(self) -> Any:
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=max(self._param.max_iter, self._iter), initial=self._iter,
                    unit="iter", dynamic_ncols=True, leave=False)

    def _display(self) -> None:
        lapse = time.perf_counter() - self._timer
        per_s = (self._iter - self._iterations_last) / (lapse or 1)
        if self._root:
            _log.info("Iteration %d (%s iter/s, %ss/%d iters), loss = %s", self._iter, _fmt(per_s),
                      _fmt(lapse), self._param.display, _fmt(self.smoothed_loss))
        self._timer = time.perf_counter()
        self._iterations_last = self._iter
        if self._root:
            self._log_outputs(self._net, "    Train net output #", None)

    def _log_outputs(self, net: Net, prefix: str, means: list[float] | None) -> None:
        weights = net.blob_loss_weights
        index = 0
        for name in net.outputs:
            values = np.asarray(net.blobs[name].data).reshape(-1) if means is None \
                else means[index:index + net.blobs[name].count]
            w = weights[name]
            for v in values:
                extra = f" (* {_fmt(w)} = {_fmt(f32(w) * f32(v))} loss)" if w else ""
                _log.info("%s%d: %s = %s%s", prefix, index, name, _fmt(v), extra)
                index += 1

    def _requested_action(self) -> SolverAction:
        if self._action_fn is None:
            return SolverAction.NONE
        r = self._action_fn()
        if isinstance(r, SolverAction):
            return r
        if r is None:
            return SolverAction.NONE
        if isinstance(r, int):  # Caffe's SolverAction::Enum values
            return (SolverAction.NONE, SolverAction.STOP, SolverAction.SNAPSHOT)[r]
        return SolverAction(str(r).lower())

    def solve(self, resume_file: str | None = None) -> None:
        """Train to ``max_iter`` (optionally resuming first), as Caffe's ``Solve``."""
        p = self._param
        _log.info("Solving %s", self._net.name)
        _log.info("Learning Rate Policy: %s", p.lr_policy)
        self._early_exit = False
        if resume_file:
            _log.info("Restoring previous solver status from %s", resume_file)
            self.restore(resume_file)
        self.step(p.max_iter - self._iter)
        if p.snapshot_after_train and (not p.snapshot or self._iter % p.snapshot != 0):
            self.snapshot()
        if self._early_exit:
            _log.info("Optimization stopped early.")
            return
        if p.display and self._iter % p.display == 0:
            # One more forward to show the loss after the last update.
            with torch.no_grad():
                loss = self._net._forward_range(0, len(self._net.layers) - 1, want_loss=True)
            self._losses.append((loss if loss is not None else torch.zeros(())).detach())
            _log.info("Iteration %d, loss = %s", self._iter, _fmt(self.smoothed_loss))
        if p.test_interval and self._iter % p.test_interval == 0:
            self.test_all()
        _log.info("Optimization Done.")

    # ------------------------------------------------------------ testing
    def test_all(self) -> None:
        for i in range(len(self._test_nets)):
            if self._early_exit:
                break
            self.test(i)

    def test(self, test_net_id: int = 0) -> list[float]:
        """Average each test-net output over ``test_iter`` batches and log it."""
        p = self._param
        _log.info("Iteration %d, Testing net (#%d)", self._iter, test_net_id)
        net = self._test_nets[test_net_id]
        net.share_with(self._net)
        n_iter = p.test_iter[test_net_id]
        sums: list[torch.Tensor] | None = None
        loss_sum: torch.Tensor | None = None
        for _ in range(n_iter):
            request = self._requested_action()
            while request is not SolverAction.NONE:
                if request is SolverAction.SNAPSHOT:
                    self.snapshot()
                elif request is SolverAction.STOP:
                    self._early_exit = True
                request = self._requested_action()
            if self._early_exit:
                break
            with torch.no_grad():
                loss = debug_forward(net) if p.debug_info \
                    else net._forward_range(0, len(net.layers) - 1, want_loss=True)
            if p.test_compute_loss and loss is not None:
                loss_sum = loss if loss_sum is None else loss_sum + loss
            outs = [net.blobs[name].tensor.detach().reshape(-1) for name in net.outputs]
            sums = [o.clone() for o in outs] if sums is None else [s + o for s, o in zip(sums, outs)]
        if self._early_exit:
            _log.info("Test interrupted.")
            return []
        if p.test_compute_loss:
            total = float(loss_sum) if loss_sum is not None else 0.0
            _log.info("Test loss: %s", _fmt(total / n_iter))
        means: list[float] = []
        if sums is not None:
            for s in sums:
                means.extend(f32(v / n_iter) for v in s.double().cpu().tolist())
        self._mean_scores[test_net_id] = means
        self._log_outputs(net, "    Test net output #", means)
        return means

    # ------------------------------------------------------------ update
    def apply_update(self) -> None:
        """One update from the current diffs (Caffe's ``ApplyUpdate``); iter unchanged."""
        p = self._param
        rate, self._current_step = learning_rate(p, self._iter, self._current_step)
        if self._root and p.display and self._iter % p.display == 0:
            _log.info("Iteration %d, lr = %s", self._iter, _fmt(rate))
        net = self._net
        blobs = net.learnable_params
        if not blobs:
            return
        params = [b.tensor for b in blobs]
        grads = [b.diff_tensor for b in blobs]
        lr_mults, decay_mults = net.params_lr, net.params_weight_decay
        self._sync_history(params)
        with torch.no_grad():
            clip_gradients(grads, f32(p.clip_gradients))
            normalize(grads, p.iter_size)
            wd = f32(p.weight_decay)
            regularize(params, grads, [f32(wd * f32(d)) for d in decay_mults], p.regularization_type)
            self._rule.compute(grads, self._history, [f32(rate * f32(m)) for m in lr_mults], self._iter)
            live = [i for i, m in enumerate(lr_mults) if m != 0]
            if len(live) == len(params):
                torch._foreach_sub_(params, grads)
            elif live:
                torch._foreach_sub_([params[i] for i in live], [grads[i] for i in live])

    def _sync_history(self, params: list[torch.Tensor]) -> None:
        n = len(params)
        h = self._history
        if len(h) != n * self._rule.n_history:
            raise SolverError(
                f"the train net has {n} learnable parameter blobs but the solver was built for "
                f"{len(h) // self._rule.n_history}; build a new solver after changing the net"
            )
        if h and h[0].device != params[0].device:
            self._history = [t.to(params[0].device) for t in h]

    # ------------------------------------------------------------ snapshots
    def _snapshot_name(self, extension: str) -> str:
        return snap.snapshot_filename(self._param.snapshot_prefix, self._iter, extension)

    def snapshot(self) -> str:
        """Write ``<prefix>_iter_<N>.caffemodel`` + ``.solverstate`` (or the .h5 forms)."""
        p = self._param
        hdf5 = p.snapshot_format == caffe_pb2.SolverParameter.HDF5
        if hdf5:
            model = self._snapshot_name(".caffemodel.h5")
            _log.info("Snapshotting to HDF5 file %s", model)
            from ..weights import save_hdf5

            save_hdf5(self._net, model, write_diff=p.snapshot_diff)
            state = self._snapshot_name(".solverstate.h5")
            _log.info("Snapshotting solver state to HDF5 file %s", state)
        else:
            model = self._snapshot_name(".caffemodel")
            _log.info("Snapshotting to binary proto file %s", model)
            from ..weights import save_caffemodel

            save_caffemodel(self._net, model, write_diff=p.snapshot_diff)
            state = self._snapshot_name(".solverstate")
            _log.info("Snapshotting solver state to binary proto file %s", state)
        snap.write_state(state, self._iter, model, self._current_step, self._history, hdf5)
        return model

    def restore(self, state_file: str) -> None:
        """Continue from a ``.solverstate`` / ``.solverstate.h5`` (Caffe's ``Restore``)."""
        state = snap.read_state(state_file)
        n = len(self._history)
        if len(state.history) != n:
            raise SolverError(
                f"{state_file}: incorrect length of history blobs: the file has "
                f"{len(state.history)}, this {self.type} solver needs {n} "
                f"({self._rule.n_history} per learnable parameter blob)"
            )
        arrays = []
        from ..weights import blob_shape_matches

        for i, (values, shape, legacy) in enumerate(state.history):
            target = tuple(self._history[i].shape)
            if not blob_shape_matches(target, shape, legacy):
                raise SolverError(f"{state_file}: history blob {i} has shape {list(shape)}, "
                                  f"the solver's parameter has {list(target)}")
            arrays.append(values.reshape(target))
        if state.learned_net:
            self._net.copy_from(snap.resolve_learned_net(state))
        self._iter = state.iter
        self._current_step = state.current_step
        _log.info("SGDSolver: restoring history")
        with torch.no_grad():
            for h, a in zip(self._history, arrays):
                h.copy_(torch.tensor(a, dtype=torch.float32))

    def __repr__(self) -> str:
        return f"<caffe_compat.{type(self).__name__} iter={self._iter} net={self._net.name!r}>"


class SGDSolver(Solver):
    type = "SGD"
    _rule_class = RULES["SGD"]


class NesterovSolver(Solver):
    type = "Nesterov"
    _rule_class = RULES["Nesterov"]


class AdaGradSolver(Solver):
    type = "AdaGrad"
    _rule_class = RULES["AdaGrad"]

    @classmethod
    def _check_type_params(cls, spec: SolverSpec) -> None:
        if spec.param.momentum != 0:
            raise SolverError(f"{spec.source}: momentum cannot be used with AdaGrad "
                              f"(got momentum: {spec.param.momentum:g}; it must be 0)")


class RMSPropSolver(Solver):
    type = "RMSProp"
    _rule_class = RULES["RMSProp"]

    @classmethod
    def _check_type_params(cls, spec: SolverSpec) -> None:
        p = spec.param
        if p.momentum != 0:
            raise SolverError(f"{spec.source}: momentum cannot be used with RMSProp "
                              f"(got momentum: {p.momentum:g}; it must be 0)")
        if not 0 <= p.rms_decay < 1:
            raise SolverError(f"{spec.source}: rms_decay should lie between 0 and 1 "
                              f"(0 <= rms_decay < 1), got {p.rms_decay:g}")


class AdaDeltaSolver(Solver):
    type = "AdaDelta"
    _rule_class = RULES["AdaDelta"]


class AdamSolver(Solver):
    type = "Adam"
    _rule_class = RULES["Adam"]


_CLASSES: dict[str, type[Solver]] = {
    c.type: c for c in (SGDSolver, NesterovSolver, AdaGradSolver, RMSPropSolver, AdaDeltaSolver, AdamSolver)
}


def solver_class(type_name: str, where: str = "<solver>") -> type[Solver]:
    try:
        return _CLASSES[type_name]
    except KeyError:
        raise SolverError(f'{where}: unknown solver type "{type_name}"; known types: '
                          f"{', '.join(sorted(_CLASSES))}") from None


def get_solver(solver: Any) -> Solver:
    """The solver the file's ``type`` names (pycaffe's ``caffe.get_solver``)."""
    return Solver(solver)
