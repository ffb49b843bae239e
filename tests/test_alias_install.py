"""``caffe-compat alias install | uninstall | status`` in a throw-away virtual environment.

The environment is made with ``venv`` (no pip, so it takes a fraction of a second) and
sees this environment's packages through one ``.pth`` line; ``alias install`` writes
into *its* site-packages, and ``python script.py`` with ``import caffe`` and
``from caffe.proto import caffe_pb2`` then runs there on caffe_compat.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from caffe_compat import alias_install

SCRIPT = """
import sys
import caffe
from caffe.proto import caffe_pb2
import caffe.io
net_param = caffe_pb2.NetParameter(name="x")
n = caffe.NetSpec()
n.data = caffe.layers.Input(shape=dict(dim=[1, 2]))
assert "Input" in str(n.to_proto())
print("caffe is", caffe.__name__, caffe_pb2.NetParameter.__module__, caffe.io.__name__, net_param.name)
"""


class Env:
    def __init__(self, root: Path) -> None:
        self.root = root
        venv.create(root, with_pip=False, symlinks=True)
        self.python = root / "bin" / "python"
        self.site = Path(self.run("-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
                         .stdout.strip())
        ours = sysconfig.get_paths()["purelib"]  # where caffe_compat and torch are installed
        (self.site / "_parent_env.pth").write_text(f"import site; site.addsitedir({ours!r})\n")

    def run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env["GLOG_minloglevel"] = "2"
        return subprocess.run([str(self.python), *args], capture_output=True, text=True, env=env,
                              cwd=cwd or self.root, timeout=300)

    def alias(self, *args: str) -> subprocess.CompletedProcess:
        return self.run("-m", "caffe_compat", "alias", *args)


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path / "env")
    (tmp_path / "script.py").write_text(SCRIPT)
    e.script = tmp_path / "script.py"  # type: ignore[attr-defined]
    return e


def test_install_run_uninstall(env):
    status = env.alias("status")
    assert status.returncode == 0 and "not installed" in status.stdout
    before = env.run(str(env.script))
    assert before.returncode == 1 and "No module named 'caffe'" in before.stderr

    done = env.alias("install")
    assert done.returncode == 0, done.stderr
    assert "installed" in done.stdout and str(env.site / "caffe_compat_alias.pth") in done.stdout
    ran = env.run(str(env.script))
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "caffe is caffe_compat caffe_pb2 caffe_compat.io x"
    # start-up of other programs does not load caffe_compat (nor torch)
    plain = env.run("-c", "import sys; print('caffe_compat' in sys.modules, 'torch' in sys.modules)")
    assert plain.stdout.strip() == "False False"
    again = env.alias("install")
    assert again.returncode == 0 and "already installed" in again.stdout
    assert "installed: plain `python`" in env.alias("status").stdout

    gone = env.alias("uninstall")
    assert gone.returncode == 0 and "removed" in gone.stdout, gone.stderr
    left = [p.name for p in env.site.iterdir() if p.name.startswith(("caffe_compat_alias", "_caffe_compat"))]
    assert left == []
    assert env.run(str(env.script)).returncode == 1
    assert "nothing to remove" in env.alias("uninstall").stdout


def test_refuses_to_shadow_a_real_pycaffe_unless_forced(env):
    real = env.site / "caffe"
    real.mkdir()
    (real / "__init__.py").write_text("print('the real pycaffe')\n")
    (real / "_caffe.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    refused = env.alias("install")
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and refused.stderr.startswith("caffe-compat alias: error: ")
    assert "a compiled pycaffe at " + str(real) in refused.stderr and "--force" in refused.stderr
    assert not (env.site / "caffe_compat_alias.pth").exists()

    forced = env.alias("install", "--force")
    assert forced.returncode == 0 and "shadows the other `caffe`" in forced.stdout, forced.stderr
    ran = env.run(str(env.script))
    assert ran.returncode == 0 and ran.stdout.startswith("caffe is caffe_compat"), ran.stderr
    assert env.alias("uninstall").returncode == 0
    back = env.run("-c", "import caffe")
    assert back.stdout.strip() == "the real pycaffe" and (real / "__init__.py").exists()


def test_foreign_files_are_not_overwritten(env):
    (env.site / alias_install.PTH_FILE).write_text("import something_else\n")
    done = env.alias("install")
    assert done.returncode == 1 and "not written by caffe-compat" in done.stderr
    assert (env.site / alias_install.PTH_FILE).read_text() == "import something_else\n"


def test_site_dir_is_the_active_environments_purelib():
    assert alias_install.site_dir() == Path(sysconfig.get_paths()["purelib"])
    assert str(alias_install.site_dir()).startswith(sys.prefix)
