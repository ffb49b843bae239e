"""caffe_compat's OpenMP set-up (``caffe_compat/threads.py``): a passive wait policy when
caffe_compat imports torch, the user's choice otherwise; each case in a fresh interpreter,
because libgomp reads its policy once per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = ("import json, os, sys\n{pre}\nimport caffe_compat\n"
         "print(json.dumps({{'policy': caffe_compat.openmp_policy(), "
         "'env': os.environ.get('OMP_WAIT_POLICY')}}))")

CASES = [
    # (id, code run before import caffe_compat, extra environment, expected words, OMP_WAIT_POLICY after)
    ("caffe_compat first", "", {}, "passive (set by caffe_compat", None),
    ("torch first", "import torch", {}, "torch was imported before caffe_compat", None),
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
                         env=dict(base, OMP_DISPLAY_ENV="true"), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "OMP_WAIT_POLICY = 'PASSIVE'" in out.stderr + out.stdout
