"""The `roadloop` command line: one app whose verbs come from the `roadloop.verbs` entry-point group."""

from roadloop_core.cli.main import app, main

__all__ = ["app", "main"]
