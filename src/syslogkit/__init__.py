"""syslogkit: Python logging to syslog, a syslog codec, and a collector."""

from syslogkit.message import Facility, ParseError, SDElement, Severity, SyslogMessage

__all__ = [
    "Facility",
    "ParseError",
    "SDElement",
    "Severity",
    "SyslogMessage",
]

__version__ = "0.1.0"
