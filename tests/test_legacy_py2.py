"""Caffe-era scripts as they are under ``caffe-compat run``: Python 2 source, removed NumPy names.

The CLI cases run the installed console script in a subprocess, each with its
own translation cache (``CAFFE_COMPAT_PY2_CACHE``). The Python 2 files below
are ours, written with the constructs Caffe-era code uses (BVLC's pyloss.py
and tools/extra, FCN's surgery/score, py-faster-rcnn's layers): print
statements, ``except X, e``, ``raise E, "msg"``, ``dict.iteritems``,
``xrange``, tuple parameters, ``np.float``, integer ``/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from caffe_compat.legacy import numpy_aliases
from caffe_compat.legacy import translate as translate  # the module (the package does not export a function)

ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).parent / "caffe-compat"

# A Python layer in Python 2: EuclideanLoss written as BVLC's examples/pycaffe/layers/pyloss.py does.
PY2_LAYER = '''\
import caffe
import numpy as np

class Py2Euclidean(caffe.Layer):
    def setup(self, bottom, top):
        if len(bottom) != 2:
            raise Exception, "Need two inputs to compute distance."
        print "setup in phase", str(self.phase)

    def reshape(self, bottom, top):
        if bottom[0].count != bottom[1].count:
            raise Exception("Inputs must have the same dimension.")
        self.diff = np.zeros_like(bottom[0].data, dtype=np.float32)
        top[0].reshape(1)

    def forward(self, bottom, top):
        self.diff[...] = bottom[0].data - bottom[1].data
        top[0].data[...] = np.sum(self.diff ** 2) / bottom[0].num / 2.

    def backward(self, top, propagate_down, bottom):
        for i in xrange(2):
            if not propagate_down[i]:
                continue
            sign = 1 if i == 0 else -1
            bottom[i].diff[...] = sign * self.diff / bottom[i].num
'''

NET = '''\
layer {{ name: "data" type: "DummyData" top: "x" top: "y"
  dummy_data_param {{ shape {{ dim: 4 dim: 3 }} shape {{ dim: 4 dim: 2 }}
    data_filler {{ type: "gaussian" }} data_filler {{ type: "gaussian" }} }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
  inner_product_param {{ num_output: 2 weight_filler {{ type: "gaussian" std: 0.5 }} }} }}
{loss}
'''
PY_LOSS = ('layer { name: "loss" type: "Python" bottom: "ip" bottom: "y" top: "loss" loss_weight: 1\n'
           '  python_param { module: "%s" layer: "Py2Euclidean" } }')
BUILTIN_LOSS = 'layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "y" top: "loss" }'
SOLVER = ('net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nmax_iter: 3\ndisplay: 0\n'
          'random_seed: 5\nsnapshot_after_train: false\n')

# A Python 2 script driving a solver, with a helper module from its own directory.
PY2_SOLVE = '''\
import sys
import caffe
import numpy as np
from helpers import describe

solver = caffe.SGDSolver('solver.prototxt')
losses = {}
for it in xrange(3):
    solver.step(1)
    losses[solver.iter] = solver.net.blobs['loss'].data.flat[0]
for it, loss in sorted(losses.iteritems()):
    print 'iter', it, 'loss %.7f' % loss
print describe(solver.net.params['ip'][0].data)
print 'fissix imported:', 'fissix' in sys.modules
'''
PY2_HELPERS = '''\
import numpy as np

def describe(w):
    try:
        kind = np.float(w.mean())
    except TypeError, e:
        print >>sys.stderr, "cannot", e
        raise
    return "mean %.3f of %d weights" % (kind, w.size)
'''


def cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    dropped = ("PYTHONPATH", "CAFFE_COMPAT_INIT", "PYTHONDONTWRITEBYTECODE")
    full = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("GLOG_")}
    full.update(PYTHONPATH=str(ROOT), CAFFE_COMPAT_PY2_CACHE=str(cwd / ".py2cache"), **env)
    cmd = [str(CLI)] if CLI.exists() else [sys.executable, "-m", "caffe_compat"]
    return subprocess.run(cmd + args, cwd=cwd, env=full, capture_output=True, text=True, timeout=300)


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def builtin_losses(tmp_path: Path) -> list[float]:
    import caffe_compat as caffe

    job = write(tmp_path / "builtin", {"net.prototxt": NET.format(loss=BUILTIN_LOSS),
                                       "solver.prototxt": SOLVER})
    cwd = os.getcwd()
    os.chdir(job)
    try:
        solver = caffe.SGDSolver("solver.prototxt")
        out = []
        for _ in range(3):
            solver.step(1)
            out.append(float(solver.net.blobs["loss"].data))
        return out
    finally:
        os.chdir(cwd)


# ------------------------------------------------------------------ the CLI
def test_python2_script_drives_a_solver_with_a_python2_layer_and_helper(tmp_path):
    """python_param layer module, a helper from the script's directory, the script: all Python 2."""
    job = write(tmp_path / "job", {"solve.py": PY2_SOLVE, "helpers.py": PY2_HELPERS, "pyloss2.py": PY2_LAYER,
                                   "net.prototxt": NET.format(loss=PY_LOSS % "pyloss2"),
                                   "solver.prototxt": SOLVER})
    res = cli(["run", "solve.py"], job)
    assert res.returncode == 0, res.stderr
    printed = [ln.split() for ln in res.stdout.splitlines() if ln.startswith("iter ")]
    expected = builtin_losses(tmp_path)  # the same net with Caffe's EuclideanLoss
    assert [int(p[1]) for p in printed] == [1, 2, 3]
    np.testing.assert_allclose([float(p[3]) for p in printed], expected, rtol=1e-5)
    assert "setup in phase TRAIN" in res.stdout and "of 6 weights" in res.stdout
    for name, fixers in (("solve.py", "print"), ("helpers.py", "except"), ("pyloss2.py", "raise")):
        line = next(ln for ln in res.stderr.splitlines() if f"{name}: translated from Python 2" in ln)
        assert fixers in line
    assert "np.float is not in NumPy" in res.stderr  # helpers.py's np.float, logged once
    assert res.stderr.count("np.float is not in NumPy") == 1
    assert "helpers.py:5: np.float" in res.stderr
    assert "fissix imported: True" in res.stdout

    again = cli(["run", "solve.py"], job)  # the cache: no fissix, the same numbers
    assert again.returncode == 0, again.stderr
    assert "fissix imported: False" in again.stdout
    assert [ln for ln in again.stdout.splitlines() if ln.startswith("iter ")] == \
        [ln for ln in res.stdout.splitlines() if ln.startswith("iter ")]
    assert again.stderr.count("; cached translation") == 3
    assert not list(job.glob("__pycache__/*"))  # translated bytecode is not left for plain python


def test_python2_layer_through_caffeinit(tmp_path):
    job = write(tmp_path / "job", {
        "layers/legacy_loss.py": PY2_LAYER,
        ".caffeinit": "python_layer py2_euclid Py2Euclidean layers/legacy_loss.py\n",
        "net.prototxt": NET.format(loss='layer { name: "loss" type: "py2_euclid" bottom: "ip" bottom: "y" '
                                        'top: "loss" loss_weight: 1 }'),
        "solver.prototxt": SOLVER,
        "train.py": "import caffe\ns = caffe.SGDSolver('solver.prototxt')\nfor _ in range(3):\n"
                    "    s.step(1)\n    print('loss', s.net.blobs['loss'].data.flat[0])\n",
    })
    res = cli(["run", "train.py"], job)
    assert res.returncode == 0, res.stderr
    losses = [float(ln.split()[1]) for ln in res.stdout.splitlines() if ln.startswith("loss ")]
    np.testing.assert_allclose(losses, builtin_losses(tmp_path), rtol=1e-5)
    line = next(ln for ln in res.stderr.splitlines() if "legacy_loss.py: translated from Python 2" in ln)
    assert all(f in line for f in ("raise", "print", "xrange"))


def test_caffe_compat_train_loads_a_python2_layer(tmp_path):
    """`caffe train` with a Python-2 layer module, as a Python-2 Caffe build ran it; strict mode refuses."""
    job = write(tmp_path / "job", {"pyloss2.py": PY2_LAYER,
                                   "net.prototxt": NET.format(loss=PY_LOSS % "pyloss2"),
                                   "solver.prototxt": SOLVER.replace("display: 0", "display: 1")})
    res = cli(["train", "--solver=solver.prototxt"], job)
    assert res.returncode == 0, res.stderr
    assert "pyloss2.py: translated from Python 2" in res.stderr
    losses = [float(ln.rsplit("loss = ", 1)[1]) for ln in res.stderr.splitlines()
              if "Iteration" in ln and "loss = " in ln]
    np.testing.assert_allclose(losses[:3], builtin_losses(tmp_path), rtol=1e-5)  # + the final one
    res = cli(["train", "--solver=solver.prototxt"], job, CAFFE_COMPAT_STRICT="1")
    assert res.returncode == 1 and "SyntaxError" in res.stderr


def test_strict_turns_translation_and_aliases_off(tmp_path):
    job = write(tmp_path / "job", {"old.py": "print 'hello'\n", "alias.py": "import numpy as np\nnp.float\n"})
    res = cli(["run", "--strict", "old.py"], job)
    assert res.returncode == 1
    assert "SyntaxError" in res.stderr and "translation is off in strict mode" in res.stderr
    assert "translated" not in res.stderr
    res = cli(["run", "--strict", "alias.py"], job)
    assert res.returncode == 1 and "has no attribute 'float'" in res.stderr
    res = cli(["run", "old.py"], job, CAFFE_COMPAT_STRICT="1")
    assert res.returncode == 1 and "translation is off in strict mode" in res.stderr
    assert cli(["run", "old.py"], job).stdout == "hello\n"


def test_site_packages_and_python3_files_are_never_translated(tmp_path):
    """Only the user's tree: a Python 2 module under site-packages fails as Python 3 would."""
    job = write(tmp_path / "job", {
        "vendor/site-packages/oldlib.py": "def f():\n    print 'old'\n",
        "mine/oldmine.py": "def f():\n    print 'mine'\n",
        "modern.py": "def f():\n    print('modern', end='!')\n",
        "main.py": "import sys\nsys.path[:0] = ['vendor/site-packages', 'mine']\n"
                   "import modern, oldmine\nmodern.f(); oldmine.f()\nimport oldlib\n",
    })
    res = cli(["run", "main.py"], job)
    assert res.returncode == 1
    assert res.stdout == "modern!mine\n"  # a Python 3 file keeps print(..., end=...) as it is
    assert "oldlib.py" in res.stderr and "SyntaxError" in res.stderr
    assert "oldmine.py: translated" in res.stderr and "modern.py: translated" not in res.stderr
    assert list((job / "__pycache__").glob("modern.*.pyc"))  # Python 3 modules: bytecode as usual
    assert not (job / "mine" / "__pycache__").exists()


LINE_SHIFT = '''\
from urllib import urlencode, urlopen
def pair((a, b)):
    return a + b
def fail(n):
    print "about to fail"
    raise ValueError("failing at line %d" % n)
fail(pair((3, 3)))
'''


def test_tracebacks_point_at_the_original_file_and_line(tmp_path):
    """fix_urllib and fix_tuple_params add lines; the traceback still names the original ones."""
    job = write(tmp_path / "job", {"shift.py": LINE_SHIFT})
    res = cli(["run", "shift.py"], job)
    assert res.returncode == 1
    assert 'File "shift.py", line 7, in <module>\n    fail(pair((3, 3)))' in res.stderr
    assert 'File "shift.py", line 6, in fail\n    raise ValueError("failing at line %d" % n)' in res.stderr
    assert "ValueError: failing at line 6" in res.stderr
    assert "tuple_params" in res.stderr and "urllib" in res.stderr


DIVISION = '''\
import numpy as np

def middle(values):
    n = len(values)
    half = n / 2
    return values[half]

print middle(range(7))
'''


def test_integer_division_used_as_an_index_says_where_and_hints(tmp_path):
    job = write(tmp_path / "job", {"div.py": DIVISION, "div_np.py": "import numpy as np\nn = 6\n"
                                   "a = np.zeros((n / 4, 2))\n"})
    res = cli(["run", "div.py"], job)
    assert res.returncode == 1
    assert "TypeError: list indices must be integers or slices, not float" in res.stderr
    assert ("caffe-compat: div.py:6 (translated from Python 2): a float was used where an integer is "
            "needed") in res.stderr
    assert "divides with '/' at line 5: where an integer result is meant, write '//'" in res.stderr
    res = cli(["run", "div_np.py"], job)  # Python 3 source too: the hint does not need a translation
    assert "div_np.py:3: a float was used" in res.stderr and "line 3" in res.stderr


def test_integer_division_hint_inside_a_python2_layer(tmp_path):
    """The layer's error is wrapped (it names the layer); the note still names the layer's line."""
    layer = PY2_LAYER.replace("        self.diff[...] = bottom[0].data - bottom[1].data\n",
                              "        half = np.zeros(bottom[0].num / 3)\n"
                              "        self.diff[...] = bottom[0].data - bottom[1].data\n")
    job = write(tmp_path / "job", {"halfloss.py": layer,
                                   "net.prototxt": NET.format(loss=PY_LOSS % "halfloss"),
                                   "go.py": "import caffe\nnet = caffe.Net('net.prototxt', caffe.TRAIN)\n"
                                            "net.forward()\n"})
    res = cli(["run", "go.py"], job)
    assert res.returncode == 1
    assert 'Python layer "loss"' in res.stderr or 'layer "loss"' in res.stderr
    line = 1 + layer.splitlines().index("        half = np.zeros(bottom[0].num / 3)")
    assert f"halfloss.py:{line} (translated from Python 2): a float was used" in res.stderr
    assert f"divides with '/' at lines {line}, {line + 2}" in res.stderr


def test_run_module_form_translates_too(tmp_path):
    job = write(tmp_path / "job", {"oldmod.py": "print 'as module', __name__\nfor i in xrange(2): print i\n"})
    res = cli(["run", "-m", "oldmod"], job)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "as module __main__\n0\n1\n"


def test_import_caffe_compat_patches_nothing():
    code = textwrap.dedent("""
        import sys, numpy
        hooks, meta = list(sys.path_hooks), list(sys.meta_path)
        import caffe_compat, caffe_compat.commands.run, caffe_compat.caffeinit
        assert sys.path_hooks == hooks and sys.meta_path == meta, (sys.path_hooks, sys.meta_path)
        assert not hasattr(numpy, "float") and 'fissix' not in sys.modules
        try:
            numpy.fromstring(b"ab", dtype=numpy.uint8)
            raise SystemExit("binary fromstring works: numpy was patched")
        except ValueError:
            pass
        print("untouched")
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert res.returncode == 0 and "untouched" in res.stdout, res.stderr


# ------------------------------------------------------------------ in process
@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CAFFE_COMPAT_PY2_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(translate, "translated_files", {})
    return tmp_path / "cache"


@pytest.mark.parametrize("source,fixers,expected", [
    ("print 'x', 1\n", ["print"], "print('x', 1)\n"),
    ("try:\n    pass\nexcept IOError, e:\n    pass\n", ["except"], "except IOError as e:"),
    ("for k, v in d.iteritems(): pass\n", ["dict"], "d.items()"),
    ("for i in xrange(3): pass\nprint i\n", ["xrange", "print"], "range(3)"),
    ("raise ValueError, 'bad'\n", ["raise"], "raise ValueError('bad')"),
    ("if a <> b: x = `a`\n", ["ne", "repr"], "a != b: x = repr(a)"),
    ("n = 0777\nm = 10L\n", ["numliterals"], "n = 0o777\nm = 10"),
    ("import cPickle\nexec 'x=1'\n", ["imports", "exec"], 'import pickle\nexec("x=1")'.replace('"', "'")),
], ids=["print", "except", "iteritems", "xrange", "raise", "ne-repr", "octal-long", "imports-exec"])
def test_translation_table(cache, source, fixers, expected):
    t = translate.translate(source, "/user/mod.py")
    assert expected in t.text
    assert set(fixers) <= set(t.fixers)
    assert t.line_map is None and not t.cached


def test_cache_key_is_the_source_and_path(cache):
    first = translate.translate("print 1\n", "/a.py")
    assert translate.translate("print 1\n", "/a.py").cached
    assert not translate.translate("print 2\n", "/a.py").cached
    assert not translate.translate("print 1\n", "/b.py").cached
    assert sorted(p.suffix for p in cache.iterdir()) == [".json"] * 3 + [".py"] * 3
    assert first.text == "print(1)\n"


def test_default_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("CAFFE_COMPAT_PY2_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert translate.cache_dir() == tmp_path / "caffe_compat" / "py2"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert translate.cache_dir() == Path.home() / ".cache" / "caffe_compat" / "py2"


def test_mixed_tabs_are_read_as_python2_did(cache):
    source = "def f(x):\n    if x:\n\treturn 1\n    return 2\n"  # a tab is 8 columns in Python 2
    code, t = translate.compile_source(source, "/user/tabs.py")
    assert t is not None and t.fixers == ["tabs"]
    scope: dict = {}
    exec(code, scope)
    assert scope["f"](1) == 1 and scope["f"](0) == 2


def test_python3_source_is_compiled_as_it_is(cache):
    code, t = translate.compile_source("print('a', 'b', sep='')\n", "/user/three.py")
    assert t is None and not cache.exists()


def test_neither_python3_nor_python2_raises_the_python3_error(cache):
    with pytest.raises(SyntaxError) as info:
        translate.compile_source("def f(:\n    pass\n", "/user/broken.py")
    assert info.value.filename == "/user/broken.py" and info.value.lineno == 1
    assert any("not Python 2 either" in n for n in getattr(info.value, "__notes__", []))


def test_line_map_and_code_lines_follow_the_original(cache):
    code, t = translate.compile_source(LINE_SHIFT, "/user/shift.py")
    assert t is not None and t.line_map is not None and len(t.line_map) == len(t.text.splitlines())
    lines = {ln for _, _, ln in code.co_lines() if ln}
    for c in code.co_consts:
        if hasattr(c, "co_lines"):
            lines |= {ln for _, _, ln in c.co_lines() if ln}
    assert lines <= set(range(1, len(LINE_SHIFT.splitlines()) + 1))
    assert max(lines) == 7


@pytest.fixture
def aliases():
    numpy_aliases.install()
    yield
    numpy_aliases.uninstall()


@pytest.mark.parametrize("name,builtin", sorted(numpy_aliases.ALIASES.items()))
def test_numpy_aliases_are_the_builtins_and_logged_once(aliases, caplog, name, builtin):
    with caplog.at_level("INFO", logger="caffe_compat"):
        first, second = getattr(np, name), getattr(np, name)
    defined = name in np.__dict__  # NumPy 2 defines np.bool and np.long again: NumPy's wins
    assert first is second is (np.__dict__[name] if defined else builtin)
    assert caplog.text.count(f"np.{name} is not in NumPy") == (0 if defined else 1)


def test_numpy_keeps_its_own_behaviour_with_the_aliases(aliases):
    assert np.linalg.norm(np.ones(4)) == 2.0 and np.fft is not None
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        np.no_such_name  # noqa: B018
    raw = np.arange(3, dtype=np.int32).tobytes()
    got = np.fromstring(raw, dtype=np.int32)
    assert got.tolist() == [0, 1, 2] and got.flags.writeable
    assert np.fromstring("1 2 3", dtype=int, sep=" ").tolist() == [1, 2, 3]


def test_numpy_aliases_uninstall_restores_numpy():
    before = dict(np.__dict__)
    numpy_aliases.install()
    numpy_aliases.uninstall()
    assert np.__dict__.get("__getattr__") is before.get("__getattr__")
    assert np.fromstring is before["fromstring"]
    assert not hasattr(np, "float")
