"""``caffe-compat alias install | uninstall | status``: ``import caffe`` for plain ``python``.

    caffe-compat alias install      # this environment: `python script.py` may `import caffe`
    caffe-compat alias status
    caffe-compat alias uninstall

An explicit opt-in for the active environment (see
:mod:`caffe_compat.alias_install`); ``caffe-compat run SCRIPT`` does the same
for one script without installing anything.
"""

from __future__ import annotations

import argparse

from .. import alias_install
from ..cli import command


@command("alias", "make `import caffe` give caffe_compat in this environment (install/uninstall/status)")
def setup(parser: argparse.ArgumentParser):
    parser.add_argument("action", choices=["install", "uninstall", "status"],
                        help="install: `import caffe` gives caffe_compat for every script run by this "
                             "environment's python; uninstall: undo it; status: what `import caffe` gives")
    parser.add_argument("--force", action="store_true",
                        help="install even though another `caffe` is importable here (it is shadowed, "
                             "not changed), or replace/remove files of the alias's names that are not ours")

    def run(args: argparse.Namespace) -> int:
        if args.action == "status":
            print(alias_install.status().describe())
            return 0
        if args.action == "install":
            before = alias_install.status()
            after = alias_install.install(force=args.force)
            if before.installed:
                print("already installed")
            print(after.describe())
            return 0
        after, removed = alias_install.uninstall(force=args.force)
        if removed:
            print("removed " + ", ".join(str(p) for p in removed))
        else:
            print("nothing to remove: the alias is not installed in this environment")
        print(after.describe())
        return 0

    return run
