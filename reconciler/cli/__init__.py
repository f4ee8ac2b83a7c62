"""The command line: flags in, one engine or agent call, its result rendered."""

from reconciler.cli.main import cli, main

__all__ = ["cli", "main"]
