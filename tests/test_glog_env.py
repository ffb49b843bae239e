"""glog's environment variables, as Caffe users set them (``caffe_compat.glog``).

The flags are parsed with glog's rules; log files get glog's names, header
lines and symlinks (checked against what the pip Caffe's glog wrote, see
``_GLOG_FILE_HEADER``); the ``caffe-compat`` console script and a library
script run in subprocesses with ``GLOG_minloglevel`` / ``GLOG_log_dir`` set.
"""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from caffe_compat import glog

CLI = Path(sys.executable).parent / "caffe-compat"
ROOT = Path(__file__).resolve().parents[1]

NET = """name: "glognet"
layer { name: "input" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 4 dim: 5 } shape { dim: 4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""
SOLVER = """net: "net.prototxt"
test_iter: 1
test_interval: 2
test_net_param { layer { name: "input" type: "Input" top: "data" top: "label"
                         input_param { shape { dim: 4 dim: 5 } shape { dim: 4 } } }
                 layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
                         inner_product_param { num_output: 3 } }
                 layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" } }
base_lr: 0.1
lr_policy: "fixed"
display: 1
max_iter: 4
snapshot_after_train: false
random_seed: 1
solver_mode: CPU
"""

# What the pip Caffe's glog (0.6, year in the line prefix) wrote after caffe.init_log();
# we write glog 0.3-0.5's three lines, which describe our classic "I1128 ..." lines.
_GLOG_FILE_HEADER = re.compile(
    r"Log file created at: \d{4}/\d\d/\d\d \d\d:\d\d:\d\d\n"
    r"Running on machine: .+\n"
    r"Log line format: \[IWEF\]mmdd hh:mm:ss\.uuuuuu threadid file:line\] msg\n")


@pytest.fixture(autouse=True)
def _restore_logger():
    lg = logging.getLogger("caffe_compat")
    saved = (lg.handlers[:], lg.propagate, lg.level)
    yield
    for h in lg.handlers:
        if h not in saved[0]:
            h.close()
    lg.handlers[:] = saved[0]
    lg.propagate, lg.level = saved[1], saved[2]


# ------------------------------------------------------------------ parsing
@pytest.mark.parametrize("env, expected", [
    ({}, glog.GlogFlags()),
    ({"GLOG_minloglevel": "2"}, glog.GlogFlags(minloglevel=2)),
    ({"GLOG_minloglevel": " 3xyz"}, glog.GlogFlags(minloglevel=3)),   # strtol: leading digits
    ({"GLOG_minloglevel": "abc"}, glog.GlogFlags(minloglevel=0)),     # strtol: no digits is 0
    ({"GLOG_logtostderr": "1"}, glog.GlogFlags(logtostderr=True)),
    ({"GLOG_logtostderr": "true"}, glog.GlogFlags(logtostderr=True)),
    ({"GLOG_logtostderr": "Yes"}, glog.GlogFlags(logtostderr=True)),
    ({"GLOG_logtostderr": ""}, glog.GlogFlags(logtostderr=True)),     # BoolFromEnv: "" is true
    ({"GLOG_logtostderr": "0"}, glog.GlogFlags(logtostderr=False)),
    ({"GLOG_logtostderr": "false"}, glog.GlogFlags(logtostderr=False)),
    ({"GLOG_alsologtostderr": "1", "GLOG_stderrthreshold": "1"},
     glog.GlogFlags(alsologtostderr=True, stderrthreshold=1)),
    ({"GLOG_log_dir": "/x"}, glog.GlogFlags(log_dir="/x")),
    ({"GOOGLE_LOG_DIR": "/y"}, glog.GlogFlags(log_dir="/y")),
    ({"GLOG_v": "2"}, glog.GlogFlags(v=2)),
], ids=["defaults", "minloglevel", "strtol-prefix", "strtol-none", "bool-1", "bool-true", "bool-Yes",
        "bool-empty", "bool-0", "bool-false", "also+threshold", "log_dir", "google_log_dir", "v"])
def test_flags_parse_as_glog_does(env, expected):
    assert glog.GlogFlags.from_env(env) == expected


@pytest.mark.parametrize("flags, level", [
    (glog.GlogFlags(), logging.INFO),
    (glog.GlogFlags(minloglevel=1), logging.WARNING),
    (glog.GlogFlags(minloglevel=2), logging.ERROR),
    (glog.GlogFlags(minloglevel=3), logging.CRITICAL),
    (glog.GlogFlags(minloglevel=4), logging.CRITICAL + 1),
    (glog.GlogFlags(v=1), logging.DEBUG),
    (glog.GlogFlags(minloglevel=1, v=1), logging.WARNING),
], ids=["info", "warning", "error", "fatal", "nothing", "v1-debug", "v-below-min"])
def test_minloglevel_and_v_give_the_python_level(flags, level):
    assert glog.python_level(flags) == level


def test_line_format_is_glogs():
    record = logging.LogRecord("caffe_compat", logging.WARNING, "/x/solver.py", 12, "hi %d", (3,), None)
    line = glog.GlogFormatter().format(record)
    assert re.fullmatch(r"W\d{4} \d\d:\d\d:\d\d\.\d{6} [ \d]{5,} solver\.py:12\] hi 3", line), line
    tid = str(record.thread and __import__("threading").get_native_id())
    assert f" {tid:>5} solver.py" in line  # glog: ' ' << setw(5) << tid << ' '


# ------------------------------------------------------------------ files and streams
def _log_all(lg: logging.Logger) -> None:
    lg.debug("a debug line")
    lg.info("an info line")
    lg.warning("a warning line")
    lg.error("an error line")


def test_log_dir_files_names_headers_and_links(tmp_path):
    err = io.StringIO()
    glog.setup_cli_logging("caffe", stream=err, environ={"GLOG_log_dir": str(tmp_path)})
    _log_all(glog.logger)
    files = sorted(p.name for p in tmp_path.iterdir() if not p.is_symlink())
    user = os.environ.get("USER") or __import__("getpass").getuser()
    host = os.uname().nodename
    pattern = re.compile(rf"caffe\.{re.escape(host)}\.{re.escape(user)}\.log\.(INFO|WARNING|ERROR)"
                         rf"\.\d{{8}}-\d{{6}}\.{os.getpid()}")
    assert len(files) == 3 and all(pattern.fullmatch(f) for f in files), files
    for severity, wanted in [("INFO", ["info", "warning", "error"]), ("WARNING", ["warning", "error"]),
                             ("ERROR", ["error"])]:
        link = tmp_path / f"caffe.{severity}"
        assert link.is_symlink() and "/" not in os.readlink(link)  # relative, as glog makes them
        text = link.read_text()
        assert _GLOG_FILE_HEADER.match(text), text
        body = text.splitlines()[3:]
        messages = {"info": "an info line", "warning": "a warning line", "error": "an error line"}
        assert [line.split("] ", 1)[1] for line in body] == [messages[w] for w in wanted]
        assert all(line[0] in "IWE" for line in body)
    # caffe forces alsologtostderr: every message also on stderr (not the debug one: GLOG_v=0)
    assert [line.split("] ", 1)[1] for line in err.getvalue().splitlines()] == [
        "an info line", "a warning line", "an error line"]


def test_logtostderr_writes_no_files_and_minloglevel_drops(tmp_path):
    err = io.StringIO()
    glog.setup_cli_logging(stream=err, environ={"GLOG_log_dir": str(tmp_path), "GLOG_logtostderr": "1",
                                                "GLOG_minloglevel": "1"})
    _log_all(glog.logger)
    assert list(tmp_path.iterdir()) == []
    assert [line[0] for line in err.getvalue().splitlines()] == ["W", "E"]


def test_v_shows_debug_messages_as_info_lines():
    err = io.StringIO()
    glog.setup_cli_logging(stream=err, environ={"GLOG_v": "1"})
    _log_all(glog.logger)
    assert err.getvalue().splitlines()[0].startswith("I") and "a debug line" in err.getvalue()


def test_init_log_uses_the_stderr_threshold(tmp_path):
    """pycaffe's caffe.init_log(): files get everything, stderr from GLOG_stderrthreshold up."""
    err = io.StringIO()
    glog.init_glog("", stream=err, environ={"GLOG_log_dir": str(tmp_path), "GLOG_stderrthreshold": "1"})
    _log_all(glog.logger)
    assert [line[0] for line in err.getvalue().splitlines()] == ["W", "E"]
    (info,) = [p for p in tmp_path.iterdir() if ".log.INFO." in p.name]
    assert info.name.startswith("." + os.uname().nodename + ".")  # pycaffe's empty program name
    assert "an info line" in info.read_text()
    assert not any(p.is_symlink() for p in tmp_path.iterdir())  # glog links only named programs


def test_unwritable_log_dir_is_reported_once_and_logging_goes_on(tmp_path, capsys):
    err = io.StringIO()
    glog.setup_cli_logging(stream=err, environ={"GLOG_log_dir": str(tmp_path / "missing")})
    _log_all(glog.logger)
    assert capsys.readouterr().err.count("could not create a log file") == 1
    assert len(err.getvalue().splitlines()) == 3


def test_files_only_records_skip_stderr(tmp_path):
    err = io.StringIO()
    glog.setup_cli_logging(stream=err, environ={"GLOG_log_dir": str(tmp_path)})
    glog.logger.error("only in the files", extra=glog.FILES_ONLY)
    assert err.getvalue() == ""
    assert "only in the files" in (tmp_path / "caffe.ERROR").read_text()


def test_library_is_unchanged_without_glog_variables():
    assert glog.configure_from_env({}) is None


# ------------------------------------------------------------------ real processes
def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GLOG_", "GOOGLE_LOG"))}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


@pytest.fixture
def work(tmp_path):
    (tmp_path / "net.prototxt").write_text(NET)
    (tmp_path / "solver.prototxt").write_text(SOLVER)
    return tmp_path


def test_cli_train_with_log_dir_and_minloglevel(work):
    """caffe-compat train: GLOG_log_dir gets caffe.INFO (parse_log reads it as it reads the
    stderr log: both CSVs, same rows); GLOG_minloglevel=2 makes it silent."""
    logs = work / "logs"
    logs.mkdir()
    done = subprocess.run([str(CLI), "train", "--solver=solver.prototxt"], cwd=work, capture_output=True,
                          text=True, env=_env(GLOG_log_dir=str(logs)), timeout=300)
    assert done.returncode == 0, done.stderr
    info = logs / "caffe.INFO"
    text = info.read_text()
    assert _GLOG_FILE_HEADER.match(text)
    assert text.splitlines()[3:] == done.stderr.splitlines()  # same lines as stderr
    assert not (logs / "caffe.WARNING").exists()
    (work / "stderr.log").write_text(done.stderr)
    csv = {}
    for src in (info, work / "stderr.log"):
        out = work / f"csv_{src.name}"
        out.mkdir()
        parsed = subprocess.run([str(CLI), "parse_log", str(src), str(out)], capture_output=True, text=True,
                                env=_env(), timeout=300)
        assert parsed.returncode == 0, parsed.stderr
        csv[src.name] = {p.suffix: p.read_text() for p in out.iterdir()}
    assert set(csv["caffe.INFO"]) == {".train", ".test"}
    assert csv["caffe.INFO"][".train"].splitlines()[0] == "NumIters,Seconds,LearningRate,loss"
    assert [r.split(",")[0] for r in csv["caffe.INFO"][".train"].splitlines()[1:]] == \
        ["0.0", "1.0", "2.0", "3.0"]
    assert [r.split(",")[0] for r in csv["caffe.INFO"][".test"].splitlines()[1:]] == ["0.0", "2.0", "4.0"]
    # the same rows whichever log was read (Seconds are relative to the Solving line in both)
    assert csv["caffe.INFO"] == csv["stderr.log"]

    quiet = subprocess.run([str(CLI), "train", "--solver=solver.prototxt"], cwd=work, capture_output=True,
                           text=True, env=_env(GLOG_minloglevel="2"), timeout=300)
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == ""


LIBRARY_SCRIPT = """
import logging
import caffe_compat as caffe
solver = caffe.get_solver("solver.prototxt")
solver.step(2)
logging.getLogger("caffe_compat").warning("a library warning")
print("loss", float(solver.net.blobs["loss"].data))
"""


@pytest.mark.parametrize("env, expect", [
    ({"GLOG_minloglevel": "2"}, []),
    ({"GLOG_minloglevel": "1"}, ["W"]),
    ({"GLOG_minloglevel": "0"}, ["I", "W"]),
    ({}, ["bare warning"]),
], ids=["minloglevel-2-silent", "minloglevel-1-warnings", "minloglevel-0-everything", "unset"])
def test_library_script_follows_minloglevel(work, env, expect):
    (work / "script.py").write_text(textwrap.dedent(LIBRARY_SCRIPT))
    done = subprocess.run([sys.executable, "script.py"], cwd=work, capture_output=True, text=True,
                          env=_env(**env), timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("loss ")
    lines = done.stderr.splitlines()
    if expect == ["bare warning"]:  # Python's own last-resort handler: warnings only, no glog format
        assert lines == ["a library warning"]
        return
    if not expect:
        assert done.stderr == ""
        return
    heads = [line for line in lines if re.match(r"[IWEF]\d{4} \d\d:", line)]
    assert sorted({line[0] for line in heads}) == expect, done.stderr
    if "I" in expect:
        assert any("Iteration 0" in line for line in heads)
