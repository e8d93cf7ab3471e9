"""The version of syslogkit (one place: the package, the CLI and RELP offers read it)."""

__version__ = "0.1.0"
