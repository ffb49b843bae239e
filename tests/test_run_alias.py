"""``import caffe`` → caffe_compat: ``install_alias()``, ``caffe-compat run``, and
the alias used while importing Python layer modules.

Each case runs in a fresh interpreter (the alias changes ``sys.modules``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from caffe_compat.commands.run import run_script

ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).parent / "caffe-compat"

LEGACY = """
import sys
import caffe
import caffe.io
from caffe.proto import caffe_pb2
from caffe import layers as L, params as P
import caffe_compat
assert caffe is caffe_compat
assert caffe_pb2 is caffe_compat.proto.caffe_pb2
assert caffe.io is caffe_compat.io and sys.modules["caffe.io"] is caffe_compat.io
assert caffe_compat.io.__spec__.name == "caffe_compat.io"
n = caffe.NetSpec()
n.data = L.Input(shape=dict(dim=[1, 2]))
assert "Input" in str(n.to_proto())
print("ok", __name__, sys.argv[1:])
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 0)
"""


def run(args: list[str], cwd: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CAFFE_COMPAT_INIT")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([extra_env.pop("PYTHONPATH")]
                                                       if extra_env and "PYTHONPATH" in extra_env else []))
    env.update(extra_env or {})
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def script(tmp_path: Path, text: str, name: str = "legacy.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# --------------------------------------------------------------- run command
@pytest.mark.parametrize("launcher", ["python -m caffe_compat", "caffe-compat"])
def test_run_executes_an_unmodified_script(tmp_path, launcher):
    if launcher == "caffe-compat" and not CLI.exists():
        pytest.skip(f"the console script is not installed at {CLI}")
    path = script(tmp_path, LEGACY)
    cmd = [sys.executable, "-m", "caffe_compat"] if launcher.startswith("python") else [str(CLI)]
    res = run(cmd + ["run", str(path), "7", "--flag", "-x"], tmp_path)
    assert res.returncode == 7, res.stderr
    assert "ok __main__ ['7', '--flag', '-x']" in res.stdout


@pytest.fixture
def in_process(monkeypatch, tmp_path):
    """run_script() in this interpreter; the alias state is restored afterwards."""
    from caffe_compat import alias

    was = alias.alias_installed()
    monkeypatch.chdir(tmp_path)
    yield run_script
    if not was:
        alias.uninstall_alias()


def test_run_module_form(in_process, tmp_path, capsys):
    script(tmp_path, LEGACY, "legacy_mod_for_run.py")
    assert in_process("legacy_mod_for_run", ["3"], as_module=True) == 3
    assert "ok __main__ ['3']" in capsys.readouterr().out


def test_run_restores_argv_and_path(in_process, tmp_path):
    argv, path = sys.argv[:], sys.path[:]
    in_process(str(script(tmp_path, "import sys; assert sys.argv == ['x.py', 'a']\n", "x.py")), ["a"])
    assert sys.argv == argv and sys.path == path


def test_run_script_directory_is_on_the_path(in_process, tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "helper_for_run_test.py").write_text("VALUE = 42\n")
    body = "import helper_for_run_test\nprint('helper', helper_for_run_test.VALUE)\n"
    path = script(tmp_path / "sub", body)
    assert in_process(str(path), []) == 0
    assert "helper 42" in capsys.readouterr().out


def test_run_uncaught_exception_shows_the_scripts_traceback(in_process, tmp_path, capsys):
    path = script(tmp_path, """
        import caffe
        def deep():
            raise ValueError("the script failed")
        deep()
    """, "failing.py")
    assert in_process(str(path), []) == 1
    err = capsys.readouterr().err
    assert "ValueError: the script failed" in err
    assert str(path) in err and "runpy" not in err and "run.py" not in err


@pytest.mark.parametrize("body, code, stderr", [
    ("import sys; sys.exit('bad input')", 1, "bad input"),
    ("import sys; sys.exit(0)", 0, ""),
    ("raise SystemExit(4)", 4, ""),
    ("pass", 0, ""),
], ids=["exit-message", "exit-0", "exit-4", "falls-off-the-end"])
def test_run_exit_status(in_process, tmp_path, capsys, body, code, stderr):
    assert in_process(str(script(tmp_path, body, "status.py")), []) == code
    assert stderr in capsys.readouterr().err


def test_run_missing_script(in_process, capsys):
    assert in_process("no_such_script.py", []) == 2
    assert "can't open file" in capsys.readouterr().err


def test_run_help(capsys):
    from caffe_compat.cli import main

    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "caffe-compat run [--strict] SCRIPT" in out and "--strict turns that off" in out


# --------------------------------------------------------------- install_alias
def test_no_alias_until_asked_then_install_and_uninstall(tmp_path):
    code = """
        import sys, caffe_compat
        from caffe_compat.alias import uninstall_alias
        try:
            import caffe
        except ImportError:
            print("none before")
        assert caffe_compat.install_alias() is caffe_compat
        import caffe, caffe.proto.caffe_pb2
        assert caffe is caffe_compat and caffe.proto.caffe_pb2 is caffe_compat.proto.caffe_pb2
        try:
            import caffe.no_such_submodule
        except ModuleNotFoundError as e:
            assert "caffe_compat here" in str(e), e
        uninstall_alias()
        assert "caffe" not in sys.modules and "caffe.proto" not in sys.modules
        try:
            import caffe
        except ImportError:
            print("none after")
    """
    res = run([sys.executable, "-c", textwrap.dedent(code)], tmp_path)
    assert res.stdout.split() == ["none", "before", "none", "after"], res.stderr


def fake_pycaffe(root: Path, compiled: bool) -> Path:
    """A package named caffe: 'compiled' ones have a _caffe module (like pycaffe)."""
    pkg = root / "site" / "caffe"
    pkg.mkdir(parents=True)
    if compiled:
        (pkg / "_caffe.py").write_text("class Layer:\n    pass\n")
        (pkg / "__init__.py").write_text("from ._caffe import Layer\nREAL = True\n")
    else:
        (pkg / "__init__.py").write_text("# the empty PyPI placeholder\n")
    return root / "site"


def test_install_alias_replaces_an_imported_caffe_with_a_warning(tmp_path):
    site = fake_pycaffe(tmp_path, compiled=True)
    code = """
        import warnings, caffe, caffe_compat
        from caffe_compat.alias import uninstall_alias
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            caffe_compat.install_alias()
        assert any("replacing the already imported module" in str(x.message) for x in w), w
        import caffe as again
        assert again is caffe_compat
        uninstall_alias()
        import caffe as real
        print("real" if getattr(real, "REAL", False) else "lost")
    """
    res = run([sys.executable, "-c", textwrap.dedent(code)], tmp_path, {"PYTHONPATH": str(site)})
    assert res.stdout.strip() == "real", res.stderr


LAYER_MODULE = """
import caffe
class Twice(caffe.Layer):
    def setup(self, bottom, top): pass
    def reshape(self, bottom, top): top[0].reshape(*bottom[0].data.shape)
    def forward(self, bottom, top): top[0].data[...] = 2 * bottom[0].data
    def backward(self, top, propagate_down, bottom): bottom[0].diff[...] = 2 * top[0].diff
"""

BUILD = """
import sys, numpy as np, caffe_compat
{before}
net = caffe_compat.Net('''
layer {{ name: "in" type: "Input" top: "x" input_param {{ shape {{ dim: 2 }} }} }}
layer {{ name: "py" type: "Python" bottom: "x" top: "y"
        python_param {{ module: "twice_layer" layer: "Twice" }} }}
''', caffe_compat.TEST)
net.blobs["x"].data[...] = 3
assert np.all(net.forward()["y"] == 6)
import caffe
kind = "caffe_compat" if caffe is caffe_compat else ("real" if getattr(caffe, "REAL", 0) else "other")
print("after:", kind)
"""


@pytest.mark.parametrize("installed, before, expected", [
    (None, "", "caffe_compat"),                     # nothing else: the alias stays
    ("placeholder", "", "caffe_compat"),             # an empty 'caffe' package is shadowed
    ("placeholder", "import caffe", "other"),        # ... also when imported, for the layer module only
    ("compiled", "", "real"),                       # a real pycaffe stays what 'import caffe' gives
], ids=["no-caffe", "placeholder-caffe", "placeholder-imported", "compiled-pycaffe"])
def test_layer_modules_get_caffe_compat(tmp_path, installed, before, expected):
    (tmp_path / "twice_layer.py").write_text(LAYER_MODULE)
    extra = {}
    if installed:
        extra["PYTHONPATH"] = str(fake_pycaffe(tmp_path, compiled=installed == "compiled"))
    res = run([sys.executable, "-W", "ignore", "-c", BUILD.format(before=before)], tmp_path, extra)
    assert res.returncode == 0, res.stderr
    assert f"after: {expected}" in res.stdout


def test_layer_subclassing_an_imported_real_pycaffe_is_explained(tmp_path):
    (tmp_path / "twice_layer.py").write_text(LAYER_MODULE)
    site = fake_pycaffe(tmp_path, compiled=True)
    res = run([sys.executable, "-c", BUILD.format(before="import caffe  # the real one, first")], tmp_path,
              {"PYTHONPATH": str(site)})
    assert res.returncode != 0
    assert "subclasses a compiled pycaffe's caffe.Layer" in res.stderr
    assert "install_alias()" in res.stderr
