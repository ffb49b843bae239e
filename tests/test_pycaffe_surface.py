"""Every name upstream pycaffe exports exists here, with the same kind.

The tables below are upstream's surface, written down from BVLC Caffe's
``python/caffe/__init__.py``, ``python/caffe/_caffe.cpp`` and
``python/caffe/pycaffe.py`` (master, Caffe 1.0) and checked against ``dir()`` of
the real pycaffe of this machine where it is installed
(:func:`test_tables_match_the_real_pycaffe`). Kinds: ``class``, ``function``,
``module``, ``constant`` (with its type), ``factory`` (NetSpec's ``layers`` and
``params``: any attribute is a callable); for class members ``method`` and
``property`` (on an instance: an attribute that is not callable).

Also here: ``self.phase`` of Python layers, ``caffe.Timer``, ``caffe.init_log``
and ``caffe.log``, and BVLC's ``python/train.py`` usage of them.
"""

from __future__ import annotations

import inspect
import json
import os
import pickle
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import caffe_compat as caffe
from caffe_compat.python_layer import Phase

ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).parent / "caffe-compat"

# ------------------------------------------------------------------ upstream
# caffe/__init__.py (its imports), and the submodules that importing it loads.
TOP_LEVEL = {
    "Net": "class", "SGDSolver": "class", "NesterovSolver": "class", "AdaGradSolver": "class",
    "RMSPropSolver": "class", "AdaDeltaSolver": "class", "AdamSolver": "class", "NCCL": "class",
    "Timer": "class", "Layer": "class", "Classifier": "class", "Detector": "class", "NetSpec": "class",
    "init_log": "function", "log": "function", "set_mode_cpu": "function", "set_mode_gpu": "function",
    "set_device": "function", "get_solver": "function", "layer_type_list": "function",
    "set_random_seed": "function", "solver_count": "function", "set_solver_count": "function",
    "solver_rank": "function", "set_solver_rank": "function", "set_multiprocess": "function",
    "has_nccl": "function", "to_proto": "function",
    "__version__": "constant str", "TRAIN": "constant int", "TEST": "constant int",
    "io": "module", "layers": "factory", "params": "factory",
    "_caffe": "module", "pycaffe": "module", "proto": "module", "classifier": "module",
    "detector": "module", "net_spec": "module",
}

# _caffe.cpp's BOOST_PYTHON_MODULE(_caffe).
CAFFE_MODULE = {
    "__version__": "constant str",
    "init_log": "function", "log": "function", "has_nccl": "function", "set_mode_cpu": "function",
    "set_mode_gpu": "function", "set_random_seed": "function", "set_device": "function",
    "solver_count": "function", "set_solver_count": "function", "solver_rank": "function",
    "set_solver_rank": "function", "set_multiprocess": "function", "layer_type_list": "function",
    "get_solver": "function",
    "Net": "class", "Blob": "class", "Layer": "class", "LayerParameter": "class", "SolverParameter": "class",
    "Solver": "class", "SGDSolver": "class", "NesterovSolver": "class", "AdaGradSolver": "class",
    "RMSPropSolver": "class", "AdaDeltaSolver": "class", "AdamSolver": "class", "NCCL": "class",
    "Timer": "class", "BlobVec": "class", "RawBlobVec": "class", "LayerVec": "class", "StringVec": "class",
    "IntVec": "class", "DtypeVec": "class", "NetVec": "class", "BoolVec": "class",
}

# Class members: _caffe.cpp's .def / .add_property, plus what pycaffe.py attaches to Net.
MEMBERS = {
    "Net": {
        **dict.fromkeys(["_forward", "_backward", "reshape", "clear_param_diffs", "copy_from", "share_with",
                         "_bottom_ids", "_top_ids", "_set_input_arrays", "save", "save_hdf5", "load_hdf5",
                         "before_forward", "after_forward", "before_backward", "after_backward",
                         "forward", "backward", "forward_all", "forward_backward_all", "set_input_arrays",
                         "_batch"], "method"),
        **dict.fromkeys(["_blob_loss_weights", "_blobs", "layers", "_blob_names", "_layer_names", "_inputs",
                         "_outputs", "blobs", "blob_loss_weights", "layer_dict", "params", "inputs",
                         "outputs", "top_names", "bottom_names"], "property"),
    },
    "Blob": {
        **dict.fromkeys(["shape", "num", "channels", "height", "width", "count", "data", "diff"], "property"),
        "reshape": "method",
    },
    "Layer": {"blobs": "property", "type": "property", "setup": "method", "reshape": "method"},
    "Solver": {
        **dict.fromkeys(["net", "test_nets", "iter", "param"], "property"),
        **dict.fromkeys(["add_callback", "apply_update", "solve", "step", "restore", "snapshot",
                         "share_weights"], "method"),
    },
    "SGDSolver": {"lr": "property"},  # and Solver's
    "Timer": {"start": "method", "stop": "method", "ms": "property"},
    "BlobVec": {"add_blob": "method", "append": "method", "extend": "method"},
    "SolverParameter": dict.fromkeys(["base_lr", "display", "layer_wise_reduce", "max_iter"], "property"),
    # Only in builds with USE_NCCL (the pip Caffe of this machine has none).
    "NCCL": {"new_uid": "method", "bcast": "method"},
}
NCCL_ONLY = {("NCCL", "new_uid"), ("NCCL", "bcast")}

NET = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def kind_of(value: object) -> str:
    # Any attribute exists (caffe_compat.layers is a package whose module __getattr__ is NetSpec's).
    if hasattr(value, "Convolution") and hasattr(value, "Anything"):
        return "factory"
    if inspect.ismodule(value):
        return "module"
    if isinstance(value, type):
        return "class"
    if callable(value):
        return "function"
    if isinstance(value, (int, float, str)):
        return f"constant {type(value).__name__}"
    return type(value).__name__


@pytest.fixture(scope="module")
def instances(tmp_path_factory):
    """One instance of each class whose members are checked."""
    root = tmp_path_factory.mktemp("surface")
    (root / "net.prototxt").write_text(NET)
    (root / "solver.prototxt").write_text('net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\n'
                                          'max_iter: 1\ndisplay: 0\nsnapshot_after_train: false\n')
    net = caffe.Net(str(root / "net.prototxt"), caffe.TRAIN)
    solver = caffe.SGDSolver(str(root / "solver.prototxt"))
    layer = caffe.Layer(caffe.caffe_pb2.LayerParameter(name="py", type="Python"))
    return {"Net": net, "Blob": net.blobs["data"], "Layer": layer, "Solver": solver, "SGDSolver": solver,
            "Timer": caffe.Timer(), "BlobVec": layer.blobs, "SolverParameter": solver.param,
            "NCCL": caffe.NCCL}


@pytest.mark.parametrize("name,kind", sorted(TOP_LEVEL.items()))
def test_top_level_name(name, kind):
    assert hasattr(caffe, name), f"caffe.{name} is missing"
    assert kind_of(getattr(caffe, name)) == kind


@pytest.mark.parametrize("name,kind", sorted(CAFFE_MODULE.items()))
def test_caffe_module_name(name, kind):
    assert hasattr(caffe._caffe, name), f"caffe._caffe.{name} is missing"
    assert kind_of(getattr(caffe._caffe, name)) == kind
    if kind != "constant str" and name in TOP_LEVEL:
        assert getattr(caffe._caffe, name) is getattr(caffe, name)


@pytest.mark.parametrize("cls,member,kind",
                         [(c, m, k) for c, ms in MEMBERS.items() for m, k in sorted(ms.items())], ids=str)
def test_class_member(instances, cls, member, kind):
    obj = instances[cls]
    assert hasattr(obj, member), f"{cls}.{member} is missing"
    value = getattr(obj, member)
    assert callable(value) == (kind == "method"), f"{cls}.{member} should be a {kind}"


def test_layer_type_is_python_and_caffe_module_imports_under_the_alias(tmp_path):
    assert caffe.Layer(None).type == "Python"
    (tmp_path / "probe.py").write_text(
        "import caffe, caffe._caffe\n"
        "from caffe._caffe import Timer, RawBlobVec, init_log, log\n"
        "import caffe_compat\n"
        "assert caffe._caffe is caffe_compat._caffe and Timer is caffe.Timer\n"
        "print('ok')\n")
    res = _run_cli(["run", "probe.py"], tmp_path)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr


_PROBE = r"""
import inspect, json, sys
import caffe, caffe._caffe as C
tables = json.loads(sys.argv[1])
def kind(v):
    if hasattr(v, "Convolution") and hasattr(v, "Anything"): return "factory"
    if inspect.ismodule(v): return "module"
    if isinstance(v, type): return "class"
    if callable(v): return "function"
    if isinstance(v, (int, float, str)): return "constant " + type(v).__name__
    return type(v).__name__
public = lambda m: [n for n in dir(m) if not n.startswith("__") or n == "__version__"]
out = {"top": {n: kind(getattr(caffe, n)) for n in public(caffe)},
       "module": {n: kind(getattr(C, n)) for n in public(C)}, "members": {}}
for cls in tables:
    c = getattr(C, cls)
    members = {}
    for n in dir(c):
        if n.startswith("__"):
            continue
        raw = inspect.getattr_static(c, n)
        members[n] = "property" if isinstance(raw, property) else "method"
    out["members"][cls] = members
print(json.dumps(out))
"""


def _real_pycaffe() -> str | None:
    for python in (os.environ.get("CAFFE_COMPAT_REFERENCE_PYTHON"), "/work/caffe_ref/venv/bin/python"):
        if python and Path(python).exists():
            return python
    return None


def test_tables_match_the_real_pycaffe():
    """The tables are upstream's: the real pycaffe has exactly these names, of these kinds."""
    python = _real_pycaffe()
    if python is None:
        pytest.skip("no real pycaffe on this machine (set CAFFE_COMPAT_REFERENCE_PYTHON)")
    res = subprocess.run([python, "-c", _PROBE, json.dumps(list(MEMBERS))], capture_output=True, text=True,
                         env=dict(os.environ, GLOG_minloglevel="2"), timeout=120)
    if res.returncode != 0 and "No module named 'caffe'" in res.stderr:
        pytest.skip(f"{python} has no pycaffe")
    assert res.returncode == 0, res.stderr
    real = json.loads(res.stdout)
    assert real["top"] == TOP_LEVEL
    assert real["module"] == CAFFE_MODULE
    for cls, members in MEMBERS.items():
        have = real["members"][cls]
        base = MEMBERS["Solver"] if cls == "SGDSolver" else {}
        expected = {m: k for m, k in {**base, **members}.items() if (cls, m) not in NCCL_ONLY}
        # The real Net also lists pycaffe.py's members; real Layer has no per-instance 'phase' property.
        assert have == expected, cls


# ------------------------------------------------------------------ phase
def test_phase_is_an_int_named_by_str():
    train, test = Phase(caffe.TRAIN), Phase(caffe.TEST)
    assert train == caffe.TRAIN == 0 and test == caffe.TEST == 1 and train != test
    assert isinstance(train, int) and int(test) == 1 and type(int(test)) is int
    assert (str(train), str(test), f"{test}", "%s" % test, "%d" % test, f"{test:d}") == \
        ("TRAIN", "TEST", "TEST", "TEST", "1", "1")
    assert repr(train) == "caffe.TRAIN"
    assert ["a", "b"][test] == "b" and {0: "x"}[train] == "x" and hash(test) == hash(1)
    cfg = {"TRAIN": "train settings", "TEST": "test settings"}
    assert cfg[str(test)] == "test settings"
    back = pickle.loads(pickle.dumps(test))
    assert back == 1 and str(back) == "TEST"
    assert json.dumps({"phase": test, train: 1}) == '{"phase": 1, "0": 1}'
    assert train + 1 == 1 and type(train + 1) is int
    with pytest.raises(ValueError, match="TRAIN"):
        Phase(2)


@pytest.mark.parametrize("phase", ["TRAIN", "TEST"])
def test_python_layers_see_the_named_phase(tmp_path, monkeypatch, phase):
    (tmp_path / "phase_layer_mod.py").write_text(textwrap.dedent("""
        import caffe_compat as caffe
        SEEN = []
        class L(caffe.Layer):
            def setup(self, bottom, top):
                SEEN.append((self.phase, str(self.phase), self.phase == caffe.TRAIN))
            def reshape(self, bottom, top):
                top[0].reshape(*bottom[0].data.shape)
            def forward(self, bottom, top):
                top[0].data[...] = bottom[0].data
    """))
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 } } }\n'
        'layer { name: "py" type: "Python" bottom: "x" top: "y" '
        'python_param { module: "phase_layer_mod" layer: "L" } }\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    caffe.Net(str(tmp_path / "net.prototxt"), getattr(caffe, phase))
    import phase_layer_mod

    value, text, is_train = phase_layer_mod.SEEN[-1]
    assert isinstance(value, int) and text == phase and is_train == (phase == "TRAIN")


# ------------------------------------------------------------------ Timer, log
def test_timer_follows_caffes_rules(caplog):
    t = caffe.Timer()
    with caplog.at_level("WARNING", logger="caffe_compat"):
        assert t.ms == 0.0
    assert "Timer has never been run before reading time." in caplog.text
    t.start()
    time.sleep(0.03)
    t.start()  # already running: keeps the first start
    first = t.ms  # reading stops it
    assert 25 <= first < 1000 and first == int(first)  # whole milliseconds on the CPU, as Caffe's
    time.sleep(0.02)
    assert t.ms == first
    t.stop()  # not running: nothing
    assert t.ms == first
    t.start()
    t.stop()
    assert t.ms < first


def _run_cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("GLOG_")}
    full.update(PYTHONPATH=str(ROOT), **env)
    cmd = [str(CLI)] if CLI.exists() else [sys.executable, "-m", "caffe_compat"]
    return subprocess.run(cmd + args, cwd=cwd, env=full, capture_output=True, text=True, timeout=300)


def test_init_log_and_log_write_glog_lines(tmp_path):
    """As the real pycaffe does it: after init_log() the INFO line goes to a glog file in the
    temporary directory (stderr shows ERROR and up); init_log(level, True) logs to stderr."""
    (tmp_path / "tmp").mkdir()
    (tmp_path / "logs.py").write_text(textwrap.dedent("""
        import caffe
        caffe.init_log()
        caffe.log('first message')
        caffe.init_log(2, True)  # ERROR and above only
        caffe.log('hidden message')
        caffe.init_log(0, True)
        caffe.log('third message')
    """))
    res = _run_cli(["run", "logs.py"], tmp_path, TMPDIR=str(tmp_path / "tmp"))
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if "message" in ln]
    assert len(lines) == 1 and lines[0].startswith("I") and lines[0].endswith("logs.py:8] third message")
    (info,) = [p for p in (tmp_path / "tmp").iterdir() if ".log.INFO." in p.name]
    assert info.name.startswith(".") and "logs.py:4] first message" in info.read_text()
    assert "hidden" not in info.read_text() + res.stderr


# BVLC's python/train.py, in our words: init_log/log, NCCL uid, one process per device with
# set_solver_count/rank/multiprocess, per-layer Timers on the net's callbacks and the solver's,
# the timing report through caffe.log with net._layer_names.
TRAIN_PY = """
from multiprocessing import Process
import caffe

def launch(solver_file, devices):
    uid = caffe.NCCL.new_uid()
    caffe.init_log()
    caffe.log('Using devices %s' % str(devices))
    workers = [Process(target=worker, args=(solver_file, devices, uid, rank)) for rank in range(len(devices))]
    for p in workers:
        p.daemon = True
        p.start()
    for p in workers:
        p.join()
    raise SystemExit(max(p.exitcode for p in workers))

def timed(solver, nccl):
    n = len(solver.net.layers)
    fwd = [caffe.Timer() for _ in range(n)]
    bwd = [caffe.Timer() for _ in range(n)]
    whole, reduce_ = caffe.Timer(), caffe.Timer()
    every = solver.param.display
    def report():
        if solver.iter % every == 0:
            text = '\\n'
            for i in range(n):
                text += 'forw %3d %8s : %.2f\\n' % (i, solver.net._layer_names[i], fwd[i].ms)
            for i in reversed(range(n)):
                text += 'back %3d %8s : %.2f\\n' % (i, solver.net._layer_names[i], bwd[i].ms)
            text += 'solver total: %.2f\\nallreduce: %.2f\\n' % (whole.ms, reduce_.ms)
            caffe.log(text)
    solver.net.before_forward(lambda layer: fwd[layer].start())
    solver.net.after_forward(lambda layer: fwd[layer].stop())
    solver.net.before_backward(lambda layer: bwd[layer].start())
    solver.net.after_backward(lambda layer: bwd[layer].stop())
    solver.add_callback(lambda: whole.start(), lambda: (whole.stop(), reduce_.start()))
    solver.add_callback(nccl)
    solver.add_callback(lambda: '', lambda: (reduce_.stop(), report()))

def worker(solver_file, devices, uid, rank):
    caffe.set_mode_gpu()  # warns and stays on the CPU without CUDA
    caffe.set_device(devices[rank])
    caffe.set_solver_count(len(devices))
    caffe.set_solver_rank(rank)
    caffe.set_multiprocess(True)
    solver = caffe.SGDSolver(solver_file)
    nccl = caffe.NCCL(solver, uid)
    nccl.bcast()
    timed(solver, nccl)
    if solver.param.layer_wise_reduce:
        solver.net.after_backward(nccl)
    solver.step(solver.param.max_iter)

if __name__ == '__main__':
    launch('solver.prototxt', [0])
"""


def test_bvlc_train_py_pattern_runs_with_timers_and_log(tmp_path):
    (tmp_path / "net.prototxt").write_text(NET.replace('type: "Input"', 'type: "DummyData"').replace(
        "input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } }",
        'dummy_data_param { shape { dim: 2 dim: 3 } shape { dim: 2 } data_filler { type: "gaussian" } '
        'data_filler { type: "constant" value: 1 } }'))
    (tmp_path / "solver.prototxt").write_text('net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\n'
                                              'max_iter: 4\ndisplay: 2\nsnapshot_after_train: false\n')
    (tmp_path / "train.py").write_text(TRAIN_PY)
    (tmp_path / "tmp").mkdir()
    res = _run_cli(["run", "train.py"], tmp_path, TMPDIR=str(tmp_path / "tmp"))
    assert res.returncode == 0, res.stderr
    # After caffe.init_log() glog writes INFO lines to its file in the temporary directory.
    (info,) = [p for p in (tmp_path / "tmp").iterdir() if ".log.INFO." in p.name]
    text = info.read_text()
    assert "] Using devices [0]" in text and "Using devices" not in res.stderr
    assert text.count("solver total: ") == 2, text  # iterations 2 and 4
    for name in ("data", "ip", "loss"):
        assert f"forw {['data', 'ip', 'loss'].index(name):3d} {name:>8s} : " in text
    assert "back   1       ip : " in text and "allreduce: " in text
