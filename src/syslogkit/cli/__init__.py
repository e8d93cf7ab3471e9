"""The `syslogkit` command: one module per command, dispatched by `main`."""

from syslogkit.cli.main import CliError, main

__all__ = ["CliError", "main"]
