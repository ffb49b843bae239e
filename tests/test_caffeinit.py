"""``.caffeinit`` registries and the search for Python layer modules.

Each test runs in a fresh current directory and HOME, with its own module
names (modules are cached per process).
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest

import caffe_compat as caffe
from caffe_compat import caffeinit
from caffe_compat.caffeinit import CaffeInitError
from caffe_compat.errors import UnknownLayerTypeError
from caffe_compat.python_layer import PythonLayerClassError, PythonLayerError, PythonLayerImportError

_ids = itertools.count()

LAYER_SOURCE = '''
import caffe

class {cls}(caffe.Layer):
    def setup(self, bottom, top):
        self.k = float(self.param_str or {k})

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.k * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = self.k * top[0].diff
'''


@pytest.fixture
def env(tmp_path, monkeypatch):
    """cwd = tmp/work, HOME = tmp/home, no CAFFE_ROOT / CAFFE_COMPAT_INIT."""
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("CAFFE_ROOT", raising=False)
    monkeypatch.delenv(caffeinit.ENV_VAR, raising=False)
    return tmp_path


def unique(prefix: str = "ci_layer") -> str:
    return f"{prefix}_{os.getpid()}_{next(_ids)}"


def write_layer(path: Path, cls: str = "Times", k: float = 3.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(LAYER_SOURCE.format(cls=cls, k=k))
    return path


def net_text(layer: str) -> str:
    return ('layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }\n'
            + layer + "\n")


def build(text: str, where: Path | None = None) -> caffe.Net:
    if where is None:
        return caffe.Net(text, caffe.TEST)
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_text(text)
    return caffe.Net(str(where), caffe.TEST)


def scale_of(net: caffe.Net) -> float:
    net.blobs["data"].data[...] = 1
    return float(net.forward()["out"].ravel()[0])


# ------------------------------------------------------------- registration
def test_registered_name_as_python_param(env):
    name = unique()
    write_layer(env / "work" / "layers" / "impl.py", "Times", 3)
    (env / "work" / ".caffeinit").write_text(f"python_layer {name} Times layers/impl.py\n")
    net = build(net_text(f'layer {{ name: "py" type: "Python" bottom: "data" top: "out" '
                         f'python_param {{ module: "{name}" layer: "Times" }} }}'))
    assert scale_of(net) == 3


def test_registered_name_as_layer_type(env):
    name = unique()
    write_layer(env / "work" / "impl.py", "Times", 3)
    (env / "work" / ".caffeinit").write_text(f"python_layer {name} Times impl.py\n")
    net = build(net_text(f'layer {{ name: "py" type: "{name}" bottom: "data" top: "out" '
                         'python_param { param_str: "5" } }'))
    assert scale_of(net) == 5
    assert net._nodes[1].layer.type == name
    net.blobs["out"].diff[...] = 1
    net.forward()


def test_class_defaults_to_the_registered_one(env):
    name = unique()
    write_layer(env / "work" / "impl.py", "Times", 4)
    (env / "work" / ".caffeinit").write_text(f"python_layer {name} Times impl.py\n")
    net = build(net_text(f'layer {{ name: "py" type: "Python" bottom: "data" top: "out" '
                         f'python_param {{ module: "{name}" }} }}'))
    assert scale_of(net) == 4


def test_home_registry_paths_relative_to_it(env):
    name = unique()
    write_layer(env / "home" / "mylayers" / "impl.py", "Times", 6)
    (env / "home" / ".caffeinit").write_text(f"# my layers\n\npython_layer {name} Times mylayers/impl.py\n")
    assert scale_of(build(net_text(f'layer {{ name: "py" type: "{name}" bottom: "data" top: "out" }}'))) == 6


def test_current_directory_wins_over_home(env):
    name = unique()
    write_layer(env / "work" / "near.py", "Near", 2)
    write_layer(env / "home" / "far.py", "Far", 9)
    (env / "work" / ".caffeinit").write_text(f"python_layer {name} Near near.py\n")
    (env / "home" / ".caffeinit").write_text(f"python_layer {name} Far far.py\n")
    entry = caffeinit.lookup(name)
    assert entry.class_name == "Near" and entry.source == Path.cwd() / ".caffeinit"
    assert scale_of(build(net_text(f'layer {{ name: "py" type: "{name}" bottom: "data" top: "out" }}'))) == 2


@pytest.mark.parametrize("var", ["CAFFE_COMPAT_INIT", "CAFFE_ROOT"])
def test_registry_from_environment(env, monkeypatch, var):
    name = unique()
    reg = env / "elsewhere"
    write_layer(reg / "impl.py", "Times", 7)
    (reg / ".caffeinit").write_text(f"python_layer {name} Times impl.py\n")
    monkeypatch.setenv(var, str(reg / ".caffeinit") if var == caffeinit.ENV_VAR else str(reg))
    assert scale_of(build(net_text(f'layer {{ name: "py" type: "{name}" bottom: "data" top: "out" }}'))) == 7


def test_environment_naming_a_missing_file(env, monkeypatch):
    monkeypatch.setenv(caffeinit.ENV_VAR, str(env / "nope.caffeinit"))
    with pytest.raises(CaffeInitError, match="CAFFE_COMPAT_INIT names .*nope.caffeinit"):
        caffeinit.entries()


def test_quoted_path_with_spaces_and_comments(env):
    name = unique()
    write_layer(env / "work" / "my layers" / "impl.py", "Times", 8)
    (env / "work" / ".caffeinit").write_text(
        f'   # a comment\npython_layer {name} Times "my layers/impl.py"  # trailing comment\n')
    assert scale_of(build(net_text(f'layer {{ name: "py" type: "{name}" bottom: "data" top: "out" }}'))) == 8


def test_registry_edits_are_picked_up(env):
    name = unique()
    write_layer(env / "work" / "impl.py", "Times", 1)
    init = env / "work" / ".caffeinit"
    init.write_text("")
    assert caffeinit.lookup(name) is None
    init.write_text(f"python_layer {name} Times impl.py\n")
    os.utime(init, ns=(1, 10**18))  # a new mtime even on coarse file systems
    assert caffeinit.lookup(name).class_name == "Times"


def test_tutorial_style_home_line_finds_the_file_in_the_current_directory(env):
    """~/.caffeinit says 'my_layer.py' but the file sits in the project directory."""
    name = unique()
    write_layer(env / "work" / f"{name}.py", "Times", 2)
    (env / "home" / ".caffeinit").write_text(f"python_layer {name} Times {name}.py\n")
    assert scale_of(build(net_text(f'layer {{ name: "py" type: "{name}" bottom: "data" top: "out" }}'))) == 2


# ------------------------------------------------------------ malformed lines
MALFORMED = [
    ("python_layer onlyname Cls", "expected 'python_layer <name> <ClassName> <file.py>' (4 words), got 3"),
    ("python_lyer x Cls x.py", "unknown directive 'python_lyer'"),
    ("python_layer my-layer Cls x.py", "layer name 'my-layer' must be a Python identifier"),
    ("python_layer x 9Cls x.py", "class name '9Cls' is not a Python identifier"),
    ("python_layer x Cls x.txt", "'x.txt' should be a Python file"),
    ("python_layer x Cls 'x.py", "cannot split the line"),
    ("python_layer x Cls x.py\npython_layer x Other y.py", "'x' is registered twice (first at line 2)"),
]


@pytest.mark.parametrize("text, message", MALFORMED, ids=[
    "three-words", "typo-directive", "bad-name", "bad-class", "not-py", "open-quote", "duplicate"])
def test_malformed_line_names_file_and_line(env, text, message):
    init = env / "work" / ".caffeinit"
    init.write_text("# header\n" + text + "\n")
    line = 3 if "\n" in text else 2
    with pytest.raises(CaffeInitError) as info:
        caffeinit.entries()
    assert f"{init}:{line}:" in str(info.value)
    assert message in str(info.value)


def test_malformed_registry_fails_a_net_that_needs_it(env):
    (env / "work" / ".caffeinit").write_text("python_layer broken\n")
    with pytest.raises(CaffeInitError, match=r"\.caffeinit:1:"):
        build(net_text('layer { name: "py" type: "NotAType" bottom: "data" top: "out" }'))


def test_registered_file_missing(env):
    name = unique()
    (env / "work" / ".caffeinit").write_text(f"python_layer {name} Times gone.py\n")
    with pytest.raises(PythonLayerImportError) as info:
        build(net_text(f'layer {{ name: "py" type: "{name}" bottom: "data" top: "out" }}'))
    assert ".caffeinit:1 registers" in str(info.value) and "gone.py" in str(info.value)
    assert 'layer "py"' in str(info.value)


def test_unknown_type_is_still_unknown(env):
    with pytest.raises(UnknownLayerTypeError, match='unknown layer type "NoSuchType"'):
        build(net_text('layer { name: "x" type: "NoSuchType" bottom: "data" top: "out" }'))


# -------------------------------------------------------- module search
def test_module_found_in_the_prototxt_directory(env):
    name = unique()
    write_layer(env / "models" / f"{name}.py", "Times", 5)
    net = build(net_text(f'layer {{ name: "py" type: "Python" bottom: "data" top: "out" '
                         f'python_param {{ module: "{name}" layer: "Times" }} }}'),
                env / "models" / "net.prototxt")
    assert scale_of(net) == 5


def test_module_found_in_the_current_directory(env):
    name = unique()
    write_layer(env / "work" / f"{name}.py", "Times", 6)
    net = build(net_text(f'layer {{ name: "py" type: "Python" bottom: "data" top: "out" '
                         f'python_param {{ module: "{name}" layer: "Times" }} }}'),
                env / "models" / "net.prototxt")
    assert scale_of(net) == 6


def test_module_given_as_a_file_path(env):
    name = unique()
    write_layer(env / "models" / "sub" / f"{name}.py", "Times", 4)
    net = build(net_text(f'layer {{ name: "py" type: "Python" bottom: "data" top: "out" '
                         f'python_param {{ module: "sub/{name}.py" layer: "Times" }} }}'),
                env / "models" / "net.prototxt")
    assert scale_of(net) == 4


def test_module_not_found_lists_where_it_looked(env):
    (env / "work" / ".caffeinit").write_text("")
    with pytest.raises(PythonLayerImportError) as info:
        build(net_text('layer { name: "py" type: "Python" bottom: "data" top: "out" '
                       'python_param { module: "no_such_layer_module" layer: "X" } }'),
              env / "models" / "n.prototxt")
    msg = str(info.value)
    assert isinstance(info.value, ImportError)
    assert 'Python layer "py"' in msg and "no_such_layer_module" in msg
    assert ".caffeinit registries" in msg and str(env / "work" / ".caffeinit") in msg
    assert "Python's import path" in msg
    assert f"current directory ({env / 'work'})" in msg
    assert f"prototxt's directory ({env / 'models'})" in msg


def test_class_not_found_lists_the_classes(env):
    name = unique()
    write_layer(env / "work" / f"{name}.py", "Times", 1)
    with pytest.raises(PythonLayerClassError) as info:
        build(net_text(f'layer {{ name: "py" type: "Python" bottom: "data" top: "out" '
                       f'python_param {{ module: "{name}" layer: "Tims" }} }}'))
    assert isinstance(info.value, AttributeError)
    assert "has no class 'Tims'" in str(info.value) and "classes it defines: Times" in str(info.value)


@pytest.mark.parametrize("python_param, message", [
    ("", "python_param.module is empty"),
    ('python_param { module: "os" }', "python_param.layer is empty"),
], ids=["no-python_param", "no-layer"])
def test_incomplete_python_param(env, python_param, message):
    with pytest.raises(PythonLayerError, match=message):
        build(net_text(f'layer {{ name: "py" type: "Python" bottom: "data" top: "out" {python_param} }}'))


@pytest.mark.parametrize("source, exc_type, text", [
    ("def broken(:\n", SyntaxError, "importing"),
    ("raise RuntimeError('no GPU for this layer')\n", RuntimeError, "no GPU for this layer"),
    ("import a_module_that_does_not_exist_xyz\n", ModuleNotFoundError, "a_module_that_does_not_exist_xyz"),
], ids=["syntax-error", "raises-at-import", "missing-dependency"])
def test_module_that_fails_to_import(env, source, exc_type, text):
    name = unique()
    (env / "work" / f"{name}.py").write_text(source)
    with pytest.raises(exc_type) as info:
        build(net_text(f'layer {{ name: "py" type: "Python" bottom: "data" top: "out" '
                       f'python_param {{ module: "{name}" layer: "X" }} }}'))
    assert 'Python layer "py"' in str(info.value) and text in str(info.value)


def test_duck_typed_class_without_caffe_layer_base(env):
    name = unique()
    (env / "work" / f"{name}.py").write_text(
        "class Plain:\n"
        "    def setup(self, bottom, top): pass\n"
        "    def reshape(self, bottom, top): top[0].reshape(*bottom[0].data.shape)\n"
        "    def forward(self, bottom, top): top[0].data[...] = bottom[0].data + 1\n")
    net = build(net_text(f'layer {{ name: "py" type: "Python" bottom: "data" top: "out" '
                         f'python_param {{ module: "{name}" layer: "Plain" }} }}'))
    net.blobs["data"].data[...] = 1
    assert np.all(net.forward()["out"] == 2)
