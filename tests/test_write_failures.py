"""Every writer fails the same clear way and leaves nothing behind (caffe_compat/atomic.py).

Writers x faults: a missing directory, a special file system (/proc), a
read-only file system, a full disk (mocked: a test cannot fill the disk) and
a file over the size limit (RLIMIT_FSIZE, in a subprocess). Each must raise a
``WriteError`` (a ``CaffeCompatError`` and an ``OSError``) whose message names
the *target* path, never the hidden temporary, and leave no temporary behind.
Also: files get the user's umask, stale temporaries of dead writers are
removed by the next writer, a SIGKILL mid-snapshot leaves no garbage that
grows with each crash, and the snapshot-prefix check really probes.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import caffe_compat as caffe
from caffe_compat import atomic
from caffe_compat.data import DBWriter
from caffe_compat.errors import CaffeCompatError, SolverError, WriteError
from caffe_compat.io import array_to_datum

ROOT = Path(__file__).resolve().parent.parent

NET = """name: "n"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def _db(path: Path, n: int = 2) -> str:
    with DBWriter(path, "lmdb") as w:
        for i in range(n):
            w.put(f"{i:08d}", array_to_datum(np.full((1, 2, 2), i, np.uint8), i).SerializeToString())
    return str(path)


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text(NET)
    return tmp_path


# ------------------------------------------------------------------ writers
# Each takes the target path and writes it.
def _save(target):
    caffe.Net("net.prototxt", caffe.TEST).save(str(target))


def _save_hdf5(target):
    caffe.Net("net.prototxt", caffe.TEST).save_hdf5(str(target))


def _snapshot(fmt):
    def write(target):
        prefix = str(target)[: -len("_iter_0.caffemodel" + (".h5" if fmt == "HDF5" else ""))]
        spec = caffe.proto.caffe_pb2.SolverParameter(net="net.prototxt", base_lr=0.1, lr_policy="fixed",
                                                     snapshot_prefix=prefix)
        spec.snapshot_format = getattr(spec, fmt)
        caffe.get_solver(spec).snapshot()
    return write


def _hdf5_output(target):
    caffe.Net(f'layer {{ name: "in" type: "Input" top: "a" top: "b" input_param {{ shape {{ dim: 2 }} '
              f'shape {{ dim: 2 }} }} }}\nlayer {{ name: "out" type: "HDF5Output" bottom: "a" bottom: "b" '
              f'hdf5_output_param {{ file_name: "{target}" }} }}', caffe.TEST)


def _convert_imageset(target):
    from PIL import Image

    from caffe_compat.commands.convert_imageset import convert_imageset

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save("a.png")
    Path("list.txt").write_text("a.png 1\n")
    convert_imageset("", "list.txt", str(target), progress=False)


def _compute_image_mean(target):
    from caffe_compat.commands.compute_image_mean import compute_image_mean

    compute_image_mean(_db(Path("src_db")), str(target), progress=False)


def _extract_features(target):
    from caffe_compat.commands.extract_features import extract_features

    db = _db(Path("src_db"))
    Path("feat.prototxt").write_text(
        f'layer {{ name: "d" type: "Data" top: "data" data_param {{ source: "{db}" backend: LMDB '
        'batch_size: 2 } }\nlayer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
        "inner_product_param { num_output: 2 } }\n")
    caffe.Net("feat.prototxt", caffe.TEST).save("feat.caffemodel")
    extract_features("feat.caffemodel", "feat.prototxt", ["ip"], [str(target)], 1, "lmdb", progress=False)


def _upgrade_net(binary):
    def write(target):
        from caffe_compat.commands.upgrade_net_proto_text import run_upgrade

        if binary:
            caffe.Net("net.prototxt", caffe.TEST).save("in.caffemodel")
        run_upgrade("in.caffemodel" if binary else "net.prototxt", str(target), binary)
    return write


def _upgrade_solver(target):
    from caffe_compat.commands.upgrade_solver_proto_text import setup

    Path("s.prototxt").write_text('net: "net.prototxt" base_lr: 0.1 lr_policy: "fixed" solver_type: SGD\n')
    setup(argparse.ArgumentParser())(argparse.Namespace(input="s.prototxt", output=str(target)))


WRITERS = [
    ("net.save", _save, "out.caffemodel"),
    ("net.save_hdf5", _save_hdf5, "out.caffemodel.h5"),
    ("snapshot", _snapshot("BINARYPROTO"), "snap_iter_0.caffemodel"),
    ("snapshot-hdf5", _snapshot("HDF5"), "snap_iter_0.caffemodel.h5"),
    ("HDF5Output", _hdf5_output, "out.h5"),
    ("convert_imageset", _convert_imageset, "out_db"),
    ("compute_image_mean", _compute_image_mean, "mean.binaryproto"),
    ("extract_features", _extract_features, "feat_db"),
    ("upgrade_net_proto_text", _upgrade_net(False), "up.prototxt"),
    ("upgrade_net_proto_binary", _upgrade_net(True), "up.caffemodel"),
    ("upgrade_solver_proto_text", _upgrade_solver, "up_solver.prototxt"),
]
W_IDS = [w[0] for w in WRITERS]


class _FailingOS:
    """``os`` as caffe_compat.atomic sees it, where ``call`` fails with ``code`` for the
    files of one target (a setup step writing other files is not disturbed)."""

    def __init__(self, name, call, code):
        self._name, self._call, self._code = name, call, code
        self._fds = set()

    def _fail(self):
        raise OSError(self._code, os.strerror(self._code))

    def open(self, path, *args, **kwargs):
        mine = self._name in os.fspath(path)
        if mine and self._call == "open":
            self._fail()
        fd = os.open(path, *args, **kwargs)
        if mine:
            self._fds.add(fd)
        return fd

    def write(self, fd, data):
        if fd in self._fds and self._call == "write":
            self._fail()
        return os.write(fd, data)

    def mkdir(self, path, *args, **kwargs):
        if self._name in os.fspath(path) and self._call == "mkdir":
            self._fail()
        return os.mkdir(path, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(os, name)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def _check(info, target, *words):
    message = str(info.value)
    assert str(target) in message, message
    assert ".tmp" not in message, message
    for word in words:
        assert word in message, message
    assert isinstance(info.value, CaffeCompatError) and isinstance(info.value, OSError)


# ------------------------------------------------------------------ faults
@pytest.mark.parametrize("name, write, target", WRITERS, ids=W_IDS)
def test_missing_directory(work, name, write, target):
    if name.startswith("snapshot"):  # the solver's probe refuses it first, see below
        pytest.skip("the snapshot prefix is probed at construction (test_snapshot_prefix_is_probed)")
    path = work / "no" / "such" / "dir" / target
    with pytest.raises(WriteError) as info:
        write(path)
    _check(info, path, "does not exist", str(work / "no" / "such" / "dir"))


@pytest.mark.parametrize("name, write, target", WRITERS, ids=W_IDS)
def test_special_file_system(work, name, write, target):
    if name.startswith("snapshot"):
        pytest.skip("the snapshot prefix is probed at construction (test_snapshot_prefix_is_probed)")
    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc on this system")
    path = Path("/proc") / target
    with pytest.raises(WriteError) as info:
        write(path)
    _check(info, path)


FAULTS = [  # (id, the call of os that fails, errno, words of the message)
    ("read-only-fs", "open", errno.EROFS, ["read-only file system"]),
    ("disk-full", "write", errno.ENOSPC, ["no space left"]),
    ("too-large", "write", errno.EFBIG, ["file too large"]),
    ("quota", "write", errno.EDQUOT, ["quota"]),
]
DB_WRITERS = {"convert_imageset", "extract_features"}  # their bytes are written by LMDB itself


@pytest.mark.parametrize("fault, call, code, words", FAULTS, ids=[f[0] for f in FAULTS])
@pytest.mark.parametrize("name, write, target", WRITERS, ids=W_IDS)
def test_fault_while_writing(work, monkeypatch, name, write, target, fault, call, code, words):
    if name in DB_WRITERS:
        if call == "write":
            pytest.skip("LMDB writes the database itself: see test_database_over_the_size_limit")
        call = "mkdir"
    path = work / target
    monkeypatch.setattr(atomic, "os", _FailingOS(target, call, code))
    with pytest.raises(WriteError) as info:
        write(path)
    _check(info, path, *words)
    assert not path.exists()
    assert _leftovers(work) == []


def test_database_over_the_size_limit(tmp_path):
    """A real EFBIG (RLIMIT_FSIZE) inside LMDB: a WriteError naming the database, nothing left."""
    code = textwrap.dedent(f"""
        import resource, sys, numpy as np
        sys.path.insert(0, {str(ROOT)!r})
        from caffe_compat.data import DBWriter
        from caffe_compat.errors import WriteError
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
        try:
            with DBWriter("big_db", "lmdb") as w:
                for i in range(64):
                    w.put(f"{{i:08d}}", bytes(4096))
        except WriteError as exc:
            print("WriteError:", exc)
        import os
        print(sorted(os.listdir(".")))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert "WriteError:" in out.stdout and "big_db" in out.stdout, out.stdout + out.stderr
    assert out.stdout.strip().endswith("[]"), out.stdout


def test_file_over_the_size_limit(tmp_path):
    """A real EFBIG (RLIMIT_FSIZE) for net.save and save_hdf5: WriteError, no temporary left."""
    (tmp_path / "net.prototxt").write_text(NET.replace("num_output: 2", "num_output: 4000"))
    code = textwrap.dedent(f"""
        import resource, sys, os
        sys.path.insert(0, {str(ROOT)!r})
        import caffe_compat as caffe
        from caffe_compat.errors import WriteError
        net = caffe.Net("net.prototxt", caffe.TEST)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))
        for save, target in ((net.save, "big.caffemodel"), (net.save_hdf5, "big.h5")):
            try:
                save(target)
            except WriteError as exc:
                print("WriteError:", exc.errno, exc)
        print(sorted(os.listdir(".")))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 3, out.stdout + out.stderr
    for line, target in zip(lines, ("big.caffemodel", "big.h5")):
        assert line.startswith(f"WriteError: {errno.EFBIG} ") and f'"{target}"' in line
        assert "file too large" in line
    assert lines[2] == "['net.prototxt']"


# ---------------------------------------------------------- the mechanism
def test_target_is_a_directory(work):
    (work / "d").mkdir()
    with pytest.raises(WriteError, match=r'cannot write ".*d": it is a directory'):
        atomic.write_bytes(work / "d", b"x")


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)],
                         ids=["022", "002", "077"])
@pytest.mark.parametrize("name, write, target", [w for w in WRITERS if w[0] not in DB_WRITERS],
                         ids=[w[0] for w in WRITERS if w[0] not in DB_WRITERS])
def test_files_follow_the_umask(work, name, write, target, umask, expected):
    old = os.umask(umask)
    try:
        write(work / target)
    finally:
        os.umask(old)
    assert oct((work / target).stat().st_mode & 0o777) == oct(expected)


def test_overwriting_keeps_the_mode(work):
    path = work / "w.caffemodel"
    path.write_bytes(b"old")
    path.chmod(0o640)
    _save(path)
    assert path.stat().st_mode & 0o777 == 0o640 and path.read_bytes() != b"old"


def test_writes_through_a_symlink(work):
    (work / "real.caffemodel").write_bytes(b"old")
    (work / "link.caffemodel").symlink_to("real.caffemodel")
    _save(work / "link.caffemodel")
    assert (work / "link.caffemodel").is_symlink()
    assert (work / "real.caffemodel").read_bytes() != b"old"


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporaries_of_dead_writers_are_removed(work):
    dead = _dead_pid()
    stale = [work / f".out.caffemodel.{dead}-0badc0de.tmp", work / f".out.caffemodel.{dead}-00000001.tmp"]
    for p in stale:
        p.write_bytes(b"half a model")
    unrelated = [work / ".other.caffemodel.1-deadbeef.tmp", work / "keep.tmp", work / ".out.caffemodel.tmp"]
    for p in unrelated:
        p.write_bytes(b"not ours")
    _save(work / "out.caffemodel")
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in unrelated)


def test_a_live_writers_temporary_is_kept(work):
    """A temporary whose writer still holds its lock is not touched; once it dies, it goes."""
    code = textwrap.dedent("""
        import fcntl, os, time
        name = f".out.caffemodel.{os.getpid()}-12345678.tmp"
        fd = os.open(name, os.O_WRONLY | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print(name, flush=True)
        time.sleep(120)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=work, stdout=subprocess.PIPE, text=True)
    try:
        live = work / holder.stdout.readline().strip()
        assert live.exists()
        assert atomic.clean_stale(work, "out.caffemodel.") == []
        _save(work / "out.caffemodel")
        assert live.exists()
    finally:
        holder.kill()
        holder.wait()
    assert atomic.clean_stale(work, "out.caffemodel.") == [str(live)]


def test_snapshot_prefix_is_probed(work):
    """Caffe's CheckSnapshotWritePermissions creates and deletes a file; os.access says yes to root."""
    for prefix in ("/proc/snap", "missing/dir/snap"):
        (work / "s.prototxt").write_text(f'net: "net.prototxt" base_lr: 0.1 lr_policy: "fixed" snapshot: 10 '
                                         f'snapshot_prefix: "{prefix}"\n')
        with pytest.raises(SolverError) as info:
            caffe.get_solver("s.prototxt")
        message = str(info.value)
        assert f"cannot write to snapshot prefix '{prefix}'" in message and "s.prototxt" in message
    assert _leftovers(work) == [] and sorted(p.name for p in work.iterdir()) == ["net.prototxt", "s.prototxt"]


def test_a_failed_database_leaves_nothing(work):
    from caffe_compat.commands.convert_imageset import convert_imageset
    from caffe_compat.errors import DataError
    from PIL import Image

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save("a.png")
    Image.fromarray(np.zeros((5, 4, 3), np.uint8)).save("b.png")
    Path("list.txt").write_text("a.png 0\nb.png 1\n")
    with pytest.raises(DataError, match="check_size"):
        convert_imageset("", "list.txt", "db", check_size=True, progress=False)
    assert sorted(p.name for p in work.iterdir()) == ["a.png", "b.png", "list.txt", "net.prototxt"]


SNAPSHOT_LOOP = """
import sys
sys.path.insert(0, {root!r})
import caffe_compat as caffe
s = caffe.get_solver("solver.prototxt")
print("ready", flush=True)
while True:
    s.snapshot()
"""


@pytest.mark.parametrize("fmt", ["BINARYPROTO", pytest.param("HDF5", marks=pytest.mark.slow)])
def test_sigkill_mid_snapshot_leaves_no_growing_garbage(tmp_path, fmt):
    """Kill a process that snapshots in a loop, several times: at most the killed write's
    temporaries remain, and the next solver removes them."""
    (tmp_path / "net.prototxt").write_text(NET.replace("dim: 2 dim: 3", "dim: 2 dim: 300")
                                           .replace("num_output: 2", "num_output: 2000"))
    (tmp_path / "solver.prototxt").write_text(
        f'net: "net.prototxt" base_lr: 0.1 lr_policy: "fixed" snapshot: 1000 snapshot_prefix: "snap" '
        f"snapshot_format: {fmt}\n")
    (tmp_path / "loop.py").write_text(SNAPSHOT_LOOP.format(root=str(ROOT)))
    rng = np.random.default_rng(0)
    for _ in range(3):
        p = subprocess.Popen([sys.executable, "loop.py"], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.05, 0.4)))
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert len(_leftovers(tmp_path)) <= 2, _leftovers(tmp_path)  # the killed write's, at most
    for p in tmp_path.iterdir():  # whatever is under a final name is whole
        if p.name.endswith((".caffemodel", ".caffemodel.h5")):
            caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST, weights=str(p))
    os.chdir(tmp_path)
    caffe.get_solver("solver.prototxt")  # the next start cleans up
    assert _leftovers(tmp_path) == []
