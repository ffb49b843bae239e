"""caffe_compat's OpenMP set-up (``caffe_compat/threads.py``): libgomp's spinning with a
thread count governed by the load when caffe_compat imports torch (or passive waiting, when
asked), the user's choice otherwise; each case in a fresh interpreter, because libgomp reads
its policy once per process. The governor's decisions on measured load, with a fake clock."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_USER = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")

PROBE = ("import json, os, sys\n{pre}\nimport caffe_compat\n"
         "print(json.dumps({{'policy': caffe_compat.openmp_policy(), "
         "'env': os.environ.get('OMP_WAIT_POLICY')}}))")

CASES = [
    # (id, code run before import caffe_compat, extra environment, expected words, OMP_WAIT_POLICY after)
    ("caffe_compat first", "", {}, "adaptive: libgomp spins", None),
    ("passive asked for", "", {"CAFFE_COMPAT_OMP_WAIT": "passive"}, "passive (set by caffe_compat", None),
    ("torch first", "import torch", {}, "torch was imported before caffe_compat; thread count adapted", None),
    ("user policy kept", "", {"OMP_WAIT_POLICY": "ACTIVE"}, "set by the environment: OMP_WAIT_POLICY=ACTIVE",
     "ACTIVE"),
    ("user spin count kept", "", {"GOMP_SPINCOUNT": "1000"}, "GOMP_SPINCOUNT=1000", None),
    ("opt out", "", {"CAFFE_COMPAT_OMP_WAIT": "spin"}, "asked for by CAFFE_COMPAT_OMP_WAIT", None),
]


@pytest.mark.parametrize("pre,env,words,after", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_openmp_wait_policy(pre, env, words, after):
    base = {k: v for k, v in os.environ.items()
            if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "CAFFE_COMPAT_OMP_WAIT")}
    out = subprocess.run([sys.executable, "-c", PROBE.format(pre=pre)], env=dict(base, **env),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert words in got["policy"]
    # The variable is set only while torch loads: children inherit the user's environment.
    assert got["env"] == after


def test_passive_policy_reaches_libgomp():
    """The policy is in libgomp's environment when it initialises: OMP_DISPLAY_ENV prints it."""
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", "import caffe_compat"],
                         env=dict(base, OMP_DISPLAY_ENV="true", CAFFE_COMPAT_OMP_WAIT="passive"),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "OMP_WAIT_POLICY = 'PASSIVE'" in out.stderr + out.stdout


# ------------------------------------------------------------------ the governor
class FakeMachine:
    """``ncpu`` CPUs; ``others`` cores kept busy by other processes, ``ours`` by this one."""

    def __init__(self, ncpu=2, threads=2):
        self.ncpu, self.threads = ncpu, threads
        self.now, self.busy, self.own = 100.0, 0.0, 0.0
        self.others, self.ours = 0.0, 2.0
        self.samples = 0

    def run(self, seconds):
        self.now += seconds
        self.busy += (self.others + self.ours) * seconds
        self.own += self.ours * seconds

    def sample(self):
        self.samples += 1
        return self.busy, self.ncpu

    def set(self, n):
        self.threads = n

    def governor(self):
        from caffe_compat.threads import Governor

        return Governor(sample=self.sample, own=lambda: self.own, get_threads=lambda: self.threads,
                        set_threads=self.set, clock=lambda: self.now)


def drive(m, g, seconds, step=0.05):
    """Net calls of ``step`` seconds back to back."""
    for _ in range(int(round(seconds / step))):
        g.begin()
        m.run(step)
        g.end()


def test_governor_keeps_the_count_on_a_quiet_machine():
    m = FakeMachine()
    g = m.governor()
    drive(m, g, 9)
    assert m.threads == 2 and g.changes == 0 and g.others == 0.0


def test_governor_gives_a_core_to_a_busy_neighbour_and_takes_it_back():
    m = FakeMachine()
    g = m.governor()
    drive(m, g, 1.5)
    m.others = 0.67  # a `yes` next to our two spinning threads: 3 runnable on 2 cores
    drive(m, g, 3)
    assert m.threads == 1
    m.others, m.ours = 1.0, 1.0  # now each has a core: stays at one
    drive(m, g, 9)
    assert m.threads == 1 and g.changes == 1
    m.others = 0.0  # the neighbour stopped
    drive(m, g, 4.5)
    assert m.threads == 2 and g.changes == 2


@pytest.mark.parametrize("ncpu,threads,ours,phases", [
    # a bigger machine: 8 + 6 <= 16 gives nothing up; with 11 busy, 5 are left
    (16, 8, 8.0, [(6.0, 6, 8), (11.0, 6, 5)]),
    # more threads than CPUs, as the user asked: kept while quiet, back after a neighbour
    (2, 4, 2.0, [(0.0, 6, 4), (1.0, 3, 1), (0.0, 6, 4)]),
], ids=["16 cpus", "oversubscribed"])
def test_governor_phases(ncpu, threads, ours, phases):
    """(other processes' busy cores, seconds of calls, thread count expected after)"""
    m = FakeMachine(ncpu=ncpu, threads=threads)
    m.ours = ours
    g = m.governor()
    for others, seconds, expected in phases:
        m.others = others
        drive(m, g, seconds)
        assert m.threads == expected, (others, seconds)


def test_governor_follows_a_count_the_user_sets():
    m = FakeMachine(ncpu=4, threads=4)
    g = m.governor()
    drive(m, g, 1.5)
    m.threads = 3  # torch.set_num_threads(3) by the user
    drive(m, g, 1.5)
    assert g.ceiling == 3 and m.threads == 3
    m.others = 2.0
    drive(m, g, 3)
    assert m.threads == 2
    m.others = 0.0
    drive(m, g, 6)
    assert m.threads == 3  # back to the user's count, not more


def test_governor_reads_the_machine_rarely():
    m = FakeMachine()
    g = m.governor()
    for _ in range(1000):  # 1000 calls of 1 ms: too short to measure
        g.begin()
        m.run(0.001)
        g.end()
    assert m.samples == 2  # the first call only (its length unknown before)
    for _ in range(110):  # 110 calls of 10 ms: a window of 0.3 s, a pause of 0.25 s, again
        g.begin()
        m.run(0.01)
        g.end()
    assert m.samples <= 2 + 2 * (31 + 31)


def test_governor_ignores_what_runs_between_its_calls():
    """A process taking turns with the net (a data job, a benchmark's other contender)
    does not compete for the cores while the net runs: no thread is given up."""
    m = FakeMachine()
    g = m.governor()
    for _ in range(100):
        g.begin()
        m.run(0.05)
        g.end()
        m.others, m.ours = 2.0, 0.0  # the other process, while we wait
        m.run(0.05)
        m.others, m.ours = 0.0, 2.0
    assert m.threads == 2 and g.changes == 0
    m.others = 0.67  # now it runs at the same time
    drive(m, g, 3.0)
    assert m.threads == 1


def test_nested_calls_measure_once():
    m = FakeMachine()
    g = m.governor()
    m.others = 0.67
    for _ in range(60):
        g.begin()
        g.begin()  # a forward inside a solver step
        m.run(0.05)
        g.end()
        m.run(0.01)
        g.end()
    assert m.threads == 1 and g.changes == 1


def test_governor_without_proc_stat_does_nothing():
    from caffe_compat.threads import Governor

    calls = []
    g = Governor(sample=lambda: None, own=lambda: 0.0, get_threads=lambda: 2,
                 set_threads=calls.append, clock=iter(range(0, 100)).__next__)
    for _ in range(20):
        g.begin()
        g.end()
    assert calls == [] and g.others is None


PROBE_LOAD = """
import json, subprocess, time
import numpy as np
import caffe_compat as caffe, torch
from caffe_compat import threads
net = caffe.Net({path!r}, caffe.TEST)
hog = [subprocess.Popen(['yes'], stdout=subprocess.DEVNULL) for _ in range({hogs})]
try:
    least, end = torch.get_num_threads(), time.monotonic() + 4.0
    while time.monotonic() < end:
        net.forward()
        least = min(least, torch.get_num_threads())
finally:
    for p in hog:
        p.kill(); p.wait()
print(json.dumps({{"ceiling": threads._governor.ceiling, "least": least}}))
"""


def test_governor_reacts_to_a_real_busy_process(tmp_path):
    """In a fresh interpreter, the default mode: a net's forwards next to CPU-bound
    processes run on fewer threads within a few tenths of a second."""
    if not os.path.exists("/proc/stat"):
        pytest.skip("needs /proc/stat")
    ncpu = os.cpu_count() or 1
    if ncpu < 2:
        pytest.skip("needs two CPUs")
    net = tmp_path / "net.prototxt"
    # calls of several ms (the governor does not measure calls under 2 ms)
    net.write_text('input: "data" input_shape { dim: 2 dim: 16 dim: 128 dim: 128 }\n'
                   'layer { name: "c" type: "Convolution" bottom: "data" top: "c" '
                   'convolution_param { num_output: 32 kernel_size: 3 } }\n')
    base = {k: v for k, v in os.environ.items() if k not in (*_USER, "CAFFE_COMPAT_OMP_WAIT")}
    code = PROBE_LOAD.format(path=str(net), hogs=max(1, ncpu // 2))
    out = subprocess.run([sys.executable, "-c", code], env=dict(base, OMP_NUM_THREADS=str(ncpu)),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["ceiling"] == ncpu and got["least"] < ncpu, got


def test_ceiling_is_the_quiet_count(monkeypatch):
    """Pools made once (an ONNX Runtime session) take the count for a quiet machine, not
    the governor's lowered one; a count the user sets counts at once."""
    from caffe_compat import threads

    m = FakeMachine()
    g = m.governor()
    monkeypatch.setattr(threads, "_governor", g)
    m.others = 0.67
    drive(m, g, 3)
    assert m.threads == 1 and threads.ceiling() == 2
    m.threads = 3  # torch.set_num_threads(3)
    assert threads.ceiling() == 3
