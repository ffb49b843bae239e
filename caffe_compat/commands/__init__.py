"""Subcommands of ``caffe-compat``: each module registers itself with
:func:`caffe_compat.cli.command` when imported (the CLI imports them all)."""
